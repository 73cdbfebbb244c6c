//! Everything random about a run that is not the system's own behaviour — when queries arrive,
//! what they cost, which coordinator they enter through, which swarm faults strike — drawn from
//! the seed *before* the run, with its own generator. The plan can be printed, and the explorer
//! can change the faults without disturbing the workload.

use fireball::runtime::rng::NodeRng;

use crate::scenario::{Distribution, Duration, Fault, FaultKind, RandomFaults, Scenario};

/// At most this many arrivals per run, so a typo in a rate cannot exhaust memory.
pub const ARRIVALS_MAX: usize = 2_000_000;

#[derive(Clone, Debug, PartialEq)]
pub struct Arrival {
    pub at_ms: u64,
    pub user: String,
    pub source: Option<String>,
    pub client_tags: Vec<String>,
    pub coordinator_index: usize,
    pub sql: String,
}

#[derive(Clone, Debug)]
pub struct Plan {
    pub arrivals: Vec<Arrival>,
    /// The scenario's faults followed by swarm faults, in time order.
    pub faults: Vec<Fault>,
}

const WORKLOAD_STREAM: u64 = 0x776f_726b_6c6f_6164;
const FAULT_STREAM: u64 = 0x6661_756c_7473_0000;

pub fn plan(scenario: &Scenario, seed: u64) -> Result<Plan, String> {
    let mut arrivals = Vec::new();
    let coordinators = scenario.cluster.coordinators as usize;
    for (index, workload) in scenario.workloads.iter().enumerate() {
        let rng = NodeRng::from_seed(seed ^ WORKLOAD_STREAM ^ (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let stop_ms = workload.stop.map(|stop| stop.0).unwrap_or(scenario.duration.0).min(scenario.duration.0);
        let mut times = Vec::new();
        if let Some(burst) = workload.burst {
            times.extend(std::iter::repeat_n(workload.start.0, burst as usize));
        } else if let Some(rate) = workload.rate {
            let mean_gap_ms = 1_000.0 / rate.per_second;
            let mut at_ms = workload.start.0 as f64;
            loop {
                at_ms += exponential(&rng, mean_gap_ms);
                if at_ms >= stop_ms as f64 {
                    break;
                }
                times.push(at_ms as u64);
                if times.len() > ARRIVALS_MAX {
                    return Err(format!("workload[{index}]: more than {ARRIVALS_MAX} arrivals; lower the rate"));
                }
            }
        }
        for (sequence, at_ms) in times.into_iter().enumerate() {
            let run_time_ms = sample(&rng, &workload.run_time, |d| d.0 as f64) as u64;
            let memory_bytes = sample(&rng, &workload.memory, |b| b.0 as f64) as u64;
            let peak_memory_bytes = match &workload.peak_memory {
                Some(peak) => (sample(&rng, peak, |b| b.0 as f64) as u64).max(memory_bytes),
                None => memory_bytes,
            };
            let coordinator_index = match workload.entry.as_str() {
                "random" => rng.index(coordinators),
                _ => (index + sequence) % coordinators,
            };
            let sql = format!(
                "SELECT * FROM synthetic(run_time => '{run_time_ms}ms', memory => '{memory_bytes}B', peak_memory => '{peak_memory_bytes}B', tasks => {}, rows => {})",
                workload.tasks, workload.tasks
            );
            arrivals.push(Arrival {
                at_ms,
                user: workload.user.clone(),
                source: workload.source.clone(),
                client_tags: workload.client_tags.clone(),
                coordinator_index,
                sql,
            });
        }
    }
    arrivals.sort_by_key(|arrival| arrival.at_ms);
    let mut faults = scenario.faults.clone();
    if let Some(random) = &scenario.random {
        faults.extend(swarm(random, scenario, seed));
    }
    faults.sort_by_key(|fault| fault.at.0);
    Ok(Plan { arrivals, faults })
}

fn exponential(rng: &NodeRng, mean: f64) -> f64 {
    let uniform = unit(rng);
    -mean * (1.0 - uniform).ln()
}

/// Uniform in [0, 1).
fn unit(rng: &NodeRng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

fn sample<T>(rng: &NodeRng, distribution: &Distribution<T>, value: impl Fn(&T) -> f64) -> f64 {
    match distribution {
        Distribution::Fixed(fixed) => value(fixed),
        Distribution::Exponential { mean } => exponential(rng, value(mean)),
        Distribution::Uniform { min, max } => value(min) + unit(rng) * (value(max) - value(min)),
    }
}

/// Swarm faults: for each kind with a rate, Poisson-distributed starts over the run, each lasting
/// a uniform time up to `duration_max`, on nodes drawn from the cluster.
fn swarm(random: &RandomFaults, scenario: &Scenario, seed: u64) -> Vec<Fault> {
    let rng = NodeRng::from_seed(seed ^ FAULT_STREAM);
    let cluster = &scenario.cluster;
    let pick = |prefix: &str, count: u32| format!("{prefix}-{}", 1 + rng.index(count as usize));
    let kinds = [
        (FaultKind::RmOutage, random.rm_outage),
        (FaultKind::Crash, random.crash),
        (FaultKind::Pause, random.pause),
        (FaultKind::Partition, random.partition),
        (FaultKind::ClogLink, random.clog_link),
        (FaultKind::HeartbeatLoss, random.heartbeat_loss),
        (FaultKind::Latency, random.latency),
        (FaultKind::ClockSkew, random.clock_skew),
    ];
    let mut faults = Vec::new();
    for (kind, rate) in kinds {
        let Some(rate) = rate else { continue };
        let mut at_ms = 0.0;
        loop {
            at_ms += exponential(&rng, 1_000.0 / rate.per_second);
            // Leave the last quarter of the run fault-free, so the cluster can show it recovers.
            if at_ms >= scenario.duration.0 as f64 * 0.75 {
                break;
            }
            let lasting = Duration(1_000 + (unit(&rng) * random.duration_max.0 as f64) as u64);
            let mut fault = blank(kind, Duration(at_ms as u64));
            match kind {
                FaultKind::RmOutage => {
                    fault.nodes = vec![pick("rm", cluster.resource_managers)];
                    fault.duration = Some(lasting);
                }
                FaultKind::Crash => {
                    fault.nodes = vec![if unit(&rng) < 0.5 { pick("worker", cluster.workers) } else { pick("rm", cluster.resource_managers) }];
                    fault.restart_after = Some(lasting);
                }
                FaultKind::Pause => {
                    fault.nodes = vec![pick("coordinator", cluster.coordinators)];
                    fault.duration = Some(lasting);
                }
                FaultKind::Partition => {
                    fault.groups = vec![vec![pick("coordinator", cluster.coordinators)], vec!["*".into()]];
                    fault.one_way = unit(&rng) < 0.3;
                    fault.duration = Some(lasting);
                }
                FaultKind::ClogLink => {
                    fault.from = Some(pick("coordinator", cluster.coordinators));
                    fault.to = Some(pick("rm", cluster.resource_managers));
                    fault.duration = Some(lasting);
                }
                FaultKind::HeartbeatLoss => {
                    fault.from = Some(if unit(&rng) < 0.5 { "worker-*".into() } else { "coordinator-*".into() });
                    fault.to = Some(pick("rm", cluster.resource_managers));
                    fault.probability = Some((unit(&rng) * 100.0).round() / 100.0);
                    fault.duration = Some(lasting);
                }
                FaultKind::Latency => {
                    fault.min = Some(Duration(0));
                    fault.max = Some(Duration(1 + (unit(&rng) * 2_000.0) as u64));
                    fault.duration = Some(lasting);
                }
                // Not drawn at random (a shutdown is an operator's act, not a fault to survive).
                FaultKind::Shutdown => fault.nodes = vec![pick("worker", cluster.workers)],
                FaultKind::ClockSkew => {
                    fault.nodes = vec![pick("coordinator", cluster.coordinators)];
                    fault.offset = Some(format!("{}s", (unit(&rng) * 120.0) as i64 - 60));
                    fault.drift_ppm = Some((unit(&rng) * 2_000.0) as i64 - 1_000);
                    fault.duration = Some(lasting);
                }
            }
            faults.push(fault);
        }
    }
    faults
}

/// A fault of `kind` at `at` with nothing else set.
pub fn blank(kind: FaultKind, at: Duration) -> Fault {
    Fault {
        at,
        kind,
        duration: None,
        nodes: Vec::new(),
        restart_after: None,
        groups: Vec::new(),
        one_way: false,
        from: None,
        to: None,
        probability: None,
        message: None,
        min: None,
        max: None,
        offset: None,
        drift_ppm: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::LoadedScenario;
    use std::path::Path;

    #[test]
    fn the_same_seed_plans_the_same_run() {
        let text = include_str!("../../scenarios/examples/rm-outage-during-burst.toml");
        let scenario = LoadedScenario::parse(text, Path::new("../scenarios/examples/x.toml")).unwrap().scenario;
        let first = plan(&scenario, 7).unwrap();
        let again = plan(&scenario, 7).unwrap();
        assert_eq!(first.arrivals, again.arrivals);
        let other = plan(&scenario, 8).unwrap();
        assert_ne!(first.arrivals, other.arrivals);
        // 5/s for 8 minutes: about 2400 arrivals.
        assert!((2_200..2_600).contains(&first.arrivals.len()), "{}", first.arrivals.len());
        assert!(first.arrivals.windows(2).all(|pair| pair[0].at_ms <= pair[1].at_ms));
        assert!(first.arrivals.iter().all(|arrival| arrival.at_ms < 480_000));
    }
}
