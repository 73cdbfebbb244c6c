//! A worker's memory pool: tasks reserve before they run, reserve more as they grow, and release
//! everything when they end. Pure: no I/O, no clock.
//!
//! Requests are granted first-come first-served: a request that does not fit waits, and later
//! requests wait behind it even if they would fit, so a large task is never starved by small ones.
//! While any request waits the node counts as *blocked*, which is what the cluster's out-of-memory
//! detection reads (Presto: `blockedNodes > 0`).
//!
//! Invariants (asserted after every change, checked as a whole by
//! [`MemoryPool::check_invariants`], and property-tested below):
//! `reserved_bytes == Σ reservations ≤ capacity_bytes`; a task has at most one waiting request;
//! the head of the queue does not fit; a query never holds or waits for more than the per-node
//! limit; a released task holds and waits for nothing.

use std::collections::{BTreeMap, VecDeque};

#[derive(Debug)]
pub struct MemoryPool {
    capacity_bytes: u64,
    /// `query.max-memory-per-node`: what one query may hold on this node.
    query_limit_bytes: u64,
    reserved_bytes: u64,
    /// task id → (query id, bytes held)
    reservations: BTreeMap<String, (String, u64)>,
    /// Requests not yet granted: (task id, query id, additional bytes), oldest first.
    waiting: VecDeque<(String, String, u64)>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Reserve {
    Granted,
    Waiting,
    /// The task's query would hold more than `query.max-memory-per-node` on this node; nothing
    /// was reserved. `held_bytes` is what the query holds here already.
    ExceedsQueryLimit { limit_bytes: u64, held_bytes: u64 },
    /// Larger than the whole pool: it could never be granted here.
    TooLarge,
}

impl MemoryPool {
    pub fn new(capacity_bytes: u64, query_limit_bytes: u64) -> Self {
        MemoryPool {
            capacity_bytes,
            query_limit_bytes,
            reserved_bytes: 0,
            reservations: BTreeMap::new(),
            waiting: VecDeque::new(),
        }
    }

    pub fn capacity_bytes(&self) -> u64 {
        self.capacity_bytes
    }

    pub fn reserved_bytes(&self) -> u64 {
        self.reserved_bytes
    }

    pub fn query_limit_bytes(&self) -> u64 {
        self.query_limit_bytes
    }

    pub fn is_blocked(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// Bytes `task_id` holds now (granted requests only).
    pub fn task_bytes(&self, task_id: &str) -> u64 {
        self.reservations.get(task_id).map_or(0, |(_, bytes)| *bytes)
    }

    /// Whether `task_id` has a request waiting.
    pub fn is_waiting(&self, task_id: &str) -> bool {
        self.waiting.iter().any(|(waiting_id, _, _)| waiting_id == task_id)
    }

    /// The tasks with a request waiting, oldest first (for invariant checks that would otherwise
    /// ask [`MemoryPool::is_waiting`] once per task).
    pub fn waiting_task_ids(&self) -> impl Iterator<Item = &str> {
        self.waiting.iter().map(|(task_id, _, _)| task_id.as_str())
    }

    /// Asks for `bytes` more for `task_id` (of `query_id`), on top of what it holds. A waiting
    /// request is granted later by [`MemoryPool::release`], which returns the tasks it unblocked.
    pub fn reserve(&mut self, task_id: &str, query_id: &str, bytes: u64) -> Reserve {
        assert!(!self.is_waiting(task_id), "task {task_id} asked for memory while already waiting");
        let held_bytes = self.query_bytes(query_id) + self.pending_query_bytes(query_id);
        if held_bytes.saturating_add(bytes) > self.query_limit_bytes {
            return Reserve::ExceedsQueryLimit { limit_bytes: self.query_limit_bytes, held_bytes };
        }
        if self.task_bytes(task_id).saturating_add(bytes) > self.capacity_bytes {
            return Reserve::TooLarge;
        }
        if self.waiting.is_empty() && self.fits(bytes) {
            self.grant(task_id, query_id, bytes);
            return Reserve::Granted;
        }
        self.waiting.push_back((task_id.to_string(), query_id.to_string(), bytes));
        Reserve::Waiting
    }

    fn fits(&self, bytes: u64) -> bool {
        self.reserved_bytes.saturating_add(bytes) <= self.capacity_bytes
    }

    fn grant(&mut self, task_id: &str, query_id: &str, bytes: u64) {
        self.reserved_bytes += bytes;
        let entry = self.reservations.entry(task_id.to_string()).or_insert_with(|| (query_id.to_string(), 0));
        entry.1 += bytes;
        assert!(self.reserved_bytes <= self.capacity_bytes, "pool over-committed");
    }

    /// Releases whatever `task_id` holds or waits for; returns tasks granted as a result.
    pub fn release(&mut self, task_id: &str) -> Vec<String> {
        if let Some((_, bytes)) = self.reservations.remove(task_id) {
            self.reserved_bytes = self.reserved_bytes.checked_sub(bytes).expect("released more than reserved");
        }
        self.waiting.retain(|(waiting_id, _, _)| waiting_id != task_id);
        let mut granted = Vec::new();
        while let Some((_, _, bytes)) = self.waiting.front() {
            if !self.fits(*bytes) {
                break;
            }
            if let Some((task_id, query_id, bytes)) = self.waiting.pop_front() {
                self.grant(&task_id, &query_id, bytes);
                granted.push(task_id);
            }
        }
        granted
    }

    fn query_bytes(&self, query_id: &str) -> u64 {
        self.reservations.values().filter(|(query, _)| query == query_id).map(|(_, bytes)| bytes).sum()
    }

    fn pending_query_bytes(&self, query_id: &str) -> u64 {
        self.waiting.iter().filter(|(_, query, _)| query == query_id).map(|(_, _, bytes)| bytes).sum()
    }

    /// Checks the invariants the methods above assert piecemeal, all at once, so that a caller
    /// (the worker's task table, the simulator) can verify the pool after any input without
    /// panicking. O(reservations + waiting requests).
    pub fn check_invariants(&self) -> Result<(), String> {
        let held_bytes: u64 = self.reservations.values().map(|(_, bytes)| bytes).sum();
        if held_bytes != self.reserved_bytes {
            return Err(format!("pool reserved {} bytes but its reservations sum to {held_bytes}", self.reserved_bytes));
        }
        if self.reserved_bytes > self.capacity_bytes {
            return Err(format!("pool over-committed: {} of {} bytes reserved", self.reserved_bytes, self.capacity_bytes));
        }
        let mut waiting_tasks = std::collections::BTreeSet::new();
        for (task_id, _, _) in &self.waiting {
            if !waiting_tasks.insert(task_id.as_str()) {
                return Err(format!("task {task_id} has two requests waiting"));
            }
        }
        // FIFO: the head would have been granted by the last release if it fitted.
        if let Some((task_id, _, bytes)) = self.waiting.front() {
            if self.fits(*bytes) {
                return Err(format!("task {task_id} waits for {bytes} bytes that fit in the pool"));
            }
        }
        // What a query holds and waits for here never passes the per-node limit (`reserve`
        // refuses first), so a grant can never push it over either.
        let mut per_query = self.query_reservations();
        for (_, query_id, bytes) in &self.waiting {
            *per_query.entry(query_id.clone()).or_insert(0) += bytes;
        }
        if let Some((query_id, bytes)) = per_query.iter().find(|(_, bytes)| **bytes > self.query_limit_bytes) {
            return Err(format!("query {query_id} holds or waits for {bytes} bytes, over the per-node limit of {}", self.query_limit_bytes));
        }
        Ok(())
    }

    /// Bytes reserved per query, for heartbeats.
    pub fn query_reservations(&self) -> BTreeMap<String, u64> {
        let mut per_query = BTreeMap::new();
        for (query_id, bytes) in self.reservations.values() {
            *per_query.entry(query_id.clone()).or_insert(0) += bytes;
        }
        per_query
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fifo_grants_and_never_goes_negative() {
        let mut pool = MemoryPool::new(100, 100);
        assert_eq!(pool.reserve("t1", "q1", 60), Reserve::Granted);
        assert_eq!(pool.reserve("t2", "q2", 50), Reserve::Waiting);
        assert_eq!(pool.reserve("t3", "q3", 10), Reserve::Waiting, "small tasks queue behind a big one");
        assert!(pool.is_blocked());
        assert_eq!(pool.reserve("t4", "q4", 101), Reserve::ExceedsQueryLimit { limit_bytes: 100, held_bytes: 0 });
        assert_eq!(pool.release("t1"), vec!["t2".to_string(), "t3".to_string()]);
        assert_eq!(pool.reserved_bytes(), 60);
        assert!(!pool.is_blocked());
        assert_eq!(pool.query_reservations().get("q2"), Some(&50));
        pool.release("t2");
        pool.release("t3");
        pool.release("t3");
        assert_eq!(pool.reserved_bytes(), 0);
    }

    #[test]
    fn growth_adds_to_the_task_and_can_block() {
        let mut pool = MemoryPool::new(100, 80);
        assert_eq!(pool.reserve("a", "q", 30), Reserve::Granted);
        assert_eq!(pool.reserve("a", "q", 30), Reserve::Granted);
        assert_eq!(pool.task_bytes("a"), 60);
        assert_eq!(pool.reserve("b", "r", 30), Reserve::Granted);
        assert_eq!(pool.reserve("a", "q", 20), Reserve::Waiting, "90 + 20 > 100");
        assert!(pool.is_blocked() && pool.is_waiting("a"));
        assert_eq!(pool.release("b"), vec!["a".to_string()]);
        assert_eq!(pool.task_bytes("a"), 80);
        assert!(!pool.is_blocked());
    }

    #[test]
    fn per_node_query_limit_counts_every_task_of_the_query() {
        let mut pool = MemoryPool::new(1_000, 100);
        assert_eq!(pool.reserve("a", "q", 60), Reserve::Granted);
        assert_eq!(pool.reserve("b", "q", 50), Reserve::ExceedsQueryLimit { limit_bytes: 100, held_bytes: 60 });
        assert_eq!(pool.task_bytes("b"), 0, "a refused request reserves nothing");
        assert_eq!(pool.reserve("b", "other", 50), Reserve::Granted);
    }

    #[test]
    fn releasing_a_waiting_task_forgets_it() {
        let mut pool = MemoryPool::new(10, 10);
        pool.reserve("a", "q", 10);
        pool.reserve("b", "q2", 5);
        assert!(pool.release("b").is_empty());
        assert!(!pool.is_blocked());
        assert_eq!(pool.release("a"), Vec::<String>::new());
        assert_eq!(pool.reserved_bytes(), 0);
    }

    #[test]
    fn check_invariants_catches_broken_accounting() {
        let mut pool = MemoryPool::new(100, 100);
        pool.reserve("a", "q", 40);
        pool.reserve("b", "r", 70);
        assert_eq!(pool.check_invariants(), Ok(()));
        pool.reserved_bytes = 30;
        assert!(pool.check_invariants().unwrap_err().contains("sum to 40"));
        pool.reserved_bytes = 40;
        pool.waiting.push_back(("b".into(), "r".into(), 1));
        assert!(pool.check_invariants().unwrap_err().contains("two requests waiting"));
        pool.waiting.clear();
        pool.waiting.push_back(("c".into(), "s".into(), 10));
        assert!(pool.check_invariants().unwrap_err().contains("fit in the pool"));
    }

    #[derive(Clone, Debug)]
    enum Op {
        Reserve { task: u8, query: u8, bytes: u64 },
        Release { task: u8 },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..8, 0u8..3, 0u64..70).prop_map(|(task, query, bytes)| Op::Reserve { task, query, bytes }),
            (0u8..8).prop_map(|task| Op::Release { task }),
        ]
    }

    proptest! {
        /// Whatever tasks ask for and release, in any order (as cancels and kills do): the pool
        /// never over-commits, its total always equals the sum held, per-query holdings never pass
        /// the per-node limit, and once every task is released nothing is held or waiting.
        #[test]
        fn accounting_never_leaks_or_goes_negative(ops in proptest::collection::vec(op(), 1..200)) {
            let mut pool = MemoryPool::new(100, 90);
            let mut query_of: BTreeMap<String, String> = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Reserve { task, query, bytes } => {
                        let task_id = format!("t{task}");
                        // A task belongs to one query for its life, and asks again only when granted.
                        let query_id = query_of.entry(task_id.clone()).or_insert(format!("q{query}")).clone();
                        if pool.is_waiting(&task_id) {
                            continue;
                        }
                        let before = pool.task_bytes(&task_id);
                        match pool.reserve(&task_id, &query_id, bytes) {
                            Reserve::Granted => prop_assert_eq!(pool.task_bytes(&task_id), before + bytes),
                            Reserve::Waiting => prop_assert!(pool.is_blocked()),
                            Reserve::ExceedsQueryLimit { .. } | Reserve::TooLarge => prop_assert_eq!(pool.task_bytes(&task_id), before),
                        }
                    }
                    Op::Release { task } => {
                        let task_id = format!("t{task}");
                        pool.release(&task_id);
                        prop_assert_eq!(pool.task_bytes(&task_id), 0);
                        prop_assert!(!pool.is_waiting(&task_id));
                    }
                }
                prop_assert_eq!(pool.check_invariants(), Ok(()));
                let held: u64 = pool.reservations.values().map(|(_, bytes)| bytes).sum();
                prop_assert_eq!(held, pool.reserved_bytes());
                prop_assert!(pool.reserved_bytes() <= pool.capacity_bytes());
                for bytes in pool.query_reservations().values() {
                    prop_assert!(*bytes <= 90);
                }
                // FIFO: if anything waits, the head does not fit (otherwise it would have been granted).
                if let Some((_, _, bytes)) = pool.waiting.front() {
                    prop_assert!(!pool.fits(*bytes));
                }
            }
            for task in 0..8u8 {
                pool.release(&format!("t{task}"));
            }
            prop_assert_eq!(pool.reserved_bytes(), 0);
            prop_assert!(!pool.is_blocked());
            prop_assert!(pool.query_reservations().is_empty());
        }
    }
}
