//! The oracle's memory half: the true memory picture, from the workers' own pool events
//! (`TaskMemory`), never from what any node believes.
//!
//! Definitions:
//! - *out of memory*: some live worker has a task waiting for memory (a blocked node) — Presto's
//!   `isClusterOutOfMemory`; an *episode* is one maximal interval of it.
//! - *kill*: a query that ended with CLUSTER_OUT_OF_MEMORY. It belongs to the episode in progress
//!   when it happened; a kill while no worker was blocked is counted apart (a stale view killed).
//! - *overlapping kill*: a kill made while an earlier victim still held memory somewhere — a
//!   kill decided before the previous one could take effect (Presto's C-kills-per-episode).
//! - *leak*: memory still held at the end by a task whose query had ended (or whose coordinator
//!   died). The run settles until none is held, so what is left never would have been freed.

use std::collections::{BTreeMap, BTreeSet};

use fireball::runtime::sim_hooks::Event;
use serde::Serialize;

use crate::entry::{Entry, HarnessEvent};

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct MemoryReport {
    pub oom_episodes: u32,
    pub oom_ms_total: u64,
    pub oom_ms_max: u64,
    pub kills: u32,
    /// Kills in each episode, in order (episodes without kills included).
    pub kills_per_episode: Vec<u32>,
    pub kills_per_episode_max: u32,
    pub kills_while_not_oom: u32,
    pub overlapping_kills: u32,
    pub peak_reserved_bytes: u64,
    /// `task of query holds N bytes on worker`, for every reservation left behind.
    pub leaked: Vec<String>,
}

#[derive(Default)]
struct WorkerPool {
    /// task id → (query id, bytes)
    tasks: BTreeMap<String, (String, u64)>,
    blocked: bool,
}

#[derive(Default)]
pub struct MemoryTracker {
    report: MemoryReport,
    workers: BTreeMap<String, WorkerPool>,
    ended_queries: BTreeSet<String>,
    killed_queries: BTreeSet<String>,
    /// Coordinator of every query, to end a crashed coordinator's queries.
    owners: BTreeMap<String, String>,
    episode_start_ms: Option<u64>,
}

impl MemoryTracker {
    pub fn on_entry(&mut self, at_ms: u64, entry: &Entry) {
        match entry {
            Entry::Node(Event::TaskMemory { task_id, query_id, worker, task_bytes, blocked }) => {
                let pool = self.workers.entry(worker.clone()).or_default();
                if *task_bytes == 0 {
                    pool.tasks.remove(task_id);
                } else {
                    pool.tasks.insert(task_id.clone(), (query_id.clone(), *task_bytes));
                }
                pool.blocked = *blocked;
                let reserved: u64 = self.workers.values().flat_map(|pool| pool.tasks.values()).map(|(_, bytes)| bytes).sum();
                self.report.peak_reserved_bytes = self.report.peak_reserved_bytes.max(reserved);
            }
            Entry::Node(Event::QueryCreated { query_id, coordinator, .. }) => {
                self.owners.insert(query_id.clone(), coordinator.clone());
            }
            Entry::Node(Event::QueryFinished { query_id, error_name, .. }) => {
                self.ended_queries.insert(query_id.clone());
                if error_name.as_deref() == Some("CLUSTER_OUT_OF_MEMORY") {
                    self.report.kills += 1;
                    if self.holds_memory(&self.killed_queries) {
                        self.report.overlapping_kills += 1;
                    }
                    self.killed_queries.insert(query_id.clone());
                    match self.report.kills_per_episode.last_mut() {
                        Some(kills) if self.episode_start_ms.is_some() => *kills += 1,
                        _ => self.report.kills_while_not_oom += 1,
                    }
                }
            }
            Entry::Harness(HarnessEvent::NodeCrashed { node } | HarnessEvent::NodeRestarted { node }) => {
                // A crashed worker's pool is gone with its process; a crashed coordinator's
                // queries have ended as far as their memory is concerned. A restart is a crash
                // too when the node was up (the harness kills it first), so it is treated alike.
                self.workers.remove(node);
                for (query_id, owner) in &self.owners {
                    if owner == node {
                        self.ended_queries.insert(query_id.clone());
                    }
                }
            }
            _ => return,
        }
        self.update_episode(at_ms);
    }

    fn update_episode(&mut self, at_ms: u64) {
        let out_of_memory = self.workers.values().any(|pool| pool.blocked);
        match (self.episode_start_ms, out_of_memory) {
            (None, true) => {
                self.episode_start_ms = Some(at_ms);
                self.report.oom_episodes += 1;
                self.report.kills_per_episode.push(0);
            }
            (Some(start_ms), false) => {
                self.close_episode(start_ms, at_ms);
            }
            _ => {}
        }
    }

    fn close_episode(&mut self, start_ms: u64, end_ms: u64) {
        let length_ms = end_ms.saturating_sub(start_ms);
        self.report.oom_ms_total += length_ms;
        self.report.oom_ms_max = self.report.oom_ms_max.max(length_ms);
        self.episode_start_ms = None;
    }

    fn holds_memory(&self, queries: &BTreeSet<String>) -> bool {
        self.workers.values().flat_map(|pool| pool.tasks.values()).any(|(query_id, _)| queries.contains(query_id))
    }

    /// Reservations held by tasks whose query has ended.
    pub fn left_behind(&self) -> Vec<String> {
        let mut leaked = Vec::new();
        for (worker, pool) in &self.workers {
            for (task_id, (query_id, bytes)) in &pool.tasks {
                if self.ended_queries.contains(query_id) {
                    leaked.push(format!("task {task_id} holds {bytes} bytes on {worker} after its query ended"));
                }
            }
        }
        leaked
    }

    pub fn finish(mut self, run_end_ms: u64) -> MemoryReport {
        if let Some(start_ms) = self.episode_start_ms {
            self.close_episode(start_ms, run_end_ms);
        }
        self.report.leaked = self.left_behind();
        self.report.kills_per_episode_max = self.report.kills_per_episode.iter().copied().max().unwrap_or(0);
        self.report
    }
}

/// Whether any ended query still holds memory (the run settles until none does).
pub fn memory_left_behind(entries: &[(u64, Entry)]) -> bool {
    let mut tracker = MemoryTracker::default();
    for (at_ms, entry) in entries {
        tracker.on_entry(*at_ms, entry);
    }
    !tracker.left_behind().is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory(task: &str, query: &str, worker: &str, bytes: u64, blocked: bool) -> Entry {
        Entry::Node(Event::TaskMemory { task_id: task.into(), query_id: query.into(), worker: worker.into(), task_bytes: bytes, blocked })
    }
    fn ended(query: &str, error: Option<&str>) -> Entry {
        Entry::Node(Event::QueryFinished {
            query_id: query.into(),
            coordinator: "c1".into(),
            state: if error.is_some() { "FAILED" } else { "FINISHED" }.into(),
            error_name: error.map(str::to_string),
        })
    }

    #[test]
    fn episodes_kills_and_stale_kills() {
        let entries = vec![
            (0, memory("a.0", "a", "w1", 60, false)),
            (1_000, memory("b.0", "b", "w1", 0, true)), // b waits for memory: out of memory
            (3_000, ended("a", Some("CLUSTER_OUT_OF_MEMORY"))),
            (3_000, ended("c", Some("CLUSTER_OUT_OF_MEMORY"))), // a second kill, same episode, before a's memory left
            (3_010, memory("a.0", "a", "w1", 0, true)), // a's memory freed…
            (3_010, memory("b.0", "b", "w1", 30, false)), // …and b granted
            (3_500, ended("d", Some("CLUSTER_OUT_OF_MEMORY"))), // killed on a stale view
            (4_000, memory("b.0", "b", "w1", 0, false)),
            (4_000, ended("b", None)),
        ];
        let mut tracker = MemoryTracker::default();
        for (at_ms, entry) in &entries {
            tracker.on_entry(*at_ms, entry);
        }
        let report = tracker.finish(10_000);
        assert_eq!((report.oom_episodes, report.oom_ms_total, report.oom_ms_max), (1, 2_010, 2_010));
        assert_eq!(report.kills_per_episode, vec![2]);
        assert_eq!((report.kills, report.kills_per_episode_max, report.kills_while_not_oom), (3, 2, 1));
        assert_eq!(report.overlapping_kills, 1, "c was killed while a still held memory; d after it was freed");
        assert!(report.leaked.is_empty());
        assert_eq!(report.peak_reserved_bytes, 60);
    }

    #[test]
    fn memory_held_after_the_query_ended_is_a_leak_unless_its_worker_died() {
        let entries = vec![
            (0, memory("a.0", "a", "w1", 10, false)),
            (0, memory("a.1", "a", "w2", 10, false)),
            (5, ended("a", Some("USER_CANCELED"))),
            (6, memory("a.0", "a", "w1", 0, false)),
        ];
        assert!(memory_left_behind(&entries));
        let mut with_crash = entries.clone();
        with_crash.push((7, Entry::Harness(HarnessEvent::NodeCrashed { node: "w2".into() })));
        assert!(!memory_left_behind(&with_crash));
        // A restart of a running node kills it first: its pool is gone just the same.
        let mut with_restart = entries.clone();
        with_restart.push((7, Entry::Harness(HarnessEvent::NodeRestarted { node: "w2".into() })));
        assert!(!memory_left_behind(&with_restart));
        let mut tracker = MemoryTracker::default();
        for (at_ms, entry) in &entries {
            tracker.on_entry(*at_ms, entry);
        }
        assert_eq!(tracker.finish(10).leaked, vec!["task a.1 holds 10 bytes on w2 after its query ended".to_string()]);
    }
}
