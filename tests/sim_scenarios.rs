//! The scenario harness, tested: the oracle must be able to fail. The same threshold-0 burst runs
//! under Presto's policy (within the derived bound) and under the deliberately weakened `naive`
//! policy (no freshness gate), which the oracle must catch over-admitting.
#![cfg(madsim)]

use std::path::Path;

use fireball_sim::run::run;
use fireball_sim::scenario::LoadedScenario;

fn load(relative: &str) -> LoadedScenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(relative);
    LoadedScenario::load(&path).expect("scenario loads")
}

#[test]
fn the_oracle_catches_the_naive_policy_over_admitting() {
    let naive = load("scenarios/must-fail/naive-burst-threshold-0.toml");
    assert_eq!(naive.scenario.cluster.policy, "naive");
    let result = run(&naive, naive.scenario.seed, None, false).expect("runs");
    let over = &result.report.groups["global"];
    assert!(over.overshoot_max > 4, "naive must overshoot past the presto bound: {over:?}");
    assert!(
        result.report.violations.iter().any(|violation| violation.contains("over-admission in global")),
        "the oracle must report it: {:?}",
        result.report.violations
    );
}

#[test]
fn presto_stays_within_the_derived_bound_on_the_same_burst() {
    let presto = load("scenarios/09-burst-at-limit-threshold-0.toml");
    for seed in 1..=3 {
        let result = run(&presto, seed, None, false).expect("runs");
        assert!(result.report.violations.is_empty(), "seed {seed}: {:?}", result.report.violations);
        assert_eq!(result.report.finished, 90, "seed {seed}: every query of the burst finishes");
    }
}

#[test]
fn a_replayed_seed_gives_the_same_trace() {
    let scenario = load("scenarios/13-swarm.toml");
    let first = run(&scenario, 11, None, true).expect("runs");
    let second = run(&scenario, 11, None, true).expect("runs");
    assert_eq!(first.digest, second.digest);
    assert_eq!(first.trace_jsonl, second.trace_jsonl);
    assert!(!first.faults.is_empty(), "swarm mode drew faults from the seed");
}

/// Every query must succeed, so any fault that hurts a worker while queries run breaks `[expect]`:
/// explore must find such a schedule, shrink it, and write a scenario that fails the same way.
const FRAGILE: &str = r#"
name = "fragile"
duration = "60s"
seed = 3
[cluster]
resource_managers = 1
coordinators = 1
workers = 2
worker_memory = "1GB"
[config]
"query.remote-task.max-error-duration" = "3s"
"internal-communication.request-timeout" = "1s"
[[workload]]
user = "dave"
burst = 6
start = "2s"
run_time = "40s"
tasks = 2
[expect]
min_finished = 6
settle = "1m"
"#;

#[test]
fn explore_finds_shrinks_and_writes_a_failing_schedule() {
    let path = std::env::temp_dir().join(format!("fragile-{}.toml", std::process::id()));
    let loaded = LoadedScenario::parse(FRAGILE, &path).expect("parses");
    assert!(run(&loaded, 3, None, false).expect("runs").report.violations.is_empty(), "no faults: it passes");
    let found = fireball_sim::explore::explore(&loaded, 30, 20).expect("explores").expect("some schedule breaks it");
    assert!(found.faults >= 1 && found.faults <= 2, "shrunk to a minimal schedule: {} faults", found.faults);
    std::fs::write(&path, &found.scenario_toml).expect("write");
    let replayed = LoadedScenario::load(&path).expect("the written scenario is valid");
    let result = run(&replayed, found.seed, None, false).expect("runs");
    assert!(!result.report.violations.is_empty(), "the written scenario fails the same way:\n{}", found.scenario_toml);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn the_oracle_catches_presto_killer_scope_overkilling() {
    let presto = load("scenarios/must-fail/memory-presto-scope-huge-query.toml");
    let result = run(&presto, presto.scenario.seed, None, false).expect("runs");
    let memory = &result.report.memory;
    assert!(memory.kills_per_episode_max > 1 && memory.overlapping_kills > 0, "Presto's scope must over-kill here: {memory:?}");
    assert!(
        result.report.violations.iter().any(|violation| violation.contains("killed in one out-of-memory episode")),
        "the oracle must report it: {:?}",
        result.report.violations
    );
    // The same workload and seed under the coordinated scope keeps the promise.
    let coordinated = load("scenarios/15-memory-huge-query.toml").select(Some("coordinated")).expect("variant");
    let result = run(&coordinated, presto.scenario.seed, None, false).expect("runs");
    assert!(result.report.violations.is_empty(), "{:?}", result.report.violations);
    assert_eq!(result.report.memory.kills, 1, "{:?}", result.report.memory);
}

#[test]
fn the_oracle_catches_a_shutdown_that_gives_up_on_its_work() {
    let short = load("scenarios/must-fail/shutdown-grace-too-short.toml");
    let result = run(&short, short.scenario.seed, None, false).expect("runs");
    let violations = result.report.violations.join("\n");
    assert!(violations.contains("shutdown of coordinator-1: exited with 2 of its queries not final"), "{violations}");
    assert!(violations.contains("shutdown of worker-1: exited with"), "{violations}");
    assert!(violations.contains("lost queries"), "{violations}");
    // The same run with the default grace period (2m) keeps every promise.
    let mut patient = short.clone();
    patient.scenario.config.remove("shutdown.grace-period");
    let result = run(&patient, short.scenario.seed, None, false).expect("runs");
    assert!(result.report.violations.is_empty(), "{:?}", result.report.violations);
    let exits: Vec<Option<u64>> = result.report.shutdowns.shutdowns.iter().map(|shutdown| shutdown.exit_after_ms()).collect();
    assert!(exits.iter().all(|exit| exit.is_some_and(|after_ms| after_ms >= 10_000)), "both waited for their 20 s work: {exits:?}");
}
