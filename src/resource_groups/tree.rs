//! The group tree and its admission rules: Presto's `InternalResourceGroup` (`run`,
//! `canRunMore`, `canQueueMore`, `internalStartNext`, `updateEligibility`, `queryFinished`) and
//! `InternalResourceGroupManager.shouldWaitForResourceManagerUpdate`, with local and remote
//! counts merged as Presto's disaggregated coordinator merges them.
//!
//! Every parent keeps the set of its sub-groups that can start a query right now, so choosing
//! the next query walks one root-to-leaf path: O(depth · log n), never O(queued queries).
//! Invariant (checked by [`GroupTree::check_invariants`]): a group is in its parent's eligible
//! set exactly when it can run more and has a queued query or an eligible sub-group.

use std::collections::BTreeMap;

use super::group::{EligibleSet, Group, GroupIndex, NewGroup, QueryQueue, RemoteCounts};
use super::queues::Rng;
use super::spec::SchedulingPolicy;
use super::{AdmissionPolicy, SubmitOutcome};

#[derive(Clone, Debug)]
pub(crate) struct QueryEntry {
    pub(crate) group: GroupIndex,
    pub(crate) running: bool,
    pub(crate) memory_bytes: u64,
}

#[derive(Debug)]
pub(crate) struct GroupTree {
    pub(crate) groups: Vec<Group>,
    pub(crate) by_id: BTreeMap<String, GroupIndex>,
    /// Root groups in creation order: the order Presto's manager visits them.
    pub(crate) roots: Vec<GroupIndex>,
    pub(crate) queries: BTreeMap<String, QueryEntry>,
    pub(crate) rng: Rng,
    pub(crate) policy: AdmissionPolicy,
    pub(crate) concurrency_threshold: f64,
    /// When the last successful RM refresh completed; `None` is Presto's initial -1.
    pub(crate) last_refresh_ms: Option<u64>,
    pub(crate) cluster_memory_bytes: u64,
    pub(crate) active_workers: u32,
}

impl GroupTree {
    pub(crate) fn new(policy: AdmissionPolicy, concurrency_threshold: f64, seed: u64) -> Self {
        assert!(
            (0.0..=1.0).contains(&concurrency_threshold),
            "concurrency threshold {concurrency_threshold} is not in [0, 1]"
        );
        GroupTree {
            groups: Vec::new(),
            by_id: BTreeMap::new(),
            roots: Vec::new(),
            queries: BTreeMap::new(),
            rng: Rng::new(seed),
            policy,
            concurrency_threshold,
            last_refresh_ms: None,
            cluster_memory_bytes: 0,
            active_workers: 0,
        }
    }

    pub(crate) fn group(&self, index: GroupIndex) -> &Group {
        &self.groups[index as usize]
    }

    fn group_mut(&mut self, index: GroupIndex) -> &mut Group {
        &mut self.groups[index as usize]
    }

    /// The group and its ancestors, leaf first.
    pub(crate) fn path_to_root(&self, index: GroupIndex) -> impl Iterator<Item = GroupIndex> + '_ {
        std::iter::successors(Some(index), move |current| self.group(*current).parent)
    }

    pub(crate) fn create_group(
        &mut self,
        parent: Option<GroupIndex>,
        name: &str,
        new: NewGroup,
        now_ms: u64,
    ) -> GroupIndex {
        let NewGroup { spec_path, is_leaf_spec, config, remote } = new;
        let id = match parent {
            Some(parent) => format!("{}.{name}", self.group(parent).id),
            None => name.to_string(),
        };
        if let Some(parent) = parent {
            let parent = self.group(parent);
            assert!(
                parent.running.is_empty() && parent.queued.is_empty(),
                "cannot add a sub-group to {} while it holds queries",
                parent.id
            );
        }
        let index = GroupIndex::try_from(self.groups.len()).expect("group count is capped far below u32::MAX");
        self.groups.push(Group {
            id: id.clone(),
            parent,
            children: BTreeMap::new(),
            spec_path,
            is_leaf_spec,
            queued: QueryQueue::for_policy(config.policy),
            eligible: EligibleSet::for_policy(config.policy),
            config,
            running: Default::default(),
            descendant_running: 0,
            descendant_queued: 0,
            local_memory_bytes: 0,
            remote,
            cpu_usage_ms: 0,
            last_start_ms: now_ms,
        });
        let previous = self.by_id.insert(id, index);
        assert!(previous.is_none(), "group created twice");
        match parent {
            Some(parent) => {
                self.group_mut(parent).children.insert(name.to_string(), index);
            }
            None => self.roots.push(index),
        }
        index
    }

    /// Presto's `getHardConcurrencyLimitBasedOnCpuUsage`: between the soft and hard cpu limits
    /// the limit shrinks linearly, always by at least one, never below one. (Presto could then
    /// exceed a configured limit of 0; here the configured limit still caps it.)
    pub(crate) fn hard_limit_based_on_cpu(&self, index: GroupIndex) -> u32 {
        let group = self.group(index);
        let hard = group.config.hard_concurrency_limit;
        let Some(soft_cpu_ms) = group.config.soft_cpu_limit_ms.filter(|soft| group.cpu_usage_ms >= *soft) else {
            return hard;
        };
        let hard_cpu_ms = group.config.hard_cpu_limit_ms.unwrap_or(soft_cpu_ms);
        let penalized = if hard_cpu_ms > soft_cpu_ms {
            let penalty = (group.cpu_usage_ms - soft_cpu_ms) as f64 / (hard_cpu_ms - soft_cpu_ms) as f64;
            (f64::from(hard) * (1.0 - penalty)).floor().max(0.0) as u32
        } else {
            0
        };
        penalized.min(hard.saturating_sub(1)).max(1).min(hard)
    }

    /// The freshness gate. At or above `threshold × limit`, a group may start at most one query
    /// per successful refresh that completed after its last start. `Naive` never waits: it exists
    /// only so the simulation can show that the oracle catches the over-admission that follows.
    pub(crate) fn should_wait_for_refresh(&self, index: GroupIndex) -> bool {
        if self.policy == AdmissionPolicy::Naive {
            return false;
        }
        let group = self.group(index);
        let limit = f64::from(self.hard_limit_based_on_cpu(index));
        let busy = f64::from(group.total_running()) >= limit * self.concurrency_threshold;
        busy && self.last_refresh_ms.is_none_or(|refreshed_ms| refreshed_ms <= group.last_start_ms)
    }

    /// Presto's `canRunMore`, on the merged (local + remote) counts.
    pub(crate) fn can_run_more(&self, index: GroupIndex) -> bool {
        let group = self.group(index);
        if group.config.hard_cpu_limit_ms.is_some_and(|hard_cpu_ms| group.cpu_usage_ms >= hard_cpu_ms) {
            return false;
        }
        if self.should_wait_for_refresh(index) {
            return false;
        }
        let total = u64::from(group.total_running());
        let memory_limit_bytes = group.config.soft_memory_limit.resolve_bytes(self.cluster_memory_bytes);
        total < u64::from(self.hard_limit_based_on_cpu(index))
            && group.total_memory_bytes() <= memory_limit_bytes
            && total * u64::from(group.config.workers_per_query_limit) <= u64::from(self.active_workers)
    }

    pub(crate) fn can_queue_more(&self, index: GroupIndex) -> bool {
        let group = self.group(index);
        group.total_queued() < group.config.max_queued
    }

    fn is_eligible_to_start_next(&self, index: GroupIndex) -> bool {
        let group = self.group(index);
        (!group.queued.is_empty() || !group.eligible.is_empty()) && self.can_run_more(index)
    }

    /// The highest queued priority in the group's subtree (query_priority scheduling). Presto
    /// answers 0 for a group with sub-groups; taking the sub-groups' best keeps priority strict
    /// across nested query_priority groups, as the documentation promises.
    fn highest_priority(&self, index: GroupIndex) -> i64 {
        let group = self.group(index);
        group.queued.highest_priority().into_iter().chain(group.eligible.highest_priority()).max().unwrap_or(0)
    }

    /// Puts `child` in or out of its parent's eligible set, refreshing its place.
    fn refresh_membership(&mut self, child: GroupIndex) {
        let Some(parent) = self.group(child).parent else { return };
        if self.is_eligible_to_start_next(child) {
            let group = self.group(child);
            let weight = group.config.weight;
            let below_soft_limit = group.total_running() < group.config.soft_concurrency_limit;
            let priority = self.highest_priority(child);
            self.group_mut(parent).eligible.add_or_update(child, weight, below_soft_limit, priority);
        } else {
            self.group_mut(parent).eligible.remove(child);
        }
    }

    /// Presto's `updateEligibility`: from a changed group up to its root.
    pub(crate) fn update_eligibility(&mut self, index: GroupIndex) {
        let mut current = Some(index);
        let mut steps = 0;
        while let Some(group) = current {
            self.refresh_membership(group);
            current = self.group(group).parent;
            steps += 1;
            debug_assert!(steps <= self.groups.len(), "parent links form a cycle");
        }
    }

    /// After a change every group may see (a refresh, the worker count, the pool size, cpu
    /// quota): children are created after their parents, so descending indices go bottom-up.
    pub(crate) fn recompute_all(&mut self) {
        for index in (0..self.groups.len() as GroupIndex).rev() {
            self.refresh_membership(index);
        }
    }

    /// Presto's `run`: check every ancestor, then start, queue or refuse.
    pub(crate) fn submit(&mut self, leaf: GroupIndex, query_id: &str, priority: i32, now_ms: u64) -> SubmitOutcome {
        debug_assert!(self.group(leaf).children.is_empty() && !self.queries.contains_key(query_id));
        let (mut can_queue, mut can_run) = (true, true);
        for group in self.path_to_root(leaf) {
            can_queue &= self.can_queue_more(group);
            can_run &= self.can_run_more(group);
        }
        let entry = QueryEntry { group: leaf, running: false, memory_bytes: 0 };
        if can_run && self.group(leaf).queued.is_empty() {
            self.queries.insert(query_id.to_string(), entry);
            self.start(leaf, query_id.to_string(), false, now_ms);
            return SubmitOutcome::Started;
        }
        // Presto queues here even when `canQueueMore` is false if `canRunMore` is true (the
        // leaf still has queued queries); refusing instead keeps `maxQueued` a hard bound.
        if !can_queue {
            return SubmitOutcome::QueueFull(format!("Too many queued queries for \"{}\"", self.group(leaf).id));
        }
        self.queries.insert(query_id.to_string(), entry);
        self.group_mut(leaf).queued.push(query_id.to_string(), priority);
        let ancestors: Vec<GroupIndex> = self.path_to_root(leaf).skip(1).collect();
        for ancestor in ancestors {
            self.group_mut(ancestor).descendant_queued += 1;
        }
        self.update_eligibility(leaf);
        SubmitOutcome::Queued
    }

    /// Presto's `startInBackground`: count it running everywhere above, stamp the start time on
    /// the group and **all** its ancestors (the gate reads each group's own stamp).
    fn start(&mut self, leaf: GroupIndex, query_id: String, was_queued: bool, now_ms: u64) {
        let memory_bytes = {
            let entry = self.queries.get_mut(&query_id).expect("started query is known");
            debug_assert!(!entry.running && entry.group == leaf);
            entry.running = true;
            entry.memory_bytes
        };
        let path: Vec<GroupIndex> = self.path_to_root(leaf).collect();
        for (depth, &group) in path.iter().enumerate() {
            let group = self.group_mut(group);
            if depth > 0 {
                group.descendant_running += 1;
                if was_queued {
                    group.descendant_queued -= 1;
                }
            }
            group.local_memory_bytes += memory_bytes;
            group.last_start_ms = group.last_start_ms.max(now_ms);
        }
        let inserted = self.group_mut(leaf).running.insert(query_id);
        debug_assert!(inserted);
        self.update_eligibility(leaf);
    }

    /// Presto's `internalStartNext` from one root, iteratively: descend through the eligible
    /// sub-groups to a leaf with a queued query and start it.
    pub(crate) fn start_next(&mut self, root: GroupIndex, now_ms: u64) -> Option<(String, GroupIndex)> {
        let mut current = root;
        loop {
            if !self.can_run_more(current) {
                // Below the root the eligibility invariant rules this out.
                debug_assert!(current == root, "{} was eligible but cannot run", self.group(current).id);
                self.update_eligibility(current);
                return None;
            }
            let GroupTree { groups, rng, .. } = self;
            let polled = groups[current as usize].queued.poll(rng);
            if let Some(query_id) = polled {
                self.start(current, query_id.clone(), true, now_ms);
                return Some((query_id, current));
            }
            // Polling removes the sub-group; `start` re-adds it (at the back) if still eligible.
            match self.poll_eligible(current) {
                Some(child) => current = child,
                None => {
                    debug_assert!(current == root, "{} was eligible but has nothing to start", self.group(current).id);
                    self.update_eligibility(current);
                    return None;
                }
            }
        }
    }

    fn poll_eligible(&mut self, index: GroupIndex) -> Option<GroupIndex> {
        let GroupTree { groups, rng, .. } = self;
        let chosen = match &groups[index as usize].eligible {
            EligibleSet::Fifo(queue) | EligibleSet::Priority(queue) => queue.iter().next().map(|(_, child)| *child),
            EligibleSet::Lottery { below_soft_limit, at_soft_limit } => {
                let tier = if below_soft_limit.is_empty() { at_soft_limit } else { below_soft_limit };
                tier.sample(rng)
            }
            EligibleSet::WeightedFair(queue) => least_loaded(groups, queue.iter().map(|(_, child)| *child)),
        }?;
        let removed = self.group_mut(index).eligible.remove(chosen);
        debug_assert!(removed);
        Some(chosen)
    }

    /// Starts everything that can start now, root by root, as Presto's scheduling loop does.
    pub(crate) fn start_eligible(&mut self, now_ms: u64) -> Vec<(String, GroupIndex)> {
        let mut started = Vec::new();
        let bound = self.queries.len();
        for root in self.roots.clone() {
            while let Some(start) = self.start_next(root, now_ms) {
                started.push(start);
                assert!(started.len() <= bound, "started more queries than were queued");
            }
        }
        started
    }

    /// Presto's `queryFinished` without the cpu charge (the caller charges cpu separately).
    pub(crate) fn remove(&mut self, query_id: &str) -> bool {
        let Some(entry) = self.queries.remove(query_id) else { return false };
        let path: Vec<GroupIndex> = self.path_to_root(entry.group).collect();
        if entry.running {
            let removed = self.group_mut(entry.group).running.remove(query_id);
            debug_assert!(removed);
        } else {
            let removed = self.group_mut(entry.group).queued.remove(query_id);
            debug_assert!(removed);
        }
        for (depth, &group) in path.iter().enumerate() {
            let group = self.group_mut(group);
            if entry.running {
                group.local_memory_bytes -= entry.memory_bytes;
            }
            if depth > 0 {
                if entry.running {
                    group.descendant_running -= 1;
                } else {
                    group.descendant_queued -= 1;
                }
            }
        }
        self.update_eligibility(entry.group);
        true
    }

    pub(crate) fn set_query_memory(&mut self, query_id: &str, memory_bytes: u64) {
        let Some(entry) = self.queries.get_mut(query_id) else { return };
        let (old_bytes, running, leaf) = (entry.memory_bytes, entry.running, entry.group);
        entry.memory_bytes = memory_bytes;
        if !running || old_bytes == memory_bytes {
            return;
        }
        let path: Vec<GroupIndex> = self.path_to_root(leaf).collect();
        for group in path {
            let group = self.group_mut(group);
            group.local_memory_bytes = group.local_memory_bytes - old_bytes + memory_bytes;
        }
        self.update_eligibility(leaf);
    }

    /// Cpu time is charged to the group and every ancestor (Presto's `queryFinished`).
    pub(crate) fn charge_cpu(&mut self, index: GroupIndex, cpu_ms: u64) {
        let path: Vec<GroupIndex> = self.path_to_root(index).collect();
        for group in path {
            let group = self.group_mut(group);
            group.cpu_usage_ms = group.cpu_usage_ms.saturating_add(cpu_ms);
        }
        self.update_eligibility(index);
    }

    /// Presto's `internalGenerateCpuQuota`, for whole elapsed seconds.
    pub(crate) fn generate_cpu_quota(&mut self, elapsed_seconds: u64) {
        for group in &mut self.groups {
            let quota_ms = elapsed_seconds.saturating_mul(group.config.cpu_quota_ms_per_second);
            group.cpu_usage_ms = group.cpu_usage_ms.saturating_sub(quota_ms);
        }
        self.recompute_all();
    }

    /// Replaces every group's remote counts from an RM snapshot (absent groups: zero).
    pub(crate) fn set_remote(&mut self, snapshot: &BTreeMap<String, RemoteCounts>) {
        for group in &mut self.groups {
            group.remote = snapshot.get(&group.id).copied().unwrap_or_default();
        }
    }

    pub(crate) fn policy_of(&self, index: GroupIndex) -> SchedulingPolicy {
        self.group(index).config.policy
    }
}

/// Presto's `WeightedFairQueue.poll`: the smallest (running share / weight share). Both
/// totals are common to all candidates, so that is the smallest running / weight, compared
/// exactly; ties go to the earliest ticket, which is the iteration order here.
fn least_loaded(groups: &[Group], candidates: impl Iterator<Item = GroupIndex>) -> Option<GroupIndex> {
    let mut best: Option<(GroupIndex, u64, u64)> = None;
    for child in candidates {
        let group = &groups[child as usize];
        let (running, weight) = (u64::from(group.total_running()), u64::from(group.config.weight));
        let better = best.is_none_or(|(_, best_running, best_weight)| running * best_weight < best_running * weight);
        if better {
            best = Some((child, running, weight));
        }
    }
    best.map(|(child, _, _)| child)
}
