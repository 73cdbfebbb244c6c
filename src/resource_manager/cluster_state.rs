//! What an RM knows about the cluster, aggregated from heartbeats (Presto's
//! `ResourceManagerClusterStateProvider`). Pure: time is passed in, no I/O.
//!
//! - Each coordinator's batched heartbeat *replaces* that coordinator's query set, so a query
//!   missing from a batch has left it (finished and reported, or purged). Batches carry a sequence
//!   number; an older batch arriving late is ignored, as Presto ignores out-of-order updates.
//! - A coordinator silent for `query-expiration-timeout` loses its active queries (it crashed or
//!   is cut off; its queries can no longer be counted as running anywhere the RM can see).
//! - A node silent for `node-status-timeout` drops out of the worker and memory views.
//!
//! # Invariants
//! [`ClusterState::check_invariants`] states what always holds; every input (`apply_*`,
//! `expire`) checks the part it changed through `runtime::sim_hooks::check_invariants`, so the
//! cost of a check is the cost of the input: a query heartbeat checks its coordinator's entry
//! (O(queries in the batch + completed list)), a node heartbeat its node, `expire` that nothing
//! it should have purged is left (O(coordinators + nodes)). On top, across inputs: a
//! coordinator's accepted sequence never goes back, nor its last-heard time.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::wire::{
    ClusterMemory, GroupCounts, MemoryInfo, NodeHeartbeat, QueryHeartbeat, QueryState, QuerySummary, WorkerView,
};

/// Bounds on what a heartbeat may make an RM hold.
pub const QUERIES_PER_COORDINATOR_MAX: usize = 100_000;
pub const COORDINATORS_MAX: usize = 1_000;
pub const NODES_MAX: usize = 100_000;

#[derive(Clone, Debug)]
pub struct ClusterStateConfig {
    pub query_expiration_timeout_ms: u64,
    pub node_status_timeout_ms: u64,
    pub completed_query_expiration_ms: u64,
    pub max_completed_queries: usize,
}

#[derive(Debug)]
pub struct ClusterState {
    config: ClusterStateConfig,
    coordinators: BTreeMap<String, CoordinatorQueries>,
    nodes: BTreeMap<String, NodeEntry>,
}

#[derive(Debug)]
struct CoordinatorQueries {
    uri: String,
    sequence: u64,
    last_heartbeat_ms: u64,
    active: BTreeMap<String, QuerySummary>,
    /// Recently completed queries, oldest first, with the time the RM learned they completed.
    completed: VecDeque<(u64, QuerySummary)>,
    /// The ids in `completed`. Every heartbeat repeats each recently finished query, and finding
    /// it by scanning the list cost O(completed) per query (57 % of an RM's CPU under a stream
    /// of short queries); the index makes it O(log completed).
    completed_ids: BTreeSet<String>,
}

impl CoordinatorQueries {
    /// Forgets the oldest completed query, from the list and its index.
    fn pop_completed(&mut self) {
        if let Some((_, query)) = self.completed.pop_front() {
            self.completed_ids.remove(&query.query_id);
        }
    }
}

#[derive(Debug)]
struct NodeEntry {
    heartbeat: NodeHeartbeat,
    last_heartbeat_ms: u64,
}

#[derive(Debug, PartialEq, Eq)]
pub enum HeartbeatOutcome {
    Applied,
    /// Older than what we already have: ignored.
    Stale,
    Refused(&'static str),
}

impl ClusterState {
    pub fn new(config: ClusterStateConfig) -> Self {
        ClusterState { config, coordinators: BTreeMap::new(), nodes: BTreeMap::new() }
    }

    pub fn apply_query_heartbeat(&mut self, heartbeat: QueryHeartbeat, now_ms: u64) -> HeartbeatOutcome {
        let coordinator_id = heartbeat.coordinator_id.clone();
        let before = self.coordinators.get(&coordinator_id).map(|entry| (entry.sequence, entry.last_heartbeat_ms));
        let outcome = self.apply_query_heartbeat_unchecked(heartbeat, now_ms);
        let result = self.check_coordinator_after(&coordinator_id, before).and_then(|()| self.check_bounds());
        crate::runtime::sim_hooks::check_invariants("cluster_state", result);
        outcome
    }

    fn apply_query_heartbeat_unchecked(&mut self, heartbeat: QueryHeartbeat, now_ms: u64) -> HeartbeatOutcome {
        if heartbeat.queries.len() > QUERIES_PER_COORDINATOR_MAX {
            return HeartbeatOutcome::Refused("too many queries in one heartbeat");
        }
        if !self.coordinators.contains_key(&heartbeat.coordinator_id) && self.coordinators.len() >= COORDINATORS_MAX {
            return HeartbeatOutcome::Refused("too many coordinators");
        }
        let entry = self.coordinators.entry(heartbeat.coordinator_id.clone()).or_insert_with(|| CoordinatorQueries {
            uri: heartbeat.coordinator_uri.clone(),
            sequence: 0,
            last_heartbeat_ms: now_ms,
            active: BTreeMap::new(),
            completed: VecDeque::new(),
            completed_ids: BTreeSet::new(),
        });
        // A stale batch does not keep the entry alive: otherwise a batch at sequence 2^64-1 (or
        // a restarted coordinator's predecessor's) would hold its queries here for good while the
        // live coordinator's batches are all "stale". Left alone, the entry expires and the next
        // batch starts it afresh.
        if heartbeat.sequence <= entry.sequence && entry.sequence != 0 {
            return HeartbeatOutcome::Stale;
        }
        entry.last_heartbeat_ms = entry.last_heartbeat_ms.max(now_ms);
        entry.sequence = heartbeat.sequence;
        entry.uri = heartbeat.coordinator_uri;
        let mut active = BTreeMap::new();
        for query in heartbeat.queries {
            if query.state.is_done() {
                if entry.completed_ids.insert(query.query_id.clone()) {
                    entry.completed.push_back((now_ms, query));
                }
            } else {
                active.insert(query.query_id.clone(), query);
            }
        }
        entry.active = active;
        while entry.completed.len() > self.config.max_completed_queries {
            entry.pop_completed();
        }
        HeartbeatOutcome::Applied
    }

    pub fn apply_node_heartbeat(&mut self, heartbeat: NodeHeartbeat, now_ms: u64) -> HeartbeatOutcome {
        if !self.nodes.contains_key(&heartbeat.node_id) && self.nodes.len() >= NODES_MAX {
            return HeartbeatOutcome::Refused("too many nodes");
        }
        let node_id = heartbeat.node_id.clone();
        self.nodes.insert(node_id.clone(), NodeEntry { heartbeat, last_heartbeat_ms: now_ms });
        let result = self.check_node(&node_id).and_then(|()| self.check_bounds());
        crate::runtime::sim_hooks::check_invariants("cluster_state", result);
        HeartbeatOutcome::Applied
    }

    /// Purges expired state (Presto runs its purges every 100 ms; callers do the same).
    pub fn expire(&mut self, now_ms: u64) {
        let config = &self.config;
        for coordinator in self.coordinators.values_mut() {
            if now_ms.saturating_sub(coordinator.last_heartbeat_ms) >= config.query_expiration_timeout_ms {
                coordinator.active.clear();
            }
            while coordinator
                .completed
                .front()
                .is_some_and(|(at_ms, _)| now_ms.saturating_sub(*at_ms) >= config.completed_query_expiration_ms)
            {
                coordinator.pop_completed();
            }
        }
        self.coordinators.retain(|_, coordinator| !coordinator.active.is_empty() || !coordinator.completed.is_empty()
            || now_ms.saturating_sub(coordinator.last_heartbeat_ms) < config.query_expiration_timeout_ms);
        self.nodes.retain(|_, node| now_ms.saturating_sub(node.last_heartbeat_ms) < config.node_status_timeout_ms);
        crate::runtime::sim_hooks::check_invariants("cluster_state", self.check_expired(now_ms));
    }

    /// Everything that must always hold, over the whole state (O(queries held)): each
    /// coordinator's entry is well-formed (see `check_coordinator`), each node is filed under
    /// its own id, and no map is past its bound. The per-input checks are slices of this one.
    pub fn check_invariants(&self) -> Result<(), String> {
        for (coordinator_id, coordinator) in &self.coordinators {
            self.check_coordinator(coordinator_id, coordinator)?;
        }
        for node_id in self.nodes.keys() {
            self.check_node(node_id)?;
        }
        // The counts derived from the queries: every active query is counted once, in its group.
        let active: usize = self.coordinators.values().map(|coordinator| coordinator.active.len()).sum();
        let counted: u64 = self.group_counts(None).iter().map(|group| u64::from(group.running) + u64::from(group.queued)).sum();
        if counted != active as u64 {
            return Err(format!("group counts hold {counted} queries, the coordinators {active} active ones"));
        }
        self.check_bounds()
    }

    /// The maps stay within the bounds the heartbeats are refused at.
    fn check_bounds(&self) -> Result<(), String> {
        if self.coordinators.len() > COORDINATORS_MAX {
            return Err(format!("{} coordinators held, at most {COORDINATORS_MAX}", self.coordinators.len()));
        }
        if self.nodes.len() > NODES_MAX {
            return Err(format!("{} nodes held, at most {NODES_MAX}", self.nodes.len()));
        }
        Ok(())
    }

    /// One coordinator's entry: active queries are filed under their own ids, none of them
    /// done, within the per-coordinator bound; the completed list holds only done queries, each
    /// once, no more than `max-completed-queries`, and none learned after the
    /// coordinator was last heard from. These are what make the group counts derived from the
    /// active queries right: a done query counted as queued, or one counted twice, would skew
    /// every other coordinator's admission.
    fn check_coordinator(&self, coordinator_id: &str, coordinator: &CoordinatorQueries) -> Result<(), String> {
        if coordinator.active.len() > QUERIES_PER_COORDINATOR_MAX {
            return Err(format!("{coordinator_id}: {} active queries, at most {QUERIES_PER_COORDINATOR_MAX}", coordinator.active.len()));
        }
        // The group counts every other coordinator admits on are derived from these.
        for (query_id, query) in &coordinator.active {
            if query.query_id != *query_id {
                return Err(format!("{coordinator_id}: active query {} filed under {query_id}", query.query_id));
            }
            if query.state.is_done() {
                return Err(format!("{coordinator_id}: active query {query_id} is {:?}", query.state));
            }
        }
        if coordinator.completed.len() > self.config.max_completed_queries {
            return Err(format!(
                "{coordinator_id}: {} completed queries kept, max-completed-queries is {}",
                coordinator.completed.len(),
                self.config.max_completed_queries
            ));
        }
        // Not asserted: that `learned_ms` ascends. It does while the RM's clock does, but a clock
        // stepped back (skew ending, in simulation) appends an earlier time; expiry then pops
        // only from the front, which is what `check_expired` checks.
        let mut seen = std::collections::BTreeSet::new();
        for (learned_ms, query) in &coordinator.completed {
            if !query.state.is_done() {
                return Err(format!("{coordinator_id}: completed query {} is {:?}", query.query_id, query.state));
            }
            if !seen.insert(query.query_id.as_str()) {
                return Err(format!("{coordinator_id}: completed query {} is listed twice", query.query_id));
            }
            if !coordinator.completed_ids.contains(&query.query_id) {
                return Err(format!("{coordinator_id}: completed query {} is missing from the index", query.query_id));
            }
            if *learned_ms > coordinator.last_heartbeat_ms {
                return Err(format!(
                    "{coordinator_id}: completed query {} learned at {learned_ms} ms, after the last heartbeat at {} ms",
                    query.query_id, coordinator.last_heartbeat_ms
                ));
            }
        }
        if coordinator.completed_ids.len() != seen.len() {
            return Err(format!(
                "{coordinator_id}: the completed index holds {} ids for {} completed queries",
                coordinator.completed_ids.len(),
                seen.len()
            ));
        }
        Ok(())
    }

    /// After a query heartbeat from `coordinator_id`: its entry is well-formed and, if it was
    /// known before (`before`: its sequence and last-heard time then), neither went back.
    fn check_coordinator_after(&self, coordinator_id: &str, before: Option<(u64, u64)>) -> Result<(), String> {
        let Some(coordinator) = self.coordinators.get(coordinator_id) else {
            return match before {
                Some(_) => Err(format!("{coordinator_id}: a heartbeat removed its entry")),
                None => Ok(()), // refused
            };
        };
        if let Some((sequence, last_heartbeat_ms)) = before {
            if coordinator.sequence < sequence {
                return Err(format!("{coordinator_id}: sequence went back from {sequence} to {}", coordinator.sequence));
            }
            if coordinator.last_heartbeat_ms < last_heartbeat_ms {
                return Err(format!(
                    "{coordinator_id}: last heartbeat went back from {last_heartbeat_ms} ms to {} ms",
                    coordinator.last_heartbeat_ms
                ));
            }
        }
        self.check_coordinator(coordinator_id, coordinator)
    }

    /// A node is filed under its own id.
    fn check_node(&self, node_id: &str) -> Result<(), String> {
        match self.nodes.get(node_id) {
            Some(node) if node.heartbeat.node_id == node_id => Ok(()),
            Some(node) => Err(format!("node {} filed under {node_id}", node.heartbeat.node_id)),
            None => Err(format!("node {node_id} is not held")),
        }
    }

    /// After `expire(now_ms)`: no node silent for `node-status-timeout` is left, no coordinator
    /// silent for `query-expiration-timeout` still has active queries, and no completed query
    /// older than `completed-query-expiration` is kept.
    fn check_expired(&self, now_ms: u64) -> Result<(), String> {
        let config = &self.config;
        for (node_id, node) in &self.nodes {
            if now_ms.saturating_sub(node.last_heartbeat_ms) >= config.node_status_timeout_ms {
                return Err(format!("node {node_id}, silent since {} ms, outlived expiry at {now_ms} ms", node.last_heartbeat_ms));
            }
        }
        for (coordinator_id, coordinator) in &self.coordinators {
            let silent = now_ms.saturating_sub(coordinator.last_heartbeat_ms) >= config.query_expiration_timeout_ms;
            if silent && !coordinator.active.is_empty() {
                return Err(format!(
                    "{coordinator_id}, silent since {} ms, still has {} active queries at {now_ms} ms",
                    coordinator.last_heartbeat_ms,
                    coordinator.active.len()
                ));
            }
            if let Some((learned_ms, query)) = coordinator.completed.front() {
                if now_ms.saturating_sub(*learned_ms) >= config.completed_query_expiration_ms {
                    return Err(format!("{coordinator_id}: completed query {} outlived its expiry", query.query_id));
                }
            }
        }
        Ok(())
    }

    /// Per-group counts over every coordinator except `excluding` (the asker counts its own).
    /// Leaves get `running`/`queued`; every ancestor (`a` for `a.b`) gets the descendant counts.
    pub fn group_counts(&self, excluding: Option<&str>) -> Vec<GroupCounts> {
        let mut groups: BTreeMap<String, GroupCounts> = BTreeMap::new();
        for (coordinator_id, coordinator) in &self.coordinators {
            if Some(coordinator_id.as_str()) == excluding {
                continue;
            }
            for query in coordinator.active.values() {
                let is_running = query.state == QueryState::Running;
                let leaf = groups.entry(query.group.clone()).or_insert_with(|| named(&query.group));
                if is_running {
                    leaf.running += 1;
                } else {
                    leaf.queued += 1;
                }
                leaf.memory_bytes = leaf.memory_bytes.saturating_add(query.memory_bytes);
                let mut path = query.group.as_str();
                while let Some((parent, _)) = path.rsplit_once('.') {
                    let ancestor = groups.entry(parent.to_string()).or_insert_with(|| named(parent));
                    if is_running {
                        ancestor.descendant_running += 1;
                    } else {
                        ancestor.descendant_queued += 1;
                    }
                    ancestor.memory_bytes = ancestor.memory_bytes.saturating_add(query.memory_bytes);
                    path = parent;
                }
            }
        }
        groups.into_values().collect()
    }

    /// Workers with a heartbeat within `node-status-timeout`, ordered by node id.
    pub fn workers(&self, now_ms: u64) -> Vec<WorkerView> {
        self.nodes
            .values()
            .filter(|node| now_ms.saturating_sub(node.last_heartbeat_ms) < self.config.node_status_timeout_ms)
            .filter(|node| node.heartbeat.role == crate::config::Role::Worker)
            .map(|node| WorkerView {
                node_id: node.heartbeat.node_id.clone(),
                uri: node.heartbeat.uri.clone(),
                memory: node.heartbeat.memory.clone(),
                cpu: node.heartbeat.cpu.clone(),
            })
            .collect()
    }

    pub fn memory(&self, now_ms: u64) -> ClusterMemory {
        let mut memory = ClusterMemory::default();
        for worker in self.workers(now_ms) {
            let MemoryInfo { pool_bytes, reserved_bytes, blocked, query_reservations } = worker.memory;
            memory.total_bytes = memory.total_bytes.saturating_add(pool_bytes);
            memory.reserved_bytes = memory.reserved_bytes.saturating_add(reserved_bytes);
            memory.blocked_nodes += u32::from(blocked);
            memory.nodes += 1;
            for (query_id, bytes) in query_reservations {
                let held = memory.query_reservations.entry(query_id).or_insert(0);
                *held = held.saturating_add(bytes);
            }
        }
        let mut largest: Option<(&String, u64)> = None;
        for (query_id, bytes) in &memory.query_reservations {
            if *bytes > 0 && largest.is_none_or(|(_, most)| *bytes > most) {
                largest = Some((query_id, *bytes));
            }
        }
        memory.largest_query = largest.map(|(query_id, _)| query_id.clone());
        memory.running_queries = self
            .coordinators
            .values()
            .flat_map(|coordinator| coordinator.active.values())
            .filter(|query| query.state == QueryState::Running)
            .map(|query| query.query_id.clone())
            .collect();
        memory
    }

    /// Queries that ended with CLUSTER_OUT_OF_MEMORY and that a worker still reports holding
    /// memory: kills still taking effect, which the coordinated killer waits for.
    pub fn pending_memory_kills(&self, now_ms: u64) -> Vec<String> {
        let holds = |query_id: &str| {
            self.nodes.values().any(|node| {
                now_ms.saturating_sub(node.last_heartbeat_ms) < self.config.node_status_timeout_ms
                    && node.heartbeat.memory.query_reservations.get(query_id).is_some_and(|bytes| *bytes > 0)
            })
        };
        self.coordinators
            .values()
            .flat_map(|coordinator| coordinator.completed.iter().map(|(_, query)| query))
            .filter(|query| query.error_name.as_deref() == Some(crate::protocol::errors::CLUSTER_OUT_OF_MEMORY.name))
            .filter(|query| holds(&query.query_id))
            .map(|query| query.query_id.clone())
            .collect()
    }

    /// Every query the RM knows (active and recently completed), for `/v1/query`.
    pub fn queries(&self) -> Vec<(String, QuerySummary)> {
        let mut queries = Vec::new();
        for coordinator in self.coordinators.values() {
            for query in coordinator.active.values() {
                queries.push((coordinator.uri.clone(), query.clone()));
            }
            for (_, query) in &coordinator.completed {
                queries.push((coordinator.uri.clone(), query.clone()));
            }
        }
        queries
    }

    /// `(coordinator id, uri)` of every coordinator whose heartbeats the RM holds, by id.
    pub fn coordinators(&self) -> Vec<(String, String)> {
        self.coordinators.iter().map(|(id, coordinator)| (id.clone(), coordinator.uri.clone())).collect()
    }
}

fn named(group: &str) -> GroupCounts {
    GroupCounts { group: group.to_string(), ..GroupCounts::default() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Role;

    fn config() -> ClusterStateConfig {
        ClusterStateConfig {
            query_expiration_timeout_ms: 10_000,
            node_status_timeout_ms: 30_000,
            completed_query_expiration_ms: 600_000,
            max_completed_queries: 2,
        }
    }

    fn query(id: &str, group: &str, state: QueryState) -> QuerySummary {
        QuerySummary {
            query_id: id.into(),
            group: group.into(),
            state,
            user: "u".into(),
            source: None,
            query: "SELECT 1".into(),
            memory_bytes: 10,
            created_wall_ms: 0,
            error_name: None,
        }
    }

    fn heartbeat(coordinator: &str, sequence: u64, queries: Vec<QuerySummary>) -> QueryHeartbeat {
        QueryHeartbeat { coordinator_id: coordinator.into(), coordinator_uri: format!("http://{coordinator}"), sequence, queries }
    }

    #[test]
    fn counts_exclude_the_asker_and_roll_up_to_ancestors() {
        let mut state = ClusterState::new(config());
        state.apply_query_heartbeat(heartbeat("c1", 1, vec![query("q1", "etl.a", QueryState::Running), query("q2", "etl.a", QueryState::Queued)]), 0);
        state.apply_query_heartbeat(heartbeat("c2", 1, vec![query("q3", "etl.b", QueryState::Running)]), 0);
        let all = state.group_counts(None);
        let etl = all.iter().find(|g| g.group == "etl").unwrap();
        assert_eq!((etl.running, etl.descendant_running, etl.descendant_queued, etl.memory_bytes), (0, 2, 1, 30));
        let for_c1 = state.group_counts(Some("c1"));
        assert!(for_c1.iter().all(|g| g.group != "etl.a"), "c1's own queries must not be counted back to it");
        assert_eq!(for_c1.iter().find(|g| g.group == "etl.b").unwrap().running, 1);
    }

    #[test]
    fn batches_replace_and_stale_batches_are_ignored() {
        let mut state = ClusterState::new(config());
        state.apply_query_heartbeat(heartbeat("c1", 2, vec![query("q1", "g", QueryState::Running)]), 0);
        assert_eq!(state.apply_query_heartbeat(heartbeat("c1", 1, vec![]), 1), HeartbeatOutcome::Stale);
        assert_eq!(state.group_counts(None)[0].running, 1);
        state.apply_query_heartbeat(heartbeat("c1", 3, vec![query("q1", "g", QueryState::Finished)]), 2);
        assert!(state.group_counts(None).is_empty());
        assert_eq!(state.queries().len(), 1, "completed queries are kept for the UI");
        for n in 0..5 {
            state.apply_query_heartbeat(heartbeat("c1", 4 + n, vec![query(&format!("d{n}"), "g", QueryState::Failed)]), 3);
        }
        assert_eq!(state.queries().len(), 2, "completed queries are bounded");
    }

    /// The forged batch at sequence 2^64-1: the real coordinator's batches are stale
    /// after it, but they do not keep it alive, so it expires and the real ones apply again.
    #[test]
    fn stale_batches_do_not_keep_an_entry_alive() {
        let mut state = ClusterState::new(config());
        let forged = vec![query("forged", "g", QueryState::Running)];
        assert_eq!(state.apply_query_heartbeat(heartbeat("c1", u64::MAX, forged), 0), HeartbeatOutcome::Applied);
        let expiry_ms = config().query_expiration_timeout_ms;
        let mut now_ms = 0;
        while now_ms + 1_000 < expiry_ms {
            now_ms += 1_000;
            assert_eq!(state.apply_query_heartbeat(heartbeat("c1", now_ms, vec![]), now_ms), HeartbeatOutcome::Stale);
            state.expire(now_ms);
        }
        now_ms += 1_000;
        state.expire(now_ms);
        let real = vec![query("real", "g", QueryState::Running)];
        assert_eq!(state.apply_query_heartbeat(heartbeat("c1", now_ms, real), now_ms), HeartbeatOutcome::Applied);
        let ids: Vec<String> = state.queries().into_iter().map(|(_, query)| query.query_id).collect();
        assert_eq!(ids, vec!["real".to_string()]);
    }

    #[test]
    fn silent_coordinators_and_nodes_expire() {
        let mut state = ClusterState::new(config());
        state.apply_query_heartbeat(heartbeat("c1", 1, vec![query("q1", "g", QueryState::Running)]), 0);
        let worker = NodeHeartbeat {
            node_id: "w1".into(),
            role: Role::Worker,
            uri: "http://w1".into(),
            memory: MemoryInfo { pool_bytes: 100, reserved_bytes: 40, blocked: true, query_reservations: BTreeMap::new() },
            cpu: Default::default(),
        };
        state.apply_node_heartbeat(worker, 0);
        assert_eq!(state.memory(1).total_bytes, 100);
        assert_eq!(state.memory(1).blocked_nodes, 1);
        state.expire(9_999);
        assert_eq!(state.group_counts(None).len(), 1);
        state.expire(10_000);
        assert!(state.group_counts(None).is_empty());
        assert_eq!(state.workers(29_999).len(), 1);
        state.expire(30_000);
        assert!(state.workers(30_000).is_empty());
    }

    /// The heartbeats with u64::MAX everywhere: the cluster's totals saturate, never wrap.
    #[test]
    fn huge_numbers_from_workers_saturate_the_totals() {
        let mut state = ClusterState::new(config());
        for node in ["w1", "w2"] {
            let reservations = BTreeMap::from([("q1".to_string(), u64::MAX)]);
            let memory = MemoryInfo { pool_bytes: u64::MAX, reserved_bytes: u64::MAX, blocked: false, query_reservations: reservations };
            let heartbeat = NodeHeartbeat { node_id: node.into(), role: Role::Worker, uri: format!("http://{node}"), memory, cpu: Default::default() };
            assert_eq!(state.apply_node_heartbeat(heartbeat, 0), HeartbeatOutcome::Applied);
        }
        let memory = state.memory(1);
        assert_eq!((memory.total_bytes, memory.reserved_bytes), (u64::MAX, u64::MAX));
        assert_eq!(memory.query_reservations.get("q1"), Some(&u64::MAX));
    }

    #[test]
    fn cluster_pool_sums_workers_and_names_the_largest_query() {
        let mut state = ClusterState::new(config());
        state.apply_query_heartbeat(heartbeat("c1", 1, vec![query("q1", "g", QueryState::Running), query("q2", "g", QueryState::Queued)]), 0);
        let worker = |node: &str, blocked: bool, reservations: &[(&str, u64)]| NodeHeartbeat {
            node_id: node.into(),
            role: Role::Worker,
            uri: format!("http://{node}"),
            memory: MemoryInfo::holding(100, blocked, reservations),
            cpu: Default::default(),
        };
        state.apply_node_heartbeat(worker("w1", true, &[("q1", 30), ("q3", 50)]), 0);
        state.apply_node_heartbeat(worker("w2", false, &[("q1", 40)]), 5_000);
        let memory = state.memory(6_000);
        assert_eq!((memory.total_bytes, memory.reserved_bytes, memory.blocked_nodes, memory.nodes), (200, 120, 1, 2));
        assert_eq!(memory.query_reservations.get("q1"), Some(&70));
        assert_eq!(memory.largest_query.as_deref(), Some("q1"));
        assert_eq!(memory.running_queries, vec!["q1".to_string()]);
        assert!(state.pending_memory_kills(6_000).is_empty());
        let mut killed = query("q3", "g", QueryState::Failed);
        killed.error_name = Some("CLUSTER_OUT_OF_MEMORY".into());
        state.apply_query_heartbeat(heartbeat("c1", 2, vec![query("q1", "g", QueryState::Running), killed]), 6_000);
        assert_eq!(state.pending_memory_kills(6_000), vec!["q3".to_string()], "killed, but w1 still reports its memory");
        state.apply_node_heartbeat(worker("w1", false, &[("q1", 30)]), 6_500);
        assert!(state.pending_memory_kills(7_000).is_empty(), "w1 released it");
        // w2 stops heartbeating: after node-status-timeout its pool leaves the cluster pool.
        let memory = state.memory(35_000);
        assert_eq!((memory.total_bytes, memory.blocked_nodes, memory.nodes), (100, 0, 1));
        assert_eq!(memory.query_reservations.get("q1"), Some(&30));
    }

    /// c1 with q1 running and d1 completed, c2 with q2 queued, worker w1.
    fn busy_state() -> ClusterState {
        let mut state = ClusterState::new(config());
        let done = query("d1", "g", QueryState::Finished);
        state.apply_query_heartbeat(heartbeat("c1", 1, vec![query("q1", "g", QueryState::Running), done]), 1_000);
        state.apply_query_heartbeat(heartbeat("c2", 1, vec![query("q2", "g.x", QueryState::Queued)]), 1_000);
        let worker = NodeHeartbeat {
            node_id: "w1".into(),
            role: Role::Worker,
            uri: "http://w1".into(),
            memory: MemoryInfo::holding(100, false, &[]),
            cpu: Default::default(),
        };
        state.apply_node_heartbeat(worker, 1_000);
        state.check_invariants().expect("consistent before the damage");
        state
    }

    fn caught(result: Result<(), String>, expected: &str) {
        let error = result.expect_err("the check must catch the damage");
        assert!(error.contains(expected), "said {error:?}, expected {expected:?}");
    }

    #[test]
    fn misfiled_or_finished_active_queries_are_caught() {
        let mut state = busy_state();
        let moved = state.coordinators.get_mut("c1").unwrap().active.remove("q1").unwrap();
        state.coordinators.get_mut("c1").unwrap().active.insert("elsewhere".into(), moved);
        caught(state.check_invariants(), "c1: active query q1 filed under elsewhere");

        let mut state = busy_state();
        state.coordinators.get_mut("c2").unwrap().active.get_mut("q2").unwrap().state = QueryState::Failed;
        caught(state.check_invariants(), "c2: active query q2 is Failed");
    }

    #[test]
    fn completed_lists_past_their_bound_duplicated_or_unfinished_are_caught() {
        let mut state = busy_state();
        let completed = &mut state.coordinators.get_mut("c1").unwrap().completed;
        let first = completed[0].clone();
        completed.push_back(first);
        caught(state.check_invariants(), "c1: completed query d1 is listed twice");
        let completed = &mut state.coordinators.get_mut("c1").unwrap().completed;
        completed.push_back((1_000, query("d2", "g", QueryState::Failed)));
        caught(state.check_invariants(), "c1: 3 completed queries kept, max-completed-queries is 2");

        let mut state = busy_state();
        state.coordinators.get_mut("c1").unwrap().completed[0].1.state = QueryState::Running;
        caught(state.check_invariants(), "c1: completed query d1 is Running");

        let mut state = busy_state();
        state.coordinators.get_mut("c1").unwrap().completed[0].0 = 5_000;
        caught(state.check_invariants(), "learned at 5000 ms, after the last heartbeat at 1000 ms");

        let mut state = busy_state();
        state.coordinators.get_mut("c1").unwrap().completed_ids.insert("ghost".into());
        caught(state.check_invariants(), "c1: the completed index holds 2 ids for 1 completed queries");
        let mut state = busy_state();
        state.coordinators.get_mut("c1").unwrap().completed_ids.clear();
        caught(state.check_invariants(), "c1: completed query d1 is missing from the index");
    }

    #[test]
    fn the_completed_index_follows_the_list_through_bounds_and_expiry() {
        let mut state = ClusterState::new(config());
        // Each heartbeat repeats what finished recently; a query is completed once, however often
        // it is repeated, and leaves the index when it leaves the list.
        let mut finished = Vec::new();
        for (sequence, id) in ["d1", "d2", "d3"].into_iter().enumerate() {
            finished.push(query(id, "g", QueryState::Finished));
            let mut batch = heartbeat("c1", sequence as u64 + 1, finished.clone());
            batch.queries.push(query("q1", "g", QueryState::Running));
            assert_eq!(state.apply_query_heartbeat(batch, 1_000 + sequence as u64), HeartbeatOutcome::Applied);
            state.check_invariants().unwrap();
        }
        let entry = &state.coordinators["c1"];
        let ids: Vec<&str> = entry.completed.iter().map(|(_, query)| query.query_id.as_str()).collect();
        assert_eq!(ids, ["d2", "d3"], "bounded by max-completed-queries = 2, oldest dropped");
        assert_eq!(entry.completed_ids.iter().map(String::as_str).collect::<Vec<_>>(), ["d2", "d3"]);
        // The coordinator is still alive (a fresh heartbeat), but its completed queries are old.
        let later = heartbeat("c1", 9, vec![query("q1", "g", QueryState::Running)]);
        assert_eq!(state.apply_query_heartbeat(later, 601_002), HeartbeatOutcome::Applied);
        state.expire(601_003);
        let entry = &state.coordinators["c1"];
        assert!(entry.completed.is_empty() && entry.completed_ids.is_empty(), "expired from both");
    }

    #[test]
    fn a_sequence_or_heartbeat_time_going_back_is_caught() {
        let mut state = busy_state();
        state.apply_query_heartbeat(heartbeat("c1", 7, vec![]), 2_000);
        caught(state.check_coordinator_after("c1", Some((9, 2_000))), "c1: sequence went back from 9 to 7");
        caught(state.check_coordinator_after("c1", Some((7, 3_000))), "c1: last heartbeat went back from 3000 ms to 2000 ms");
        state.check_coordinator_after("c1", Some((6, 1_500))).expect("forward is fine");
        state.coordinators.remove("c1");
        caught(state.check_coordinator_after("c1", Some((7, 2_000))), "a heartbeat removed its entry");
    }

    #[test]
    fn what_expiry_should_have_purged_is_caught() {
        let state = busy_state();
        // 30 s of silence is past node-status-timeout for w1 and query-expiration-timeout for c1 and c2.
        caught(state.check_expired(31_000), "node w1, silent since 1000 ms, outlived expiry at 31000 ms");
        let mut state = busy_state();
        state.nodes.clear();
        caught(state.check_expired(11_000), "c1, silent since 1000 ms, still has 1 active queries at 11000 ms");
        for coordinator in state.coordinators.values_mut() {
            coordinator.active.clear();
        }
        caught(state.check_expired(601_000), "c1: completed query d1 outlived its expiry");
        state.expire(601_000);
        state.check_expired(601_000).expect("expire() leaves nothing it should have purged");
    }

    #[test]
    fn a_node_filed_under_another_id_is_caught() {
        let mut state = busy_state();
        let node = state.nodes.remove("w1").unwrap();
        state.nodes.insert("w9".into(), node);
        caught(state.check_invariants(), "node w1 filed under w9");
    }

    #[test]
    fn every_input_runs_the_check() {
        let mut state = busy_state();
        state.coordinators.get_mut("c1").unwrap().completed[0].1.state = QueryState::Running;
        let heartbeat = heartbeat("c1", 2, vec![query("q1", "g", QueryState::Running)]);
        let applied = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| state.apply_query_heartbeat(heartbeat, 2_000)));
        assert!(applied.is_err(), "a heartbeat applied to a broken entry went unnoticed");
    }
}

