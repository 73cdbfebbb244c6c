//! Cost of one resource-group admission decision with a big tree: 1,000 groups and 10,000
//! queued queries. Run with `CARGO_TARGET_DIR=target/std cargo bench --bench resource_groups`.
//!
//! Plain `fn main` timing (no harness): this file runs outside the simulation, so reading the
//! wall clock is fine here. Each timed call is one decision:
//! - `submit` of a query that has to queue (its leaf is at its limit);
//! - `start_eligible` right after a `remove` freed one slot (it must find the one leaf that can
//!   start, among 989, and start that leaf's oldest query).
//!
//! Untimed work between samples puts the state back, so every sample sees ~10,000 queued.

use std::hint::black_box;
use std::time::Instant;

use fireball::resource_groups::{parse_resource_groups, AdmissionPolicy, ResourceGroupManager, SubmitOutcome};

const MIDDLE_GROUPS: usize = 10;
/// 1 root + 10 middle groups + 989 leaves = 1,000 groups.
const LEAVES: usize = 989;
const QUEUED: usize = 10_000;
const SAMPLES: usize = 20_000;

fn spec_text() -> String {
    let middles: Vec<String> = (0..MIDDLE_GROUPS)
        .map(|index| {
            format!(
                r#"{{"name": "m{index}", "hardConcurrencyLimit": 1000, "maxQueued": 100000, "softMemoryLimit": "100%",
                    "subGroups": [{{"name": "${{USER}}", "hardConcurrencyLimit": 1, "maxQueued": 1000, "softMemoryLimit": "100%"}}]}}"#
            )
        })
        .collect();
    let selectors: Vec<String> = (0..MIDDLE_GROUPS)
        .map(|index| format!(r#"{{"source": "m{index}", "group": "global.m{index}.${{USER}}"}}"#))
        .collect();
    format!(
        r#"{{"rootGroups": [{{"name": "global", "hardConcurrencyLimit": 5000, "maxQueued": 1000000, "softMemoryLimit": "100%",
              "subGroups": [{}]}}], "selectors": [{}]}}"#,
        middles.join(","),
        selectors.join(",")
    )
}

fn leaf_id(leaf: usize) -> String {
    format!("global.m{}.u{leaf}", leaf % MIDDLE_GROUPS)
}

fn summary(name: &str, mut samples_ns: Vec<u64>) {
    samples_ns.sort_unstable();
    let at = |fraction: f64| samples_ns[((samples_ns.len() - 1) as f64 * fraction) as usize];
    println!(
        "{name:<44} n={:>6}  min {:>7} ns  median {:>7} ns  p99 {:>7} ns  max {:>8} ns",
        samples_ns.len(),
        at(0.0),
        at(0.5),
        at(0.99),
        at(1.0)
    );
}

/// The real clock: a benchmark measures wall time, outside any simulation.
#[allow(clippy::disallowed_methods, reason = "a benchmark measures real time, outside any simulation")]
fn wall_now() -> Instant {
    Instant::now()
}

fn main() {
    let spec = parse_resource_groups(&spec_text(), "bench").expect("valid spec");
    let mut manager = ResourceGroupManager::new(spec, AdmissionPolicy::Presto, 1.0, 1, 0);
    manager.set_cluster_memory_bytes(1 << 40);
    let setup = wall_now();
    // One running query per leaf, then 10,000 queued spread over the leaves.
    let mut running: Vec<String> = Vec::with_capacity(LEAVES);
    for leaf in 0..LEAVES {
        let query_id = format!("r{leaf}");
        assert_eq!(manager.submit(&query_id, &leaf_id(leaf), 1, 0), SubmitOutcome::Started);
        running.push(query_id);
    }
    for index in 0..QUEUED {
        assert_eq!(manager.submit(&format!("q{index}"), &leaf_id(index % LEAVES), 1, 0), SubmitOutcome::Queued);
    }
    manager.check_invariants().expect("consistent after setup");
    println!(
        "setup: {} groups ({LEAVES} leaves), {QUEUED} queued, in {:?}",
        LEAVES + MIDDLE_GROUPS + 1,
        setup.elapsed()
    );

    let mut submit_ns = Vec::with_capacity(SAMPLES);
    for sample in 0..SAMPLES {
        let (query_id, group_id) = (format!("extra{sample}"), leaf_id(sample % LEAVES));
        let started = wall_now();
        let outcome = black_box(manager.submit(black_box(&query_id), black_box(&group_id), 1, 1));
        submit_ns.push(started.elapsed().as_nanos() as u64);
        assert_eq!(outcome, SubmitOutcome::Queued);
        assert!(manager.remove(&query_id));
    }

    let mut start_ns = Vec::with_capacity(SAMPLES);
    let mut remove_and_start_ns = Vec::with_capacity(SAMPLES);
    for sample in 0..SAMPLES {
        let leaf = (sample * 7) % LEAVES;
        let group_id = leaf_id(leaf);
        let begun = wall_now();
        assert!(manager.remove(&running[leaf]));
        let started_at = wall_now();
        let started = black_box(manager.start_eligible(2));
        let done = wall_now();
        start_ns.push((done - started_at).as_nanos() as u64);
        remove_and_start_ns.push((done - begun).as_nanos() as u64);
        assert_eq!(started.len(), 1);
        assert_eq!(started[0].1, group_id);
        running[leaf] = started[0].0.clone();
        // Refill the leaf's queue so the next sample sees the same load.
        assert_eq!(manager.submit(&format!("refill{sample}"), &group_id, 1, 2), SubmitOutcome::Queued);
    }
    manager.check_invariants().expect("consistent after the run");

    summary("submit (queues)", submit_ns);
    summary("start_eligible after a remove freed a slot", start_ns);
    summary("remove + start_eligible", remove_and_start_ns);
}
