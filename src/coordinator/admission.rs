//! Admission against one cluster-wide concurrency limit, with Presto's freshness gate.
//!
//! This is the walking skeleton's stand-in for a resource-group tree: a single root group
//! (`global`) whose limits are `query.max-concurrent-queries` / `query.max-queued-queries`, like
//! Presto's legacy resource-group manager. The merge and the gate follow Presto's
//! `InternalResourceGroup` / `InternalResourceGroupManager` exactly:
//!
//! - total running = local running + remote running (every other coordinator, from the RM view);
//! - `canRunMore`: `total < hard limit`, and not gated;
//! - `canQueueMore`: local queued + remote queued `< max queued`;
//! - the gate: when `total >= hard limit × concurrency-threshold` and no successful RM refresh has
//!   happened since this group last started a query, wait. So at or above the threshold a
//!   coordinator starts at most one query per fresh view; below it, it admits on the last view.
//!
//! Pure: no I/O, time passed in.

use std::collections::{BTreeSet, VecDeque};

pub const ROOT_GROUP: &str = "global";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RemoteCounts {
    pub running: u32,
    pub queued: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubmitOutcome {
    /// Start it now.
    Started,
    Queued,
    /// Neither run nor queue is possible: fail with `QUERY_QUEUE_FULL` and this message.
    QueueFull(String),
}

#[derive(Debug)]
pub struct Admission {
    hard_concurrency_limit: u32,
    max_queued: u32,
    concurrency_threshold: f64,
    queued: VecDeque<String>,
    running: BTreeSet<String>,
    remote: RemoteCounts,
    /// When the last successful RM refresh completed; `None` before the first one (Presto's -1).
    last_refresh_ms: Option<u64>,
    /// When this group last started a query (Presto stamps group creation time initially).
    last_start_ms: u64,
    /// The deliberately weakened `naive` policy: never waits for a fresh view.
    naive: bool,
}

impl Admission {
    pub fn new(hard_concurrency_limit: u32, max_queued: u32, concurrency_threshold: f64, now_ms: u64) -> Self {
        assert!((0.0..=1.0).contains(&concurrency_threshold));
        Admission {
            hard_concurrency_limit,
            max_queued,
            concurrency_threshold,
            queued: VecDeque::new(),
            running: BTreeSet::new(),
            remote: RemoteCounts::default(),
            last_refresh_ms: None,
            last_start_ms: now_ms,
            naive: false,
        }
    }

    /// The `naive` policy: admit on whatever counts the last view had, without Presto's gate.
    pub fn naive(mut self) -> Self {
        self.naive = true;
        self
    }

    pub fn hard_concurrency_limit(&self) -> u32 {
        self.hard_concurrency_limit
    }

    pub fn local_running(&self) -> u32 {
        self.running.len() as u32
    }

    pub fn local_queued(&self) -> u32 {
        self.queued.len() as u32
    }

    pub fn remote(&self) -> RemoteCounts {
        self.remote
    }

    pub fn last_refresh_ms(&self) -> Option<u64> {
        self.last_refresh_ms
    }

    fn total_running(&self) -> u32 {
        self.local_running().saturating_add(self.remote.running)
    }

    /// Presto's `shouldWaitForResourceManagerUpdate`.
    pub fn is_waiting_for_refresh(&self) -> bool {
        if self.naive {
            return false;
        }
        let at_threshold =
            f64::from(self.total_running()) >= f64::from(self.hard_concurrency_limit) * self.concurrency_threshold;
        let stale = match self.last_refresh_ms {
            None => true,
            Some(refresh_ms) => refresh_ms <= self.last_start_ms,
        };
        at_threshold && stale
    }

    pub fn can_run_more(&self) -> bool {
        !self.is_waiting_for_refresh() && self.total_running() < self.hard_concurrency_limit
    }

    pub fn can_queue_more(&self) -> bool {
        self.local_queued().saturating_add(self.remote.queued) < self.max_queued
    }

    /// Presto's `run()`: start if possible, else queue if possible, else refuse.
    pub fn submit(&mut self, query_id: &str, now_ms: u64) -> SubmitOutcome {
        assert!(!self.running.contains(query_id) && !self.queued.iter().any(|id| id == query_id), "submitted twice");
        // Presto starts immediately only when nothing is queued ahead (FIFO within a group).
        if self.queued.is_empty() && self.can_run_more() {
            self.start(query_id.to_string(), now_ms);
            return SubmitOutcome::Started;
        }
        if self.can_queue_more() {
            self.queued.push_back(query_id.to_string());
            return SubmitOutcome::Queued;
        }
        SubmitOutcome::QueueFull(format!("Too many queued queries for \"{ROOT_GROUP}\""))
    }

    /// Starts queued queries while the group can run more; returns them in start order.
    pub fn start_eligible(&mut self, now_ms: u64) -> Vec<String> {
        let mut started = Vec::new();
        while !self.queued.is_empty() && self.can_run_more() {
            if let Some(query_id) = self.queued.pop_front() {
                self.start(query_id.clone(), now_ms);
                started.push(query_id);
            }
        }
        started
    }

    fn start(&mut self, query_id: String, now_ms: u64) {
        self.running.insert(query_id);
        self.last_start_ms = self.last_start_ms.max(now_ms);
        debug_assert!(self.local_running() <= self.hard_concurrency_limit, "local decisions never exceed the hard limit");
    }

    /// The query left the group (finished, failed or cancelled, queued or running).
    pub fn remove(&mut self, query_id: &str) -> bool {
        if self.running.remove(query_id) {
            return true;
        }
        let before = self.queued.len();
        self.queued.retain(|id| id != query_id);
        before != self.queued.len()
    }

    /// A successful RM refresh arrived with the other coordinators' counts.
    pub fn refresh(&mut self, remote: RemoteCounts, now_ms: u64) {
        self.remote = remote;
        self.last_refresh_ms = Some(now_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_up_to_the_limit_then_queues_then_refuses() {
        let mut admission = Admission::new(2, 1, 1.0, 0);
        admission.refresh(RemoteCounts::default(), 1);
        assert_eq!(admission.submit("a", 2), SubmitOutcome::Started);
        assert_eq!(admission.submit("b", 3), SubmitOutcome::Started);
        assert_eq!(admission.submit("c", 4), SubmitOutcome::Queued);
        assert!(matches!(admission.submit("d", 5), SubmitOutcome::QueueFull(message) if message == "Too many queued queries for \"global\""));
        assert!(admission.remove("a"));
        // At the threshold (1 running + 0 remote < 2, so below): starts without a fresh view.
        assert_eq!(admission.start_eligible(6), vec!["c".to_string()]);
    }

    #[test]
    fn remote_running_counts_against_the_limit() {
        let mut admission = Admission::new(3, 10, 1.0, 0);
        admission.refresh(RemoteCounts { running: 3, queued: 0 }, 1);
        assert_eq!(admission.submit("a", 2), SubmitOutcome::Queued);
        admission.refresh(RemoteCounts { running: 2, queued: 0 }, 3);
        assert_eq!(admission.start_eligible(4), vec!["a".to_string()]);
    }

    #[test]
    fn at_threshold_one_start_per_fresh_refresh() {
        // Threshold 0: every start needs a refresh newer than the last start.
        let mut admission = Admission::new(10, 100, 0.0, 0);
        for id in ["a", "b", "c"] {
            admission.submit(id, 1);
        }
        assert_eq!(admission.local_running(), 0, "no refresh yet: wait");
        admission.refresh(RemoteCounts::default(), 2);
        assert_eq!(admission.start_eligible(3), vec!["a".to_string()]);
        assert!(admission.start_eligible(4).is_empty(), "needs a refresh after the start at 3");
        admission.refresh(RemoteCounts::default(), 3);
        assert!(admission.start_eligible(5).is_empty(), "a refresh at the same instant as the start is not fresh");
        admission.refresh(RemoteCounts::default(), 6);
        assert_eq!(admission.start_eligible(7), vec!["b".to_string()]);
    }

    #[test]
    fn without_refreshes_queries_at_the_limit_stay_queued() {
        // Threshold 1.0 and the RMs gone: a group below the limit admits on its stale view, a
        // group at the limit waits forever rather than over-admit.
        let mut admission = Admission::new(2, 10, 1.0, 0);
        admission.refresh(RemoteCounts { running: 1, queued: 0 }, 1);
        assert_eq!(admission.submit("a", 2), SubmitOutcome::Started);
        assert_eq!(admission.submit("b", 3), SubmitOutcome::Queued);
        // The remote query finished, but no RM answers: the view stays at remote=1.
        assert!(admission.start_eligible(1_000_000).is_empty());
        assert!(admission.is_waiting_for_refresh());
    }
}
