//! The low-memory killer (pure): given the cluster's memory view, which query to kill, if any.
//!
//! Out of memory means Presto's `isClusterOutOfMemory`: some worker has a task waiting for memory
//! (a *blocked* node). A kill waits until the cluster has been out of memory for
//! `query.low-memory-killer.delay`, and until the previous victim's memory has left the view.
//!
//! Two scopes:
//! - [`KillerScope::Coordinator`] is Presto's behaviour in disaggregated mode: every coordinator
//!   picks the largest of *its own* running queries. C coordinators that see one out-of-memory
//!   episode can kill C queries, when one kill would have freed enough.
//! - [`KillerScope::Cluster`] (fireball's default): every coordinator computes the same victim
//!   from the same cluster view — the largest query cluster-wide, ties broken by id — and only its
//!   owner kills it. When the candidate changes (the victim's memory left the view, wherever it
//!   was killed), nobody kills again for `settle_ms`, the time every worker needs to heartbeat its
//!   freed memory to the RMs and coordinators to fetch it; without that, a view in which one node
//!   already shows the release and another still shows its stale blocked flag would take a second
//!   victim for an episode the first kill already ended. Views fetched a moment apart can also
//!   disagree on which query is largest while queries grow; so every poll of the RM (every
//!   100 ms, not only the memory fetch) also lists the kills still taking effect anywhere (the
//!   victim has ended but a worker still reports its memory), and while there is one nobody
//!   kills. No new messages are needed: the RM view is the agreement, so it keeps working with
//!   any RM down as long as one answers.

use std::collections::{BTreeMap, BTreeSet};

use crate::wire::WorkerView;

// The killer's configuration is parsed with the rest of `config.properties`, so its types live in
// `config` (which imports nothing above it); re-exported here, where the killer is read.
pub use crate::config::low_memory_killer::{KillerConfig, KillerPolicy, KillerScope};

#[derive(Debug)]
pub struct LowMemoryKiller {
    config: KillerConfig,
    last_not_out_of_memory_ms: u64,
    /// What this coordinator killed and still sees holding memory.
    own_victim: Option<String>,
    /// Cluster scope: the victim every coordinator currently agrees on.
    cluster_candidate: Option<String>,
    quiet_until_ms: u64,
}

impl LowMemoryKiller {
    pub fn new(config: KillerConfig, now_ms: u64) -> Self {
        LowMemoryKiller { config, last_not_out_of_memory_ms: now_ms, own_victim: None, cluster_candidate: None, quiet_until_ms: 0 }
    }

    /// Called with every RM poll: kills that are still taking effect somewhere in the cluster.
    /// In cluster scope they hold every coordinator's next kill until they are done and settled.
    pub fn on_pending_kills(&mut self, now_ms: u64, pending: &[String]) {
        if self.config.scope == KillerScope::Cluster && !pending.is_empty() {
            self.quiet_until_ms = self.quiet_until_ms.max(now_ms + self.config.settle_ms);
        }
    }

    /// Called with every fresh view of the workers' pools; `own_running` are this coordinator's
    /// running queries. Returns the query this coordinator must kill now.
    pub fn on_view(&mut self, now_ms: u64, workers: &[WorkerView], own_running: &BTreeSet<String>) -> Option<String> {
        if self.config.policy == KillerPolicy::None {
            return None;
        }
        let held = held_per_query(workers);
        if let Some(victim) = &self.own_victim {
            if held.contains_key(victim.as_str()) {
                return None; // Presto: wait until the last victim is gone
            }
            self.own_victim = None;
        }
        if !workers.iter().any(|worker| worker.memory.blocked) {
            self.last_not_out_of_memory_ms = now_ms;
            return None;
        }
        if now_ms.saturating_sub(self.last_not_out_of_memory_ms) < self.config.delay_ms {
            return None;
        }
        let victim = match self.config.scope {
            KillerScope::Coordinator => largest(self.config.policy, workers, |query_id| own_running.contains(query_id))?,
            KillerScope::Cluster => {
                let candidate = largest(self.config.policy, workers, |_| true)?;
                if self.cluster_candidate.as_deref() != Some(candidate.as_str()) {
                    if self.cluster_candidate.is_some() {
                        self.quiet_until_ms = now_ms + self.config.settle_ms;
                    }
                    self.cluster_candidate = Some(candidate.clone());
                }
                if now_ms < self.quiet_until_ms || !own_running.contains(&candidate) {
                    return None;
                }
                candidate
            }
        };
        self.own_victim = Some(victim.clone());
        Some(victim)
    }
}

/// Bytes each query holds across all workers.
fn held_per_query(workers: &[WorkerView]) -> BTreeMap<&str, u64> {
    let mut held = BTreeMap::new();
    for worker in workers {
        for (query_id, bytes) in &worker.memory.query_reservations {
            if *bytes > 0 {
                *held.entry(query_id.as_str()).or_insert(0u64) += bytes;
            }
        }
    }
    held
}

/// The query with the largest policy metric among those `eligible`; ties go to the smaller id so
/// that every coordinator looking at the same view names the same query.
fn largest(policy: KillerPolicy, workers: &[WorkerView], eligible: impl Fn(&str) -> bool) -> Option<String> {
    let mut metric: BTreeMap<&str, u64> = BTreeMap::new();
    for worker in workers {
        let counts = match policy {
            KillerPolicy::None => false,
            KillerPolicy::TotalReservation => true,
            KillerPolicy::TotalReservationOnBlockedNodes => worker.memory.blocked,
        };
        if !counts {
            continue;
        }
        for (query_id, bytes) in &worker.memory.query_reservations {
            if eligible(query_id) {
                *metric.entry(query_id.as_str()).or_insert(0) += bytes;
            }
        }
    }
    let mut best: Option<(&str, u64)> = None;
    for (query_id, bytes) in metric {
        if bytes > 0 && best.is_none_or(|(_, best_bytes)| bytes > best_bytes) {
            best = Some((query_id, bytes));
        }
    }
    best.map(|(query_id, _)| query_id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{CpuInfo, MemoryInfo};

    fn worker(node: &str, blocked: bool, reservations: &[(&str, u64)]) -> WorkerView {
        WorkerView {
            node_id: node.into(),
            uri: format!("http://{node}"),
            memory: MemoryInfo::holding(100, blocked, reservations),
            cpu: CpuInfo::default(),
        }
    }

    fn config(policy: KillerPolicy, scope: KillerScope) -> KillerConfig {
        KillerConfig { policy, scope, delay_ms: 1_000, settle_ms: 2_000 }
    }

    fn own(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|id| id.to_string()).collect()
    }

    #[test]
    fn waits_for_the_delay_then_kills_the_largest_own_query() {
        let mut killer = LowMemoryKiller::new(config(KillerPolicy::TotalReservation, KillerScope::Coordinator), 0);
        let view = [worker("w1", true, &[("a", 50), ("b", 30)]), worker("w2", false, &[("b", 40)])];
        assert_eq!(killer.on_view(500, &view, &own(&["a", "b"])), None, "delay not yet passed");
        assert_eq!(killer.on_view(1_000, &view, &own(&["a", "b"])), Some("b".into()), "b holds 70 in total");
        assert_eq!(killer.on_view(1_100, &view, &own(&["a", "b"])), None, "b still holds memory");
        let after = [worker("w1", true, &[("a", 50)])];
        assert_eq!(killer.on_view(1_200, &after, &own(&["a"])), Some("a".into()), "Presto kills again at once");
    }

    #[test]
    fn blocked_nodes_policy_counts_only_blocked_nodes() {
        let mut killer = LowMemoryKiller::new(config(KillerPolicy::TotalReservationOnBlockedNodes, KillerScope::Coordinator), 0);
        let view = [worker("w1", true, &[("a", 50), ("b", 30)]), worker("w2", false, &[("b", 40)])];
        assert_eq!(killer.on_view(1_000, &view, &own(&["a", "b"])), Some("a".into()));
    }

    #[test]
    fn no_kill_without_blocked_nodes_and_recovery_restarts_the_delay() {
        let mut killer = LowMemoryKiller::new(config(KillerPolicy::TotalReservation, KillerScope::Coordinator), 0);
        let calm = [worker("w1", false, &[("a", 100)])];
        let blocked = [worker("w1", true, &[("a", 100)])];
        assert_eq!(killer.on_view(5_000, &calm, &own(&["a"])), None);
        assert_eq!(killer.on_view(5_500, &blocked, &own(&["a"])), None, "out of memory for 500 ms only");
        assert_eq!(killer.on_view(6_000, &blocked, &own(&["a"])), Some("a".into()));
    }

    #[test]
    fn presto_scope_lets_every_coordinator_kill_but_cluster_scope_only_the_owner() {
        let view = [worker("w1", true, &[("c1-big", 60), ("c2-small", 30)])];
        for (scope, expected_kills) in [(KillerScope::Coordinator, 2), (KillerScope::Cluster, 1)] {
            let mut c1 = LowMemoryKiller::new(config(KillerPolicy::TotalReservation, scope), 0);
            let mut c2 = LowMemoryKiller::new(config(KillerPolicy::TotalReservation, scope), 0);
            let kills = [c1.on_view(2_000, &view, &own(&["c1-big"])), c2.on_view(2_000, &view, &own(&["c2-small"]))];
            assert_eq!(kills.iter().flatten().count(), expected_kills, "{scope:?}: {kills:?}");
            assert_eq!(kills[0], Some("c1-big".into()));
        }
    }

    #[test]
    fn cluster_scope_waits_for_the_view_to_settle_after_a_victim_leaves() {
        let mut c2 = LowMemoryKiller::new(config(KillerPolicy::TotalReservation, KillerScope::Cluster), 0);
        let before = [worker("w1", true, &[("c1-big", 60)]), worker("w2", true, &[("c2-small", 30)])];
        assert_eq!(c2.on_view(2_000, &before, &own(&["c2-small"])), None, "c1 owns the victim");
        // c1 killed its query: w1's heartbeat shows the release, w2's still shows it blocked.
        let half_fresh = [worker("w1", false, &[]), worker("w2", true, &[("c2-small", 30)])];
        assert_eq!(c2.on_view(2_500, &half_fresh, &own(&["c2-small"])), None, "settling");
        assert_eq!(c2.on_view(4_000, &half_fresh, &own(&["c2-small"])), None, "still settling (until 4 500)");
        assert_eq!(c2.on_view(4_500, &half_fresh, &own(&["c2-small"])), Some("c2-small".into()), "still blocked after settling");
    }

    #[test]
    fn a_kill_taking_effect_elsewhere_holds_cluster_scope_but_not_presto_scope() {
        // c3's view (fetched a moment after c2's) names c3's query the largest; c2 has just
        // killed its own, which the RM lists as taking effect.
        let view = [worker("w1", true, &[("c2-q", 50), ("c3-q", 60)])];
        let mut c3 = LowMemoryKiller::new(config(KillerPolicy::TotalReservation, KillerScope::Cluster), 0);
        c3.on_pending_kills(2_000, &["c2-q".to_string()]);
        assert_eq!(c3.on_view(2_000, &view, &own(&["c3-q"])), None);
        assert_eq!(c3.on_view(3_900, &view, &own(&["c3-q"])), None, "settling after the pending kill");
        assert_eq!(c3.on_view(4_000, &view, &own(&["c3-q"])), Some("c3-q".into()), "still out of memory once settled");
        let mut presto = LowMemoryKiller::new(config(KillerPolicy::TotalReservation, KillerScope::Coordinator), 0);
        presto.on_pending_kills(2_000, &["c2-q".to_string()]);
        assert_eq!(presto.on_view(2_000, &view, &own(&["c3-q"])), Some("c3-q".into()), "Presto does not wait");
    }

    #[test]
    fn ties_go_to_the_smaller_query_id_and_policy_none_never_kills() {
        let view = [worker("w1", true, &[("b", 50), ("a", 50)])];
        let mut killer = LowMemoryKiller::new(config(KillerPolicy::TotalReservation, KillerScope::Cluster), 0);
        assert_eq!(killer.on_view(2_000, &view, &own(&["a", "b"])), Some("a".into()));
        let mut none = LowMemoryKiller::new(config(KillerPolicy::None, KillerScope::Cluster), 0);
        assert_eq!(none.on_view(9_000, &view, &own(&["a", "b"])), None);
    }
}
