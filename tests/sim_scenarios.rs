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
