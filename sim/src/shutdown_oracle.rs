//! The oracle's shutdown half: what happened to each node the harness asked to shut down
//! (`PUT /v1/info/state "SHUTTING_DOWN"`, the scenario kind `shutdown`), judged from the trace.
//!
//! Definitions, for a node asked to shut down:
//! - *sent*: the harness sent the request; *accepted*: the node answered 200 (by then it is
//!   SHUTTING_DOWN). Between the two, either behaviour is right for a new query or task.
//! - *held*: the queries a coordinator owned and had not ended when the request was sent, and
//!   the tasks a worker had (running or waiting for memory) then. A held query must reach a final
//!   state, and not by being refused for the shutdown; a held task must end FINISHED (unless its
//!   query failed for its own reasons, which cancels it) — never abandoned, cancelled or left
//!   running when the node exits.
//! - *new*: a query created on the coordinator after the acceptance must be refused with
//!   SERVER_SHUTTING_DOWN (and never start); a worker must see no task after the acceptance.
//! - *exit*: the node's `node::run` returned (the harness's `NodeExited`). It must come within
//!   `[expect] shutdown_exit_within` of the request, and a node must never exit unasked.
//!
//! The tracker is fed by [`crate::oracle::check`], one call per trace entry; it knows nothing of
//! the trace's types, so the two halves do not depend on each other.

use std::collections::{BTreeMap, BTreeSet};

use fireball::runtime::sim_hooks::Event;
use serde::Serialize;

const SHUTTING_DOWN_ERROR: &str = "SERVER_SHUTTING_DOWN";

/// One shutdown, as the run report shows it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct NodeShutdown {
    pub node: String,
    pub sent_ms: u64,
    pub accepted_ms: Option<u64>,
    /// Why the request was not accepted (the node could not be reached, or refused it).
    pub request_failed: Option<String>,
    pub exited_ms: Option<u64>,
    /// The node crashed (a fault) before it exited: its drain cannot be judged.
    pub crashed_ms: Option<u64>,
    pub queries_held: u32,
    /// Held queries that reached a final state.
    pub queries_ended: u32,
    /// New queries refused with SERVER_SHUTTING_DOWN after the acceptance.
    pub queries_refused: u32,
    pub tasks_held: u32,
    /// Held tasks that ended FINISHED.
    pub tasks_finished: u32,
    /// What went wrong: each is a violation of the run.
    pub problems: Vec<String>,
}

impl NodeShutdown {
    /// Milliseconds from the request to the exit.
    pub fn exit_after_ms(&self) -> Option<u64> {
        self.exited_ms.map(|exited_ms| exited_ms.saturating_sub(self.sent_ms))
    }
}

/// A shutdown in progress, with what it must still account for.
struct Pending {
    report: NodeShutdown,
    held_queries: BTreeSet<String>,
    /// Held task → its query.
    held_tasks: BTreeMap<String, String>,
    /// Queries created after the acceptance: each must be refused.
    new_queries: BTreeSet<String>,
}

struct TaskFacts {
    worker: String,
    query_id: String,
    ended: bool,
}

#[derive(Default)]
pub struct ShutdownTracker {
    /// Open queries → their coordinator.
    open_queries: BTreeMap<String, String>,
    /// Queries that ended in anything but FINISHED (their tasks may be cancelled).
    failed_queries: BTreeSet<String>,
    tasks: BTreeMap<String, TaskFacts>,
    /// Held tasks that ended other than FINISHED: (node, task, query, state), judged at the end
    /// (the query's own failure may come after).
    ended_otherwise: Vec<(String, String, String, String)>,
    pending: BTreeMap<String, Pending>,
    done: Vec<NodeShutdown>,
    unasked_exits: Vec<String>,
}

impl ShutdownTracker {
    pub fn on_event(&mut self, at_ms: u64, event: &Event) {
        match event {
            Event::QueryCreated { query_id, coordinator, .. } => {
                self.open_queries.insert(query_id.clone(), coordinator.clone());
                if let Some(pending) = self.pending.get_mut(coordinator) {
                    if pending.report.accepted_ms.is_some() {
                        pending.new_queries.insert(query_id.clone());
                    }
                }
            }
            Event::QueryStarted { query_id, coordinator, .. } => {
                if let Some(pending) = self.pending.get_mut(coordinator) {
                    if pending.new_queries.contains(query_id) {
                        pending.report.problems.push(format!("query {query_id} sent after the shutdown was accepted started at {at_ms} ms"));
                    }
                }
            }
            Event::QueryFinished { query_id, coordinator, state, error_name } => {
                self.open_queries.remove(query_id);
                if state != "FINISHED" {
                    self.failed_queries.insert(query_id.clone());
                }
                let Some(pending) = self.pending.get_mut(coordinator) else { return };
                let refused = error_name.as_deref() == Some(SHUTTING_DOWN_ERROR);
                if pending.held_queries.remove(query_id) {
                    pending.report.queries_ended += 1;
                    if refused {
                        pending.report.problems.push(format!("query {query_id}, accepted before the shutdown, failed with {SHUTTING_DOWN_ERROR}"));
                    }
                } else if pending.new_queries.remove(query_id) {
                    if refused {
                        pending.report.queries_refused += 1;
                    } else {
                        let error = error_name.as_deref().unwrap_or("no error");
                        pending.report.problems.push(format!(
                            "query {query_id} sent after the shutdown was accepted ended {state} ({error}), not refused with {SHUTTING_DOWN_ERROR}"
                        ));
                    }
                }
            }
            Event::TaskStarted { task_id, query_id, worker } | Event::TaskMemory { task_id, query_id, worker, .. } => {
                self.see_task(task_id, query_id, worker);
            }
            Event::TaskEnded { task_id, query_id, worker, state } => {
                self.see_task(task_id, query_id, worker);
                if let Some(task) = self.tasks.get_mut(task_id) {
                    task.ended = true;
                }
                let Some(pending) = self.pending.get_mut(worker) else { return };
                if pending.held_tasks.remove(task_id).is_none() {
                    return;
                }
                if state == "FINISHED" {
                    pending.report.tasks_finished += 1;
                } else {
                    self.ended_otherwise.push((worker.clone(), task_id.clone(), query_id.clone(), state.clone()));
                }
            }
            Event::InvariantViolated { .. } | Event::TaskOutputConsumed { .. } => {}
        }
    }

    /// The first time a task shows up on a worker it is new there; a worker that accepted a
    /// shutdown must not get one.
    fn see_task(&mut self, task_id: &str, query_id: &str, worker: &str) {
        if self.tasks.contains_key(task_id) {
            return;
        }
        self.tasks.insert(task_id.to_string(), TaskFacts { worker: worker.to_string(), query_id: query_id.to_string(), ended: false });
        if let Some(pending) = self.pending.get_mut(worker) {
            if pending.report.accepted_ms.is_some() {
                pending.report.problems.push(format!("took task {task_id} after the shutdown was accepted"));
            }
        }
    }

    /// The harness sent the request: from now on the node's open work is held.
    pub fn on_sent(&mut self, at_ms: u64, node: &str) {
        self.close(node);
        let held_queries: BTreeSet<String> =
            self.open_queries.iter().filter(|(_, owner)| *owner == node).map(|(query_id, _)| query_id.clone()).collect();
        let held_tasks: BTreeMap<String, String> = self
            .tasks
            .iter()
            .filter(|(_, task)| task.worker == node && !task.ended)
            .map(|(task_id, task)| (task_id.clone(), task.query_id.clone()))
            .collect();
        let report = NodeShutdown {
            node: node.to_string(),
            sent_ms: at_ms,
            queries_held: held_queries.len() as u32,
            tasks_held: held_tasks.len() as u32,
            ..NodeShutdown::default()
        };
        self.pending.insert(node.to_string(), Pending { report, held_queries, held_tasks, new_queries: BTreeSet::new() });
    }

    pub fn on_accepted(&mut self, at_ms: u64, node: &str) {
        if let Some(report) = self.latest(node) {
            report.accepted_ms.get_or_insert(at_ms);
        }
    }

    pub fn on_failed(&mut self, node: &str, reason: &str) {
        if let Some(report) = self.latest(node) {
            report.request_failed.get_or_insert_with(|| reason.to_string());
        }
    }

    /// The node's latest shutdown, in progress or already over: a node with nothing to finish
    /// can exit before its answer to the request has reached the operator.
    fn latest(&mut self, node: &str) -> Option<&mut NodeShutdown> {
        match self.pending.get_mut(node) {
            Some(pending) => Some(&mut pending.report),
            None => self.done.iter_mut().rev().find(|report| report.node == node),
        }
    }

    /// The node's `node::run` returned: whatever it still held is left behind.
    pub fn on_exit(&mut self, at_ms: u64, node: &str) {
        let Some(pending) = self.pending.get_mut(node) else {
            self.unasked_exits.push(format!("{node} exited at {at_ms} ms without being asked to shut down"));
            return;
        };
        pending.report.exited_ms = Some(at_ms);
        if !pending.held_queries.is_empty() {
            pending.report.problems.push(format!(
                "exited with {} of its queries not final: {:?}",
                pending.held_queries.len(),
                pending.held_queries.iter().take(5).collect::<Vec<_>>()
            ));
            pending.held_queries.clear();
        }
        if !pending.held_tasks.is_empty() {
            pending.report.problems.push(format!(
                "exited with {} tasks unfinished: {:?}",
                pending.held_tasks.len(),
                pending.held_tasks.keys().take(5).collect::<Vec<_>>()
            ));
            pending.held_tasks.clear();
        }
        self.close(node);
    }

    /// A crash (a fault) ends the node's queries and tasks with it; a shutdown in progress can no
    /// longer be judged.
    pub fn on_crash(&mut self, at_ms: u64, node: &str) {
        self.open_queries.retain(|_, owner| owner != node);
        for task in self.tasks.values_mut().filter(|task| task.worker == node) {
            task.ended = true;
        }
        if let Some(pending) = self.pending.get_mut(node) {
            pending.report.crashed_ms = Some(at_ms);
            pending.held_queries.clear();
            pending.held_tasks.clear();
            self.close(node);
        }
    }

    fn close(&mut self, node: &str) {
        if let Some(pending) = self.pending.remove(node) {
            self.done.push(pending.report);
        }
    }

    /// Every shutdown of the run, judged; `exit_within_ms` is `[expect] shutdown_exit_within`.
    pub fn finish(mut self, exit_within_ms: Option<u64>) -> ShutdownSummary {
        let open: Vec<String> = self.pending.keys().cloned().collect();
        for node in open {
            if let Some(pending) = self.pending.get_mut(&node) {
                let report = &mut pending.report;
                if !pending.held_queries.is_empty() {
                    report.problems.push(format!("{} of its queries never reached a final state", pending.held_queries.len()));
                }
                if !pending.new_queries.is_empty() {
                    report.problems.push(format!("{} queries sent after the shutdown never ended", pending.new_queries.len()));
                }
            }
            self.close(&node);
        }
        for (node, task_id, query_id, state) in &self.ended_otherwise {
            if self.failed_queries.contains(query_id) {
                continue;
            }
            if let Some(report) = self.done.iter_mut().rev().find(|report| report.node == *node) {
                report.problems.push(format!("task {task_id} ended {state} though its query {query_id} did not fail"));
            }
        }
        for report in &mut self.done {
            match (report.exit_after_ms(), exit_within_ms) {
                // Exited as asked (an answer lost to the exit itself does not matter).
                (Some(after_ms), Some(within_ms)) if after_ms > within_ms => {
                    report.problems.push(format!("exited {after_ms} ms after the request (allowed {within_ms} ms)"))
                }
                (Some(_), _) => {}
                (None, _) if report.crashed_ms.is_some() => {}
                (None, within) => match &report.request_failed {
                    // Unanswered: nothing was asked of the node, but the scenario's bound cannot hold.
                    Some(reason) if within.is_some() => report.problems.push(format!("the shutdown request failed: {reason}")),
                    Some(_) => {}
                    None => report.problems.push(format!("never exited (asked at {} ms)", report.sent_ms)),
                },
            }
        }
        self.done.sort_by(|left, right| (left.sent_ms, &left.node).cmp(&(right.sent_ms, &right.node)));
        ShutdownSummary { shutdowns: self.done, unasked_exits: self.unasked_exits }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ShutdownSummary {
    pub shutdowns: Vec<NodeShutdown>,
    /// Nodes whose `node::run` returned although nobody asked them to stop.
    pub unasked_exits: Vec<String>,
}

impl ShutdownSummary {
    /// One line per problem, for the run's violations.
    pub fn violations(&self) -> Vec<String> {
        let mut violations = self.unasked_exits.clone();
        for report in &self.shutdowns {
            violations.extend(report.problems.iter().map(|problem| format!("shutdown of {}: {problem}", report.node)));
        }
        violations
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oracle::{check, Entry, HarnessEvent};
    use crate::scenario::{Duration, Expect};

    fn created(id: &str, coordinator: &str) -> Entry {
        Entry::Node(Event::QueryCreated {
            query_id: id.into(),
            coordinator: coordinator.into(),
            user: "u".into(),
            group: "g".into(),
            queue_limits: vec![("g".into(), 10)],
        })
    }
    fn started(id: &str, coordinator: &str) -> Entry {
        Entry::Node(Event::QueryStarted { query_id: id.into(), coordinator: coordinator.into(), group: "g".into(), limits: vec![("g".into(), 10)] })
    }
    fn ended(id: &str, coordinator: &str, error: Option<&str>) -> Entry {
        Entry::Node(Event::QueryFinished {
            query_id: id.into(),
            coordinator: coordinator.into(),
            state: if error.is_some() { "FAILED" } else { "FINISHED" }.into(),
            error_name: error.map(String::from),
        })
    }
    fn task_started(task: &str, query: &str, worker: &str) -> Entry {
        Entry::Node(Event::TaskStarted { task_id: task.into(), query_id: query.into(), worker: worker.into() })
    }
    fn task_ended(task: &str, query: &str, worker: &str, state: &str) -> Entry {
        Entry::Node(Event::TaskEnded { task_id: task.into(), query_id: query.into(), worker: worker.into(), state: state.into() })
    }
    fn harness(event: HarnessEvent) -> Entry {
        Entry::Harness(event)
    }
    fn sent(node: &str) -> Entry {
        harness(HarnessEvent::ShutdownSent { node: node.into() })
    }
    fn accepted(node: &str) -> Entry {
        harness(HarnessEvent::ShutdownAccepted { node: node.into() })
    }
    fn exited(node: &str) -> Entry {
        harness(HarnessEvent::NodeExited { node: node.into() })
    }
    fn expect() -> Expect {
        Expect { lost_queries: Some(0), shutdown_exit_within: Some(Duration(10_000)), ..Expect::default() }
    }

    /// A coordinator drains as it should: its held queries finish, a new one is refused, it exits
    /// in time. Then the same trace, broken three ways, must each be caught.
    #[test]
    fn a_draining_coordinator_is_judged() {
        let good = vec![
            (0, created("a", "c1")),
            (0, started("a", "c1")),
            (0, created("b", "c1")), // queued when asked: must still run and end
            (1_000, sent("c1")),
            (1_005, accepted("c1")),
            (1_500, created("n", "c1")),
            (1_500, ended("n", "c1", Some(SHUTTING_DOWN_ERROR))),
            (3_000, ended("a", "c1", None)),
            (3_000, started("b", "c1")),
            (5_000, ended("b", "c1", None)),
            (6_000, exited("c1")),
        ];
        let report = check(&good, &expect(), None, 10_000);
        assert!(report.violations.is_empty(), "{:?}", report.violations);
        let shutdown = &report.shutdowns.shutdowns[0];
        assert_eq!((shutdown.queries_held, shutdown.queries_ended, shutdown.queries_refused), (2, 2, 1));
        assert_eq!(shutdown.exit_after_ms(), Some(5_000));
        assert_eq!(report.failed_by_error.get(SHUTTING_DOWN_ERROR), Some(&1), "refused, not lost");

        // A held query that never ends: the node exits without it (and it is lost).
        let mut never_ends = good.clone();
        never_ends.retain(|(_, entry)| *entry != ended("b", "c1", None));
        let report = check(&never_ends, &expect(), None, 10_000);
        assert!(report.violations.iter().any(|v| v.contains("shutdown of c1: exited with 1 of its queries not final")), "{:?}", report.violations);
        assert!(report.violations.iter().any(|v| v.contains("lost queries")), "{:?}", report.violations);

        // A node that never exits.
        let mut stays = good.clone();
        stays.pop();
        let report = check(&stays, &expect(), None, 10_000);
        assert!(report.violations.iter().any(|v| v.contains("shutdown of c1: never exited")), "{:?}", report.violations);

        // A query sent after the acceptance that is run instead of refused, and a slow exit.
        let mut admits = good.clone();
        admits[6] = (1_600, started("n", "c1"));
        admits.insert(7, (2_000, ended("n", "c1", None)));
        let last = admits.len() - 1;
        admits[last] = (20_000, exited("c1"));
        let report = check(&admits, &expect(), None, 30_000);
        let violations = report.violations.join("\n");
        assert!(violations.contains("query n sent after the shutdown was accepted started"), "{violations}");
        assert!(violations.contains("ended FINISHED (no error), not refused"), "{violations}");
        assert!(violations.contains("exited 19000 ms after the request (allowed 10000 ms)"), "{violations}");
    }

    #[test]
    fn a_draining_worker_is_judged() {
        let good = vec![
            (0, created("q", "c1")),
            (0, started("q", "c1")),
            (0, task_started("q.0", "q", "w1")),
            (1_000, sent("w1")),
            (1_005, accepted("w1")),
            (2_000, task_ended("q.0", "q", "w1", "FINISHED")),
            (2_500, ended("q", "c1", None)),
            (2_600, exited("w1")),
        ];
        let report = check(&good, &expect(), None, 5_000);
        assert!(report.violations.is_empty(), "{:?}", report.violations);
        assert_eq!((report.shutdowns.shutdowns[0].tasks_held, report.shutdowns.shutdowns[0].tasks_finished), (1, 1));

        // The worker cancels its running task, and takes a new one, though its query is fine.
        let mut broken = good.clone();
        broken[5] = (2_000, task_ended("q.0", "q", "w1", "CANCELED"));
        broken.insert(6, (2_100, task_started("q.1", "q", "w1")));
        broken.insert(7, (2_200, task_ended("q.1", "q", "w1", "FINISHED")));
        let violations = check(&broken, &expect(), None, 5_000).violations.join("\n");
        assert!(violations.contains("task q.0 ended CANCELED though its query q did not fail"), "{violations}");
        assert!(violations.contains("took task q.1 after the shutdown was accepted"), "{violations}");

        // Exiting with the task still running abandons it.
        let mut abandons = good.clone();
        abandons.remove(5);
        let violations = check(&abandons, &expect(), None, 5_000).violations.join("\n");
        assert!(violations.contains("shutdown of w1: exited with 1 tasks unfinished"), "{violations}");

        // A worker with nothing to finish may exit before its answer reaches the operator.
        let quick = vec![(0, sent("w1")), (9, exited("w1")), (12, accepted("w1"))];
        let report = check(&quick, &expect(), None, 5_000);
        assert!(report.violations.is_empty(), "{:?}", report.violations);
        assert_eq!((report.shutdowns.shutdowns[0].accepted_ms, report.shutdowns.shutdowns[0].exit_after_ms()), (Some(12), Some(9)));

        // A node that exits unasked, and a request that never got through.
        let unasked = vec![(0, exited("w2")), (100, sent("w3")), (200, harness(HarnessEvent::ShutdownFailed { node: "w3".into(), reason: "timed out".into() }))];
        let violations = check(&unasked, &expect(), None, 5_000).violations.join("\n");
        assert!(violations.contains("w2 exited at 0 ms without being asked"), "{violations}");
        assert!(violations.contains("shutdown of w3: the shutdown request failed: timed out"), "{violations}");
    }
}
