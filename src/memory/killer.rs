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
//!
//! # Invariants
//! Checked after every input (`on_view`, `on_pending_kills`) through
//! `runtime::sim_hooks::check_invariants`, in O(1) except when a victim is named (then O(the
//! view), once per kill): see [`LowMemoryKiller::check_invariants`] for the state, and
//! `check_victim` for a kill (no new victim while the last one still holds memory, the victim
//! is this coordinator's own running query and holds memory, and in cluster scope it is the agreed
//! candidate and the quiet time is over). The input times are not asserted to ascend: a
//! coordinator's clock can step back (simulated skew ending, `now_ms` read before the lock is
//! taken), so the state's timestamps are bounded by the latest input instead.

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
    /// The latest `now_ms` of any input (creation included): the bound of every timestamp above.
    latest_input_ms: u64,
}

impl LowMemoryKiller {
    pub fn new(config: KillerConfig, now_ms: u64) -> Self {
        LowMemoryKiller {
            config,
            last_not_out_of_memory_ms: now_ms,
            own_victim: None,
            cluster_candidate: None,
            quiet_until_ms: 0,
            latest_input_ms: now_ms,
        }
    }

    /// What always holds between inputs: with policy `none` nothing is ever chosen; in
    /// coordinator scope there is no cluster candidate and no quiet time; the last time the
    /// cluster was seen not out of memory is one of the inputs' times, and the quiet time ends at
    /// most `settle_ms` after the latest input.
    pub fn check_invariants(&self) -> Result<(), String> {
        if self.config.policy == KillerPolicy::None && (self.own_victim.is_some() || self.cluster_candidate.is_some()) {
            return Err(format!("policy none, yet victim {:?} and candidate {:?}", self.own_victim, self.cluster_candidate));
        }
        if self.config.scope == KillerScope::Coordinator && (self.cluster_candidate.is_some() || self.quiet_until_ms != 0) {
            return Err(format!(
                "coordinator scope, yet cluster candidate {:?} and quiet until {} ms",
                self.cluster_candidate, self.quiet_until_ms
            ));
        }
        if self.last_not_out_of_memory_ms > self.latest_input_ms {
            return Err(format!(
                "last not out of memory at {} ms, after the latest input at {} ms",
                self.last_not_out_of_memory_ms, self.latest_input_ms
            ));
        }
        if self.quiet_until_ms > self.latest_input_ms.saturating_add(self.config.settle_ms) {
            return Err(format!(
                "quiet until {} ms, more than settle {} ms after the latest input at {} ms",
                self.quiet_until_ms, self.config.settle_ms, self.latest_input_ms
            ));
        }
        Ok(())
    }

    /// A victim just named at `now_ms`: the previous one (`previous`) no longer holds memory in
    /// this view, the victim does, it is one of this coordinator's running queries, the state
    /// remembers it, and in cluster scope it is the agreed candidate past the quiet time.
    fn check_victim(
        &self,
        now_ms: u64,
        victim: &str,
        previous: Option<&str>,
        workers: &[WorkerView],
        own_running: &BTreeSet<String>,
    ) -> Result<(), String> {
        let held = held_per_query(workers);
        if let Some(previous) = previous.filter(|previous| held.contains_key(previous)) {
            return Err(format!("named {victim} while the last victim {previous} still holds memory"));
        }
        if !held.contains_key(victim) {
            return Err(format!("named {victim}, which holds no memory in the view"));
        }
        if !own_running.contains(victim) {
            return Err(format!("named {victim}, which is not one of this coordinator's running queries"));
        }
        if self.own_victim.as_deref() != Some(victim) {
            return Err(format!("named {victim} but remembers {:?}", self.own_victim));
        }
        if self.config.scope == KillerScope::Cluster {
            if self.cluster_candidate.as_deref() != Some(victim) {
                return Err(format!("named {victim}, not the cluster candidate {:?}", self.cluster_candidate));
            }
            if now_ms < self.quiet_until_ms {
                return Err(format!("named {victim} at {now_ms} ms, inside the quiet time until {} ms", self.quiet_until_ms));
            }
        }
        Ok(())
    }

    /// Called with every RM poll: kills that are still taking effect somewhere in the cluster.
    /// In cluster scope they hold every coordinator's next kill until they are done and settled.
    pub fn on_pending_kills(&mut self, now_ms: u64, pending: &[String]) {
        self.latest_input_ms = self.latest_input_ms.max(now_ms);
        if self.config.scope == KillerScope::Cluster && !pending.is_empty() {
            self.quiet_until_ms = self.quiet_until_ms.max(now_ms + self.config.settle_ms);
        }
        crate::runtime::sim_hooks::check_invariants("low_memory_killer", self.check_invariants());
    }

    /// Called with every fresh view of the workers' pools; `own_running` are this coordinator's
    /// running queries. Returns the query this coordinator must kill now.
    pub fn on_view(&mut self, now_ms: u64, workers: &[WorkerView], own_running: &BTreeSet<String>) -> Option<String> {
        self.latest_input_ms = self.latest_input_ms.max(now_ms);
        let previous = self.own_victim.clone();
        let victim = self.decide(now_ms, workers, own_running);
        let result = self.check_invariants().and_then(|()| match &victim {
            Some(victim) => self.check_victim(now_ms, victim, previous.as_deref(), workers, own_running),
            None => Ok(()),
        });
        crate::runtime::sim_hooks::check_invariants("low_memory_killer", result);
        victim
    }

    fn decide(&mut self, now_ms: u64, workers: &[WorkerView], own_running: &BTreeSet<String>) -> Option<String> {
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
                let total = held.entry(query_id.as_str()).or_insert(0u64);
                *total = total.saturating_add(*bytes); // numbers from the network: never wrap
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
                let total = metric.entry(query_id.as_str()).or_insert(0);
                *total = total.saturating_add(*bytes);
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

    fn caught(result: Result<(), String>, expected: &str) {
        let error = result.expect_err("the check must catch the damage");
        assert!(error.contains(expected), "said {error:?}, expected {expected:?}");
    }

    #[test]
    fn broken_killer_states_are_caught() {
        let mut none = LowMemoryKiller::new(config(KillerPolicy::None, KillerScope::Cluster), 0);
        none.check_invariants().unwrap();
        none.own_victim = Some("a".into());
        caught(none.check_invariants(), "policy none, yet victim");

        let mut presto = LowMemoryKiller::new(config(KillerPolicy::TotalReservation, KillerScope::Coordinator), 0);
        presto.on_pending_kills(1_000, &["x".to_string()]);
        presto.check_invariants().expect("coordinator scope ignores pending kills");
        presto.quiet_until_ms = 5;
        caught(presto.check_invariants(), "coordinator scope, yet cluster candidate None and quiet until 5 ms");

        let mut cluster = LowMemoryKiller::new(config(KillerPolicy::TotalReservation, KillerScope::Cluster), 1_000);
        cluster.on_pending_kills(3_000, &["x".to_string()]);
        cluster.check_invariants().expect("quiet until 5 000 ms, settle after the latest input");
        cluster.quiet_until_ms = 5_001;
        caught(cluster.check_invariants(), "quiet until 5001 ms, more than settle 2000 ms after the latest input at 3000 ms");
        cluster.quiet_until_ms = 0;
        cluster.last_not_out_of_memory_ms = 3_001;
        caught(cluster.check_invariants(), "last not out of memory at 3001 ms, after the latest input at 3000 ms");
    }

    #[test]
    fn a_clock_stepping_back_breaks_nothing() {
        let mut killer = LowMemoryKiller::new(config(KillerPolicy::TotalReservation, KillerScope::Cluster), 10_000);
        let view = [worker("w1", true, &[("a", 50)])];
        killer.on_pending_kills(12_000, &["x".to_string()]);
        assert_eq!(killer.on_view(9_000, &view, &own(&["a"])), None, "an earlier time is an input like any other");
        killer.check_invariants().unwrap();
    }

    #[test]
    fn victims_that_break_the_rules_are_caught() {
        let view = [worker("w1", true, &[("a", 50), ("b", 30)])];
        let mut killer = LowMemoryKiller::new(config(KillerPolicy::TotalReservation, KillerScope::Cluster), 0);
        assert_eq!(killer.on_view(2_000, &view, &own(&["a", "b"])), Some("a".into()));
        killer.check_victim(2_000, "a", None, &view, &own(&["a", "b"])).expect("a lawful kill");
        caught(killer.check_victim(2_000, "a", Some("b"), &view, &own(&["a", "b"])), "while the last victim b still holds memory");
        caught(killer.check_victim(2_000, "a", None, &view, &own(&["b"])), "not one of this coordinator's running queries");
        caught(killer.check_victim(2_000, "c", None, &view, &own(&["c"])), "named c, which holds no memory");
        caught(killer.check_victim(2_000, "b", None, &view, &own(&["b"])), "named b but remembers Some(\"a\")");
        killer.own_victim = Some("b".into());
        caught(killer.check_victim(2_000, "b", None, &view, &own(&["b"])), "named b, not the cluster candidate Some(\"a\")");
        killer.own_victim = Some("a".into());
        killer.quiet_until_ms = 2_500;
        caught(killer.check_victim(2_000, "a", None, &view, &own(&["a"])), "inside the quiet time until 2500 ms");
    }

    #[test]
    fn every_input_runs_the_check() {
        let mut killer = LowMemoryKiller::new(config(KillerPolicy::TotalReservation, KillerScope::Coordinator), 0);
        killer.cluster_candidate = Some("a".into());
        let view = [worker("w1", false, &[])];
        let applied = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| killer.on_view(1_000, &view, &own(&[]))));
        assert!(applied.is_err(), "a view applied to a broken killer went unnoticed");
    }
}

