//! The oracle: omniscient, fed only by the trace, never read by the system. For every resource
//! group at every instant it knows the true number of running and queued queries across all
//! coordinators, and checks the run against the scenario's `[expect]`.
//!
//! Definitions:
//! - *running* in a group: started (`QueryStarted`) and not yet final, counted in the leaf and
//!   every ancestor; *queued*: created and neither started nor final.
//! - *overshoot*: `running - hardConcurrencyLimit` when positive; *overshoot-seconds*: its integral.
//! - *lost*: a client was given the query id and, by the end of the run, the query never reached
//!   a final state — while its coordinator lived. Queries open on a coordinator when it crashed
//!   are counted apart (`died_with_coordinator`): their owner is gone, which the client sees.
//! - *duplicate execution*: a query started twice, a task attempt started twice (on any
//!   workers), or a query that took output from two attempts of one task (ids are
//!   `query.stage.partition.attempt`: a re-placed task is a new attempt, and at most one may feed
//!   the query).
//! - *drain time*: from the end of the last fault to the first instant no query is queued.
//! - *shutdown*: what a node asked to shut down held, refused and finished, and when it exited;
//!   judged by [`crate::shutdown_oracle`], which this replay feeds.

use std::collections::BTreeMap;

use fireball::runtime::sim_hooks::Event;
use serde::Serialize;

use crate::scenario::Expect;

// The trace's entry types are shared with the memory half, which this module reads: they live
// below both (`crate::entry`), re-exported here where callers have always found them.
pub use crate::entry::{Entry, HarnessEvent};

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct GroupReport {
    pub hard_concurrency_limit: u32,
    pub max_running: u32,
    pub overshoot_max: u32,
    pub overshoot_seconds: f64,
    pub max_queued_limit: u32,
    pub max_queued: u32,
    /// Episodes in which queued exceeded maxQueued.
    pub queue_violations: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50_ms: u64,
    pub p90_ms: u64,
    pub p99_ms: u64,
    pub max_ms: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct OracleReport {
    pub groups: BTreeMap<String, GroupReport>,
    pub queue_time: Percentiles,
    pub created: u32,
    pub admitted: u32,
    pub finished: u32,
    pub failed_by_error: BTreeMap<String, u32>,
    pub lost_queries: Vec<String>,
    pub died_with_coordinator: u32,
    pub duplicate_executions: Vec<String>,
    /// Invariants a node's pure core found broken (always a failure, whatever `[expect]` says).
    pub invariant_violations: Vec<String>,
    pub last_fault_end_ms: Option<u64>,
    /// Milliseconds from the last fault's end until no query was queued (`None`: never).
    pub drain_ms: Option<u64>,
    pub memory: crate::memory_oracle::MemoryReport,
    /// Nodes asked to shut down: what they held, refused and finished, and when they exited.
    pub shutdowns: crate::shutdown_oracle::ShutdownSummary,
    pub violations: Vec<String>,
}

#[derive(Default)]
struct Group {
    report: GroupReport,
    running: u32,
    queued: u32,
    in_violation: bool,
}

struct QueryFacts {
    coordinator: String,
    created_ms: u64,
    queue_groups: Vec<String>,
    run_groups: Vec<String>,
    started: bool,
    done: bool,
}

/// Replays `entries` (in time order) and checks them against `expect`.
pub fn check(entries: &[(u64, Entry)], expect: &Expect, last_fault_end_ms: Option<u64>, run_end_ms: u64) -> OracleReport {
    let mut report = OracleReport { last_fault_end_ms, ..OracleReport::default() };
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    let mut queries: BTreeMap<String, QueryFacts> = BTreeMap::new();
    let mut tasks_started: BTreeMap<String, u32> = BTreeMap::new();
    // Per query and task (`query.stage.partition`): the attempt whose output it took.
    let mut consumed_attempts: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut queue_times = hdrhistogram::Histogram::<u64>::new(3).expect("3 significant digits is valid");
    let mut total_queued: u64 = 0;
    let mut last_ms = 0;
    let mut drained_at_ms = None;
    let mut memory = crate::memory_oracle::MemoryTracker::default();
    let mut shutdowns = crate::shutdown_oracle::ShutdownTracker::default();
    for (at_ms, entry) in entries {
        let at_ms = *at_ms;
        memory.on_entry(at_ms, entry);
        match entry {
            Entry::Node(event) => shutdowns.on_event(at_ms, event),
            Entry::Harness(HarnessEvent::ShutdownSent { node }) => shutdowns.on_sent(at_ms, node),
            Entry::Harness(HarnessEvent::ShutdownAccepted { node }) => shutdowns.on_accepted(at_ms, node),
            Entry::Harness(HarnessEvent::ShutdownFailed { node, reason }) => shutdowns.on_failed(node, reason),
            Entry::Harness(HarnessEvent::NodeExited { node }) => shutdowns.on_exit(at_ms, node),
            Entry::Harness(HarnessEvent::NodeCrashed { node }) => shutdowns.on_crash(at_ms, node),
            Entry::Harness(_) => {}
        }
        debug_assert!(at_ms >= last_ms, "trace is in time order");
        for group in groups.values_mut() {
            let over = group.running.saturating_sub(group.report.hard_concurrency_limit);
            group.report.overshoot_seconds += f64::from(over) * (at_ms - last_ms) as f64 / 1_000.0;
        }
        last_ms = at_ms;
        match entry {
            Entry::Node(Event::QueryCreated { query_id, coordinator, queue_limits, .. }) => {
                report.created += 1;
                for (name, limit) in queue_limits {
                    let group = groups.entry(name.clone()).or_default();
                    group.report.max_queued_limit = *limit;
                    group.queued += 1;
                    group.report.max_queued = group.report.max_queued.max(group.queued);
                    let over = group.queued > *limit;
                    if over && !group.in_violation {
                        group.report.queue_violations += 1;
                    }
                    group.in_violation = over;
                }
                total_queued += 1;
                let facts = QueryFacts {
                    coordinator: coordinator.clone(),
                    created_ms: at_ms,
                    queue_groups: queue_limits.iter().map(|(name, _)| name.clone()).collect(),
                    run_groups: Vec::new(),
                    started: false,
                    done: false,
                };
                queries.insert(query_id.clone(), facts);
            }
            Entry::Node(Event::QueryStarted { query_id, limits, .. }) => {
                let Some(facts) = queries.get_mut(query_id) else { continue };
                if facts.started {
                    report.duplicate_executions.push(format!("query {query_id} started twice"));
                    continue;
                }
                facts.started = true;
                report.admitted += 1;
                let _ = queue_times.record(at_ms - facts.created_ms);
                leave_queue(&mut groups, &facts.queue_groups, &mut total_queued);
                facts.run_groups = limits.iter().map(|(name, _)| name.clone()).collect();
                for (name, limit) in limits {
                    let group = groups.entry(name.clone()).or_default();
                    group.report.hard_concurrency_limit = *limit;
                    group.running += 1;
                    group.report.max_running = group.report.max_running.max(group.running);
                    let over = group.running.saturating_sub(*limit);
                    group.report.overshoot_max = group.report.overshoot_max.max(over);
                }
            }
            Entry::Node(Event::QueryFinished { query_id, state, error_name, .. }) => {
                if queries.get(query_id).is_none_or(|facts| facts.done) {
                    continue;
                }
                end_query(&mut groups, &mut queries, query_id, &mut total_queued);
                if state == "FINISHED" {
                    report.finished += 1;
                } else {
                    *report.failed_by_error.entry(error_name.clone().unwrap_or_else(|| "UNKNOWN".into())).or_insert(0) += 1;
                }
            }
            Entry::Node(Event::TaskStarted { task_id, .. }) => {
                let count = tasks_started.entry(task_id.clone()).or_insert(0);
                *count += 1;
                if *count == 2 {
                    report.duplicate_executions.push(format!("task {task_id} started twice"));
                }
            }
            Entry::Node(Event::TaskOutputConsumed { query_id, task_id }) => {
                let task = task_id.rsplit_once('.').map_or(task_id.as_str(), |(task, _attempt)| task);
                let first = consumed_attempts.entry((query_id.clone(), task.to_string())).or_insert_with(|| task_id.clone());
                if first != task_id {
                    report.duplicate_executions.push(format!("query {query_id} took output from attempts {first} and {task_id}"));
                }
            }
            Entry::Node(Event::TaskEnded { .. } | Event::TaskMemory { .. }) => {}
            Entry::Node(Event::InvariantViolated { core, message }) => {
                report.invariant_violations.push(format!("{core} at {at_ms} ms: {message}"));
            }
            Entry::Harness(HarnessEvent::NodeCrashed { node }) => {
                let open: Vec<String> = queries
                    .iter()
                    .filter(|(_, facts)| !facts.done && facts.coordinator == *node)
                    .map(|(query_id, _)| query_id.clone())
                    .collect();
                for query_id in open {
                    end_query(&mut groups, &mut queries, &query_id, &mut total_queued);
                    report.died_with_coordinator += 1;
                }
            }
            Entry::Harness(_) => {}
        }
        if drained_at_ms.is_none() && total_queued == 0 && last_fault_end_ms.is_some_and(|end| at_ms >= end) {
            drained_at_ms = Some(at_ms);
        }
    }
    // The queue may already have been empty when the last fault ended.
    if let Some(end_ms) = last_fault_end_ms {
        if drained_at_ms.is_none() && total_queued == 0 && last_ms <= end_ms {
            drained_at_ms = Some(end_ms);
        }
        report.drain_ms = drained_at_ms.map(|at_ms| at_ms.saturating_sub(end_ms));
    }
    for group in groups.values_mut() {
        let over = group.running.saturating_sub(group.report.hard_concurrency_limit);
        group.report.overshoot_seconds += f64::from(over) * run_end_ms.saturating_sub(last_ms) as f64 / 1_000.0;
    }
    report.memory = memory.finish(run_end_ms);
    report.shutdowns = shutdowns.finish(expect.shutdown_exit_within.map(|within| within.0));
    report.lost_queries = queries.iter().filter(|(_, facts)| !facts.done).map(|(query_id, _)| query_id.clone()).collect();
    report.groups = groups.into_iter().map(|(name, group)| (name, group.report)).collect();
    report.queue_time = Percentiles {
        count: queue_times.len(),
        p50_ms: queue_times.value_at_quantile(0.5),
        p90_ms: queue_times.value_at_quantile(0.9),
        p99_ms: queue_times.value_at_quantile(0.99),
        max_ms: queue_times.max(),
    };
    report.violations = violations(&report, expect);
    report
}

/// Queries created and not yet ended (neither final nor gone with a crashed coordinator).
pub fn open_queries(entries: &[(u64, Entry)]) -> usize {
    let mut open: BTreeMap<&str, &str> = BTreeMap::new();
    for (_, entry) in entries {
        match entry {
            Entry::Node(Event::QueryCreated { query_id, coordinator, .. }) => {
                open.insert(query_id, coordinator);
            }
            Entry::Node(Event::QueryFinished { query_id, .. }) => {
                open.remove(query_id.as_str());
            }
            Entry::Harness(HarnessEvent::NodeCrashed { node }) => open.retain(|_, owner| owner != node),
            _ => {}
        }
    }
    open.len()
}

fn leave_queue(groups: &mut BTreeMap<String, Group>, names: &[String], total_queued: &mut u64) {
    for name in names {
        if let Some(group) = groups.get_mut(name) {
            group.queued = group.queued.saturating_sub(1);
            group.in_violation = group.queued > group.report.max_queued_limit;
        }
    }
    *total_queued = total_queued.saturating_sub(1);
}

fn end_query(groups: &mut BTreeMap<String, Group>, queries: &mut BTreeMap<String, QueryFacts>, query_id: &str, total_queued: &mut u64) {
    let Some(facts) = queries.get_mut(query_id) else { return };
    facts.done = true;
    if facts.started {
        for name in &facts.run_groups {
            if let Some(group) = groups.get_mut(name) {
                group.running = group.running.saturating_sub(1);
            }
        }
    } else {
        let names = facts.queue_groups.clone();
        leave_queue(groups, &names, total_queued);
    }
}

fn violations(report: &OracleReport, expect: &Expect) -> Vec<String> {
    let mut violations = Vec::new();
    if let Some(allowed) = expect.max_overadmission {
        for (name, group) in &report.groups {
            if group.overshoot_max > allowed {
                violations.push(format!(
                    "over-admission in {name}: {} running against a hard limit of {} (allowed overshoot {allowed}; {:.1} overshoot-seconds)",
                    group.max_running, group.hard_concurrency_limit, group.overshoot_seconds
                ));
            }
        }
    }
    if let Some(allowed) = expect.lost_queries {
        if report.lost_queries.len() as u32 > allowed {
            violations.push(format!("{} lost queries (allowed {allowed}): {:?}", report.lost_queries.len(), first(&report.lost_queries)));
        }
    }
    if !report.invariant_violations.is_empty() {
        violations.push(format!(
            "{} invariant violations: {:?}",
            report.invariant_violations.len(),
            first(&report.invariant_violations)
        ));
    }
    let allowed_duplicates = expect.duplicate_executions.unwrap_or(0);
    if report.duplicate_executions.len() as u32 > allowed_duplicates {
        violations.push(format!("duplicate executions: {:?}", first(&report.duplicate_executions)));
    }
    if let (Some(within), Some(_)) = (&expect.drain_within, report.last_fault_end_ms) {
        match report.drain_ms {
            Some(drain_ms) if drain_ms <= within.0 => {}
            Some(drain_ms) => violations.push(format!("queues drained {drain_ms} ms after the last fault (allowed {} ms)", within.0)),
            None => violations.push("queues never drained after the last fault".to_string()),
        }
    }
    if let Some(minimum) = expect.min_finished {
        if report.finished < minimum {
            violations.push(format!("only {} queries finished (expected at least {minimum})", report.finished));
        }
    }
    if let Some(allowed) = expect.queue_violations {
        let total: u32 = report.groups.values().map(|group| group.queue_violations).sum();
        if total > allowed {
            violations.push(format!("{total} queue-bound violations (allowed {allowed})"));
        }
    }
    memory_violations(&report.memory, expect, &mut violations);
    violations.extend(report.shutdowns.violations());
    violations
}

fn memory_violations(memory: &crate::memory_oracle::MemoryReport, expect: &Expect, violations: &mut Vec<String>) {
    let allowed_leaks = expect.leaked_reservations.unwrap_or(0);
    if memory.leaked.len() as u32 > allowed_leaks {
        violations.push(format!("{} reservations left behind by ended queries: {:?}", memory.leaked.len(), first(&memory.leaked)));
    }
    if let Some(allowed) = expect.max_kills_per_episode {
        if memory.kills_per_episode_max > allowed {
            violations.push(format!(
                "{} queries killed in one out-of-memory episode (allowed {allowed}; per episode {:?})",
                memory.kills_per_episode_max, memory.kills_per_episode
            ));
        }
    }
    if let Some(allowed) = expect.kills_while_not_oom {
        if memory.kills_while_not_oom > allowed {
            violations.push(format!("{} kills while the cluster was not out of memory (allowed {allowed})", memory.kills_while_not_oom));
        }
    }
    if let Some(allowed) = expect.overlapping_kills {
        if memory.overlapping_kills > allowed {
            violations.push(format!("{} kills while an earlier victim still held memory (allowed {allowed})", memory.overlapping_kills));
        }
    }
    if let Some(minimum) = expect.min_oom_episodes {
        if memory.oom_episodes < minimum {
            violations.push(format!("only {} out-of-memory episodes (the scenario must build at least {minimum})", memory.oom_episodes));
        }
    }
}

fn first(items: &[String]) -> Vec<&String> {
    items.iter().take(5).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Duration;

    fn created(id: &str, coordinator: &str) -> Entry {
        Entry::Node(Event::QueryCreated {
            query_id: id.into(),
            coordinator: coordinator.into(),
            user: "u".into(),
            group: "g.leaf".into(),
            queue_limits: vec![("g.leaf".into(), 1), ("g".into(), 10)],
        })
    }
    fn started(id: &str) -> Entry {
        Entry::Node(Event::QueryStarted {
            query_id: id.into(),
            coordinator: "c".into(),
            group: "g.leaf".into(),
            limits: vec![("g.leaf".into(), 2), ("g".into(), 5)],
        })
    }
    fn finished(id: &str) -> Entry {
        Entry::Node(Event::QueryFinished { query_id: id.into(), coordinator: "c".into(), state: "FINISHED".into(), error_name: None })
    }

    #[test]
    fn measures_overshoot_and_its_duration() {
        let entries = vec![
            (0, created("a", "c1")),
            (0, started("a")),
            (0, created("b", "c2")),
            (0, started("b")),
            (1_000, created("c", "c1")),
            (1_000, started("c")),
            (3_000, finished("c")),
            (4_000, finished("a")),
            (4_000, finished("b")),
        ];
        let expect = Expect { max_overadmission: Some(0), lost_queries: Some(0), ..Expect::default() };
        let report = check(&entries, &expect, None, 5_000);
        let leaf = &report.groups["g.leaf"];
        assert_eq!((leaf.max_running, leaf.overshoot_max), (3, 1));
        assert!((leaf.overshoot_seconds - 2.0).abs() < 1e-9, "{}", leaf.overshoot_seconds);
        assert_eq!(report.groups["g"].overshoot_max, 0);
        assert_eq!(report.violations.len(), 1, "{:?}", report.violations);
        assert!(report.violations[0].contains("g.leaf"));
        assert_eq!(report.queue_time.count, 3);
        assert_eq!(report.finished, 3);
        let lenient = Expect { max_overadmission: Some(1), ..Expect::default() };
        assert!(check(&entries, &lenient, None, 5_000).violations.is_empty());
    }

    #[test]
    fn lost_queries_duplicates_queue_bounds_and_crashes() {
        let entries = vec![
            (0, created("a", "c1")),
            (0, created("b", "c1")), // 2 queued against maxQueued 1 in g.leaf
            (0, created("z", "c2")),
            (100, started("a")),
            (100, started("a")),
            (200, Entry::Harness(HarnessEvent::NodeCrashed { node: "c2".into() })),
        ];
        let expect = Expect { lost_queries: Some(0), queue_violations: Some(0), ..Expect::default() };
        let report = check(&entries, &expect, None, 1_000);
        assert_eq!(report.lost_queries, vec!["a".to_string(), "b".to_string()]);
        assert_eq!(report.died_with_coordinator, 1);
        assert_eq!(report.duplicate_executions.len(), 1);
        assert_eq!(report.groups["g.leaf"].queue_violations, 1);
        assert_eq!(report.violations.len(), 3, "{:?}", report.violations);
    }

    #[test]
    fn output_from_two_attempts_of_one_task_is_a_duplicate_execution() {
        let consumed = |task: &str| Entry::Node(Event::TaskOutputConsumed { query_id: "q".into(), task_id: task.into() });
        let task_started = |task: &str, worker: &str| {
            Entry::Node(Event::TaskStarted { task_id: task.into(), query_id: "q".into(), worker: worker.into() })
        };
        let expect = Expect { duplicate_executions: Some(0), ..Expect::default() };
        // A re-placed task: attempt 0 started but only attempt 1 fed the query (and its pages
        // are recorded as they come: the same attempt twice is fine).
        let healthy = vec![
            (0, task_started("q.0.0.0", "w1")),
            (10, task_started("q.0.0.1", "w2")),
            (20, consumed("q.0.0.1")),
            (30, consumed("q.0.0.1")),
            (30, consumed("q.0.1.0")),
        ];
        let report = check(&healthy, &expect, None, 100);
        assert!(report.duplicate_executions.is_empty(), "{:?}", report.duplicate_executions);
        assert!(report.violations.is_empty(), "{:?}", report.violations);
        // Broken: both attempts fed the query.
        let mut broken = healthy.clone();
        broken.push((40, consumed("q.0.0.0")));
        let report = check(&broken, &expect, None, 100);
        assert_eq!(report.duplicate_executions, vec!["query q took output from attempts q.0.0.1 and q.0.0.0".to_string()]);
        assert_eq!(report.violations.len(), 1, "{:?}", report.violations);
        // Broken: one attempt id started on two workers.
        let mut twice = healthy;
        twice.push((50, task_started("q.0.0.1", "w3")));
        assert_eq!(check(&twice, &expect, None, 100).duplicate_executions, vec!["task q.0.0.1 started twice".to_string()]);
    }

    #[test]
    fn drain_time_counts_from_the_last_fault() {
        let entries = vec![(0, created("a", "c1")), (5_000, started("a")), (6_000, finished("a"))];
        let expect = Expect { drain_within: Some(Duration(1_000)), ..Expect::default() };
        let report = check(&entries, &expect, Some(2_000), 10_000);
        assert_eq!(report.drain_ms, Some(3_000));
        assert_eq!(report.violations.len(), 1);
        let report = check(&entries, &Expect::default(), Some(8_000), 10_000);
        assert_eq!(report.drain_ms, Some(0), "already empty when the fault ended");
    }
}
