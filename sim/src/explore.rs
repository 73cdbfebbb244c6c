//! `explore`: random fault schedules on top of a scenario (proptest strategies). When one breaks
//! the scenario's `[expect]`, proptest shrinks it — fewer faults, earlier, shorter, milder — to a
//! minimal schedule that still fails, and we write it out as a new scenario file.

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};

use crate::plan::blank;
use crate::run::run;
use crate::scenario::{ClusterSpec, Duration, Fault, FaultKind, LoadedScenario};

pub struct Found {
    pub seed: u64,
    pub faults: usize,
    pub violations: Vec<String>,
    pub scenario_toml: String,
}

/// Shrinking steps after a failure (each is a full run).
pub const SHRINK_ITERATIONS_DEFAULT: u32 = 200;

/// Tries `cases` random schedules (each run with the scenario's seed); a failure is shrunk with
/// at most `shrink_iterations` further runs.
pub fn explore(loaded: &LoadedScenario, cases: u32, shrink_iterations: u32) -> Result<Option<Found>, String> {
    let scenario = &loaded.scenario;
    let seed = scenario.seed;
    let strategy = proptest::collection::vec(fault_strategy(&scenario.cluster, scenario.duration.0), 1..6);
    let config = Config { cases, failure_persistence: None, max_shrink_iters: shrink_iterations, ..Config::default() };
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes));
    let tried = std::cell::Cell::new(0u32);
    let outcome = runner.run(&strategy, |faults| {
        tried.set(tried.get() + 1);
        eprintln!("  explore {}: schedule {} ({} faults)", scenario.name, tried.get(), faults.len());
        let result = run(loaded, seed, Some(faults), false).map_err(TestCaseError::fail)?;
        if result.report.violations.is_empty() {
            Ok(())
        } else {
            Err(TestCaseError::fail(result.report.violations.join("; ")))
        }
    });
    match outcome {
        Ok(()) => Ok(None),
        Err(TestError::Fail(reason, faults)) => {
            let mut minimal = scenario.clone();
            minimal.name = format!("{}-explored-{seed}", scenario.name);
            minimal.faults = faults.clone();
            minimal.random = None;
            let mut minimal_loaded = loaded.clone();
            minimal_loaded.scenario = minimal.clone();
            if minimal.resource_groups.is_some() {
                // Keep the file self-contained: the groups JSON goes inline.
                minimal.resource_groups = Some(crate::scenario::ResourceGroupsSpec { file: None, inline: loaded.resource_groups_json.clone() });
            }
            let body = toml::to_string(&minimal).map_err(|error| format!("cannot write the scenario: {error}"))?;
            let scenario_toml = format!(
                "# Found by `ci/sim explore` on {} (seed {seed}) and shrunk to a minimal fault schedule.\n# It fails with: {}\n{body}",
                loaded.path.display(),
                reason.message()
            );
            Ok(Some(Found { seed, faults: faults.len(), violations: vec![reason.message().to_string()], scenario_toml }))
        }
        Err(TestError::Abort(reason)) => Err(format!("exploration aborted: {reason}")),
    }
}

fn fault_strategy(cluster: &ClusterSpec, duration_ms: u64) -> impl Strategy<Value = Fault> {
    let horizon_ms = (duration_ms * 3 / 4).max(1);
    let (rms, coordinators, workers) = (cluster.resource_managers, cluster.coordinators, cluster.workers);
    let node = move |role: u8, index: u32| match role {
        0 => format!("rm-{}", 1 + index % rms),
        1 => format!("coordinator-{}", 1 + index % coordinators),
        _ => format!("worker-{}", 1 + index % workers),
    };
    (0..8u8, 0..horizon_ms, 1_000..60_000u64, 0..3u8, 0..64u32, 0..3u8, 0..64u32, 0..=100u32).prop_map(
        move |(kind, at_ms, lasting_ms, role, index, other_role, other_index, percent)| {
            let kinds = [
                FaultKind::RmOutage,
                FaultKind::Crash,
                FaultKind::Pause,
                FaultKind::Partition,
                FaultKind::ClogLink,
                FaultKind::HeartbeatLoss,
                FaultKind::Latency,
                FaultKind::ClockSkew,
            ];
            let kind = kinds[kind as usize % kinds.len()];
            let mut fault = blank(kind, Duration(at_ms));
            let lasting = Duration(lasting_ms);
            let target = node(role, index);
            match kind {
                FaultKind::RmOutage => {
                    fault.nodes = vec![node(0, index)];
                    fault.duration = Some(lasting);
                }
                FaultKind::Crash => {
                    fault.nodes = vec![target];
                    fault.restart_after = Some(lasting);
                }
                FaultKind::Pause => {
                    fault.nodes = vec![target];
                    fault.duration = Some(lasting);
                }
                FaultKind::Partition => {
                    fault.groups = vec![vec![target], vec!["*".into()]];
                    fault.one_way = percent % 2 == 0;
                    fault.duration = Some(lasting);
                }
                FaultKind::ClogLink => {
                    fault.from = Some(target);
                    fault.to = Some(node(other_role, other_index));
                    fault.duration = Some(lasting);
                }
                FaultKind::HeartbeatLoss => {
                    fault.from = Some(target);
                    fault.to = Some(node(0, other_index));
                    fault.probability = Some(f64::from(percent) / 100.0);
                    fault.duration = Some(lasting);
                }
                FaultKind::Latency => {
                    fault.min = Some(Duration(0));
                    fault.max = Some(Duration(u64::from(percent) * 20));
                    fault.duration = Some(lasting);
                }
                // Not among the kinds explored (an operator's act, not a fault).
                FaultKind::Shutdown => fault.nodes = vec![target],
                FaultKind::ClockSkew => {
                    fault.nodes = vec![target];
                    fault.offset = Some(format!("{}s", i64::from(percent) - 50));
                    fault.duration = Some(lasting);
                }
            }
            fault
        },
    )
}
