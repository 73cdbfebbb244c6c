//! [`ResourceGroupManager`]: what the coordinator calls. Creates groups from the spec on demand,
//! keeps the cpu-quota clock, applies RM refreshes, and delegates admission to the tree.

use std::collections::BTreeMap;

use super::group::{GroupConfig, GroupIndex, NewGroup, RemoteCounts};
use super::selector;
use super::spec::{GroupSpec, ManagerSpec, PerQueryLimits};
use super::tree::GroupTree;
use super::{AdmissionPolicy, SelectionContext, SubmitOutcome, GROUPS_MAX, QUERIES_MAX, REMOTE_GROUPS_MAX};
use crate::wire::GroupCounts;

/// One coordinator's resource groups. Pure and deterministic: time comes in as `now_ms`, the
/// only randomness is the seeded RNG, and every collection iterates in a fixed order.
#[derive(Debug)]
pub struct ResourceGroupManager {
    pub(crate) spec: ManagerSpec,
    pub(crate) tree: GroupTree,
    /// The RM's last snapshot, kept whole so a group created between refreshes sees its counts.
    remote_snapshot: BTreeMap<String, RemoteCounts>,
    /// Cpu quota is regenerated in whole seconds since this instant (Presto's manager loop).
    cpu_clock_ms: u64,
    has_cpu_limits: bool,
}

impl ResourceGroupManager {
    pub fn new(spec: ManagerSpec, policy: AdmissionPolicy, concurrency_threshold: f64, seed: u64, now_ms: u64) -> Self {
        let has_cpu_limits = has_cpu_limits(&spec.root_groups);
        ResourceGroupManager {
            spec,
            tree: GroupTree::new(policy, concurrency_threshold, seed),
            remote_snapshot: BTreeMap::new(),
            cpu_clock_ms: now_ms,
            has_cpu_limits,
        }
    }

    /// Presto's legacy manager, used when no resource-groups file is configured: one root group
    /// `global` (`query.max-concurrent-queries`, `query.max-queued-queries`, softMemoryLimit 100%).
    pub fn legacy(
        max_running: u32,
        max_queued: u32,
        policy: AdmissionPolicy,
        concurrency_threshold: f64,
        seed: u64,
        now_ms: u64,
    ) -> Self {
        Self::new(ManagerSpec::legacy(max_running, max_queued), policy, concurrency_threshold, seed, now_ms)
    }

    /// The dotted id of the query's group, or Presto's "Query did not match any selection rule".
    pub fn select(&self, context: &SelectionContext) -> Result<String, String> {
        selector::select(&self.spec.selectors, context)
    }

    /// Starts, queues or refuses the query (Presto's `InternalResourceGroup.run`), creating the
    /// group and its ancestors from their templates if needed. `priority` is the session's
    /// `query_priority`.
    pub fn submit(&mut self, query_id: &str, group_id: &str, priority: i32, now_ms: u64) -> SubmitOutcome {
        let every_group = self.advance_cpu_clock(now_ms);
        let outcome = self.admit(query_id, group_id, priority, now_ms);
        let leaf = self.tree.by_id.get(group_id).copied();
        self.assert_consistent(every_group, leaf, leaf.map(|leaf| (query_id, leaf)));
        outcome
    }

    fn admit(&mut self, query_id: &str, group_id: &str, priority: i32, now_ms: u64) -> SubmitOutcome {
        if let Some(entry) = self.tree.queries.get(query_id) {
            return SubmitOutcome::Invalid(format!(
                "query {query_id} is already in {}",
                self.tree.group(entry.group).id
            ));
        }
        if self.tree.queries.len() >= QUERIES_MAX {
            return SubmitOutcome::QueueFull(format!("Too many queries held by resource groups ({QUERIES_MAX})"));
        }
        let leaf = match self.get_or_create(group_id, now_ms) {
            Ok(leaf) => leaf,
            Err(message) => return SubmitOutcome::Invalid(message),
        };
        let group = self.tree.group(leaf);
        if !group.children.is_empty() || !group.is_leaf_spec {
            return SubmitOutcome::Invalid(format!("Cannot add queries to {}. It is not a leaf group.", group.id));
        }
        let outcome = self.tree.submit(leaf, query_id, priority, now_ms);
        debug_assert!(self.tree.queries.len() <= QUERIES_MAX);
        outcome
    }

    /// Starts every queued query that can start now; returns `(query id, group id)` in start order.
    pub fn start_eligible(&mut self, now_ms: u64) -> Vec<(String, String)> {
        let every_group = self.advance_cpu_clock(now_ms);
        let started = self.tree.start_eligible(now_ms);
        // The pass changes the path of each query it starts, and re-files a root that could
        // not start anything (Presto's `internalStartNext` returning false at the root).
        let result = (|| {
            if every_group {
                self.tree.check_groups()?;
            }
            for &root in &self.tree.roots {
                self.tree.check_path(root)?;
            }
            for (query_id, leaf) in &started {
                self.tree.check_query(query_id, *leaf)?;
                self.tree.check_path(*leaf)?;
            }
            Ok(())
        })();
        crate::runtime::sim_hooks::check_invariants("resource_groups", result);
        started.into_iter().map(|(query_id, group)| (query_id, self.tree.group(group).id.clone())).collect()
    }

    /// The query finished, failed or was cancelled, queued or running. False if unknown.
    pub fn remove(&mut self, query_id: &str) -> bool {
        let leaf = self.tree.queries.get(query_id).map(|entry| entry.group);
        let removed = self.tree.remove(query_id);
        self.assert_consistent(false, leaf, leaf.map(|leaf| (query_id, leaf)));
        removed
    }

    /// A successful RM poll: `remote` holds every *other* coordinator's counts (a group's
    /// `memory_bytes` including its descendants', as the RM builds them). Marks the groups fresh
    /// for the gate. A failed poll must not call this: the gate then keeps groups waiting.
    pub fn refresh(&mut self, remote: &[GroupCounts], now_ms: u64) {
        self.advance_cpu_clock(now_ms);
        self.remote_snapshot.clear();
        for counts in remote.iter().take(REMOTE_GROUPS_MAX) {
            let entry = self.remote_snapshot.entry(counts.group.clone()).or_default();
            entry.running = entry.running.saturating_add(counts.running);
            entry.queued = entry.queued.saturating_add(counts.queued);
            entry.descendant_running = entry.descendant_running.saturating_add(counts.descendant_running);
            entry.descendant_queued = entry.descendant_queued.saturating_add(counts.descendant_queued);
            entry.memory_bytes = entry.memory_bytes.saturating_add(counts.memory_bytes);
        }
        self.tree.set_remote(&self.remote_snapshot);
        self.tree.last_refresh_ms = Some(self.tree.last_refresh_ms.map_or(now_ms, |last_ms| last_ms.max(now_ms)));
        self.tree.recompute_all();
        self.assert_consistent(true, None, None);
    }

    /// The general pool size that percentage `softMemoryLimit`s resolve against (0 until set,
    /// as in Presto before its first memory-pool update).
    pub fn set_cluster_memory_bytes(&mut self, bytes: u64) {
        if self.tree.cluster_memory_bytes != bytes {
            self.tree.cluster_memory_bytes = bytes;
            self.tree.recompute_all();
            self.assert_consistent(true, None, None);
        }
    }

    /// Active workers, for `workersPerQueryLimit`.
    pub fn set_active_workers(&mut self, count: u32) {
        if self.tree.active_workers != count {
            self.tree.active_workers = count;
            self.tree.recompute_all();
            self.assert_consistent(true, None, None);
        }
    }

    /// A query's current user memory; counts against `softMemoryLimit` while it runs.
    pub fn set_query_memory_bytes(&mut self, query_id: &str, bytes: u64) {
        self.tree.set_query_memory(query_id, bytes);
        let leaf = self.tree.queries.get(query_id).map(|entry| entry.group);
        self.assert_consistent(false, leaf, None);
    }

    /// Charges a finished query's cpu time to its group and ancestors. Presto charges only
    /// queries that succeeded or failed with a user error; that choice is the caller's.
    pub fn charge_cpu_ms(&mut self, group_id: &str, cpu_ms: u64, now_ms: u64) {
        let every_group = self.advance_cpu_clock(now_ms);
        let group = self.tree.by_id.get(group_id).copied();
        if let Some(group) = group {
            self.tree.charge_cpu(group, cpu_ms);
        }
        self.assert_consistent(every_group, group, None);
    }

    /// The configured `hardConcurrencyLimit` of a group (created here or not), for the oracle.
    pub fn hard_concurrency_limit(&self, group_id: &str) -> Option<u32> {
        match self.tree.by_id.get(group_id) {
            Some(&group) => Some(self.tree.group(group).config.hard_concurrency_limit),
            None => self.resolve_spec_path(group_id).ok().map(|path| self.spec_at(&path).hard_concurrency_limit),
        }
    }

    /// The configured `maxQueued` of a group (created here or not), for the oracle.
    pub fn max_queued(&self, group_id: &str) -> Option<u32> {
        match self.tree.by_id.get(group_id) {
            Some(&group) => Some(self.tree.group(group).config.max_queued),
            None => self.resolve_spec_path(group_id).ok().map(|path| self.spec_at(&path).max_queued),
        }
    }

    /// `(group, hardConcurrencyLimit, maxQueued)` for a group and each ancestor, leaf first.
    pub fn limits_to_root(&self, group_id: &str) -> Vec<(String, u32, u32)> {
        let mut path = Vec::new();
        let mut id = Some(group_id);
        while let Some(current) = id {
            if let (Some(hard), Some(queued)) = (self.hard_concurrency_limit(current), self.max_queued(current)) {
                path.push((current.to_string(), hard, queued));
            }
            id = current.rsplit_once('.').map(|(parent, _)| parent);
        }
        path
    }

    pub fn per_query_limits(&self, group_id: &str) -> PerQueryLimits {
        match self.tree.by_id.get(group_id) {
            Some(&group) => self.tree.group(group).config.per_query_limits,
            None => {
                self.resolve_spec_path(group_id).map(|path| self.spec_at(&path).per_query_limits).unwrap_or_default()
            }
        }
    }

    /// Full consistency check (O(groups + queries)), for tests and the simulator.
    pub fn check_invariants(&self) -> Result<(), String> {
        self.tree.check_invariants()
    }

    /// Reports the incremental check after an input (see `invariants`): every group when the
    /// input touched them all, else the path above `group`, and the query the input was about.
    fn assert_consistent(&self, every_group: bool, group: Option<GroupIndex>, query: Option<(&str, GroupIndex)>) {
        let result = (|| {
            match (every_group, group) {
                (true, _) => self.tree.check_groups()?,
                (false, Some(group)) => self.tree.check_path(group)?,
                (false, None) => self.tree.check_totals()?,
            }
            match query {
                Some((query_id, leaf)) => self.tree.check_query(query_id, leaf),
                None => Ok(()),
            }
        })();
        crate::runtime::sim_hooks::check_invariants("resource_groups", result);
    }

    /// Regenerates cpu quota for whole elapsed seconds; true when that touched every group.
    fn advance_cpu_clock(&mut self, now_ms: u64) -> bool {
        let elapsed_seconds = now_ms.saturating_sub(self.cpu_clock_ms) / 1000;
        if elapsed_seconds == 0 {
            return false;
        }
        self.cpu_clock_ms += elapsed_seconds * 1000;
        // Without cpu limits usage changes nothing, so skip the O(groups) pass.
        if self.has_cpu_limits {
            self.tree.generate_cpu_quota(elapsed_seconds);
            return true;
        }
        false
    }

    pub(crate) fn spec_at(&self, path: &[usize]) -> &GroupSpec {
        let (first, rest) = path.split_first().expect("spec paths are never empty");
        rest.iter().fold(&self.spec.root_groups[*first], |spec, index| &spec.sub_groups[*index])
    }

    fn spec_children(&self, path: &[usize]) -> &[GroupSpec] {
        if path.is_empty() {
            &self.spec.root_groups
        } else {
            &self.spec_at(path).sub_groups
        }
    }

    /// Which spec each segment of `group_id` is configured by. Existing groups keep the spec
    /// they were created with; a new segment prefers the first selector that can produce the id,
    /// then a static name, then the only template that fits. (Presto decides with the selecting
    /// query's variables, which a dotted id no longer carries.)
    fn resolve_spec_path(&self, group_id: &str) -> Result<Vec<usize>, String> {
        let segments: Vec<&str> = group_id.split('.').collect();
        if segments.iter().any(|segment| segment.is_empty()) {
            return Err(format!("Empty segment in resource group id {group_id:?}"));
        }
        let preferred = self
            .spec
            .selectors
            .iter()
            .find(|selector| selector.group.could_produce(&segments))
            .map(|selector| &selector.spec_path);
        let mut path: Vec<usize> = Vec::with_capacity(segments.len());
        let mut following = preferred.is_some();
        for depth in 0..segments.len() {
            let prefix = segments[..=depth].join(".");
            let index = match self.tree.by_id.get(&prefix) {
                Some(&group) => *self.tree.group(group).spec_path.last().expect("spec paths are never empty"),
                None => {
                    let hint = preferred.filter(|_| following).map(|path| path[depth]);
                    choose_spec(self.spec_children(&path), segments[depth], hint, &prefix)?
                }
            };
            following &= preferred.is_some_and(|preferred| preferred[depth] == index);
            path.push(index);
        }
        Ok(path)
    }

    fn get_or_create(&mut self, group_id: &str, now_ms: u64) -> Result<GroupIndex, String> {
        if let Some(&group) = self.tree.by_id.get(group_id) {
            return Ok(group);
        }
        let path = self.resolve_spec_path(group_id)?;
        let mut parent: Option<GroupIndex> = None;
        for (depth, segment) in group_id.split('.').enumerate() {
            let prefix_id = match parent {
                Some(parent) => format!("{}.{segment}", self.tree.group(parent).id),
                None => segment.to_string(),
            };
            if let Some(&existing) = self.tree.by_id.get(&prefix_id) {
                parent = Some(existing);
                continue;
            }
            if self.tree.groups.len() >= GROUPS_MAX {
                return Err(format!(
                    "Cannot create resource group {prefix_id}: this coordinator already has {GROUPS_MAX} groups"
                ));
            }
            if let Some(parent) = parent.map(|parent| self.tree.group(parent)) {
                if !parent.running.is_empty() || !parent.queued.is_empty() {
                    return Err(format!("Cannot add sub group to {} while queries are running", parent.id));
                }
            }
            let spec = self.spec_at(&path[..=depth]);
            let parent_policy = parent.map(|parent| self.tree.policy_of(parent));
            let config = GroupConfig::from_spec(spec, parent_policy, self.spec.cpu_quota_period_ms);
            let remote = self.remote_snapshot.get(&prefix_id).copied().unwrap_or_default();
            let new = NewGroup {
                spec_path: path[..=depth].to_vec(),
                is_leaf_spec: spec.sub_groups.is_empty(),
                config,
                remote,
            };
            let created = self.tree.create_group(parent, segment, new, now_ms);
            parent = Some(created);
        }
        let leaf = parent.expect("ids have at least one segment");
        debug_assert_eq!(self.tree.group(leaf).id, group_id);
        Ok(leaf)
    }
}

fn choose_spec(candidates: &[GroupSpec], segment: &str, hint: Option<usize>, prefix: &str) -> Result<usize, String> {
    if let Some(index) =
        hint.filter(|index| candidates.get(*index).is_some_and(|spec| spec.name.could_produce(segment)))
    {
        return Ok(index);
    }
    if let Some(index) = candidates.iter().position(|spec| spec.name.is_static() && spec.name.as_str() == segment) {
        return Ok(index);
    }
    let fitting: Vec<usize> =
        (0..candidates.len()).filter(|index| candidates[*index].name.could_produce(segment)).collect();
    match fitting.as_slice() {
        [index] => Ok(*index),
        [] => Err(format!("No resource group configuration matches {prefix}")),
        several => Err(format!(
            "Ambiguous configuration for {prefix}: matches {}",
            several.iter().map(|index| candidates[*index].name.as_str()).collect::<Vec<_>>().join(" and ")
        )),
    }
}

fn has_cpu_limits(groups: &[GroupSpec]) -> bool {
    groups.iter().any(|group| {
        group.hard_cpu_limit_ms.is_some() || group.soft_cpu_limit_ms.is_some() || has_cpu_limits(&group.sub_groups)
    })
}
