//! Consistency checks of the tree.
//!
//! - [`GroupTree::check_invariants`]: the full check, O(groups + queries). It recomputes every
//!   cached count from the query table and compares. Tests run it after every step.
//! - [`GroupTree::check_path`], [`GroupTree::check_groups`], [`GroupTree::check_query`],
//!   [`GroupTree::check_totals`]: the incremental checks the manager runs after *every* input it
//!   applies (reported through `runtime::sim_hooks::check_invariants`, which fails a simulated
//!   run). An input only changes the groups on one leaf-to-root path (a refresh or a cpu-quota
//!   tick changes them all, and costs O(groups) itself), so checking that path keeps the cost of
//!   an input at O(depth x (sub-groups + running queries of a group on the path)) instead of
//!   O(queries), which with 1,000 queued queries would make every input a thousand times dearer.
//!   Each group is checked against its own sets and its direct sub-groups, which is the same
//!   invariant the full check proves, one level at a time.

use std::collections::BTreeMap;

use super::group::GroupIndex;
use super::tree::GroupTree;

impl GroupTree {
    pub(crate) fn check_invariants(&self) -> Result<(), String> {
        let mut running: BTreeMap<GroupIndex, (u32, u64)> = BTreeMap::new();
        let mut queued: BTreeMap<GroupIndex, u32> = BTreeMap::new();
        for (query_id, entry) in &self.queries {
            let group = self.group(entry.group);
            if !group.children.is_empty() || !group.is_leaf_spec {
                return Err(format!("query {query_id} sits in {}, which is not a leaf", group.id));
            }
            let (in_running, in_queue) = (group.running.contains(query_id), group.queued.contains(query_id));
            if in_running == in_queue || in_running != entry.running {
                return Err(format!(
                    "query {query_id} in {}: running set {in_running}, queue {in_queue}, entry {}",
                    group.id, entry.running
                ));
            }
            if entry.running {
                let slot = running.entry(entry.group).or_default();
                slot.0 += 1;
                slot.1 += entry.memory_bytes;
            } else {
                *queued.entry(entry.group).or_default() += 1;
            }
        }
        // Children have larger indices than parents, so a reverse sweep sums bottom-up.
        let count = self.groups.len();
        let mut subtree = vec![(0u32, 0u32, 0u64); count];
        for index in (0..count as GroupIndex).rev() {
            let group = self.group(index);
            let own_running = running.get(&index).copied().unwrap_or_default();
            let own_queued = queued.get(&index).copied().unwrap_or_default();
            if group.running.len() as u32 != own_running.0 || group.queued.len() as u32 != own_queued {
                return Err(format!("{}: running/queued sets disagree with the query table", group.id));
            }
            let mut below = (0u32, 0u32, 0u64);
            for &child in group.children.values() {
                if self.group(child).parent != Some(index) {
                    return Err(format!("{}: child {} points elsewhere", group.id, self.group(child).id));
                }
                let (child_running, child_queued, child_memory) = subtree[child as usize];
                below = (below.0 + child_running, below.1 + child_queued, below.2 + child_memory);
            }
            if (group.descendant_running, group.descendant_queued) != (below.0, below.1) {
                return Err(format!(
                    "{}: descendant running/queued {}/{} but sub-groups hold {}/{}",
                    group.id, group.descendant_running, group.descendant_queued, below.0, below.1
                ));
            }
            let memory_bytes = own_running.1 + below.2;
            if group.local_memory_bytes != memory_bytes {
                return Err(format!(
                    "{}: memory {} but running queries hold {memory_bytes}",
                    group.id, group.local_memory_bytes
                ));
            }
            subtree[index as usize] = (own_running.0 + below.0, own_queued + below.1, memory_bytes);
            self.check_eligibility(index)?;
        }
        Ok(())
    }

    fn check_eligibility(&self, index: GroupIndex) -> Result<(), String> {
        let group = self.group(index);
        if group.eligible.len() > group.children.len() {
            return Err(format!("{}: more eligible sub-groups than sub-groups", group.id));
        }
        let Some(parent) = group.parent else { return Ok(()) };
        let listed = self.group(parent).eligible.contains(index);
        let eligible = self.can_run_more(index) && (!group.queued.is_empty() || !group.eligible.is_empty());
        if listed != eligible {
            return Err(format!("{}: eligible {eligible} but listed in its parent's eligible set: {listed}", group.id));
        }
        Ok(())
    }

    /// The group at `index` and every ancestor, each against its direct sub-groups and its own
    /// queries (see the module doc), then the cluster-wide totals.
    pub(crate) fn check_path(&self, index: GroupIndex) -> Result<(), String> {
        for group in self.path_to_root(index) {
            self.check_group(group)?;
        }
        self.check_totals()
    }

    /// Every group one level at a time: O(groups + running queries), the cost of the
    /// `recompute_all` pass that refreshes, pool-size and cpu-quota changes run anyway.
    pub(crate) fn check_groups(&self) -> Result<(), String> {
        for index in 0..self.groups.len() as GroupIndex {
            self.check_group(index)?;
        }
        self.check_totals()
    }

    /// `query_id` after an input about it: if the tree still holds it, its entry, its leaf and
    /// the leaf's running set and queue agree; if not, `leaf` (where it was) no longer lists it.
    pub(crate) fn check_query(&self, query_id: &str, leaf: GroupIndex) -> Result<(), String> {
        let Some(entry) = self.queries.get(query_id) else {
            let group = self.group(leaf);
            if group.running.contains(query_id) || group.queued.contains(query_id) {
                return Err(format!("query {query_id} was removed but {} still lists it", group.id));
            }
            return Ok(());
        };
        let group = self.group(entry.group);
        if !group.children.is_empty() || !group.is_leaf_spec {
            return Err(format!("query {query_id} sits in {}, which is not a leaf", group.id));
        }
        let (in_running, in_queue) = (group.running.contains(query_id), group.queued.contains(query_id));
        if in_running == in_queue || in_running != entry.running {
            return Err(format!(
                "query {query_id} in {}: running set {in_running}, queue {in_queue}, entry {}",
                group.id, entry.running
            ));
        }
        Ok(())
    }

    /// The roots' running and queued counts add up to the query table: no query is lost from,
    /// or counted twice in, the tree. O(root groups).
    pub(crate) fn check_totals(&self) -> Result<(), String> {
        let (mut running, mut queued) = (0u64, 0u64);
        for &root in &self.roots {
            let group = self.group(root);
            if group.parent.is_some() {
                return Err(format!("root {} has a parent", group.id));
            }
            running += u64::from(group.local_running());
            queued += u64::from(group.local_queued());
        }
        if running + queued != self.queries.len() as u64 {
            return Err(format!(
                "root groups count {running} running and {queued} queued, but {} queries are held",
                self.queries.len()
            ));
        }
        Ok(())
    }

    /// One group against its direct sub-groups and its own queries: descendant counts and
    /// memory are its sub-groups' sums, queries only sit in leaves, running queries are in the
    /// query table as running, and its eligibility is right.
    fn check_group(&self, index: GroupIndex) -> Result<(), String> {
        let group = self.group(index);
        if !group.children.is_empty() && (!group.running.is_empty() || !group.queued.is_empty()) {
            return Err(format!("{} has sub-groups and queries of its own", group.id));
        }
        let (mut below_running, mut below_queued, mut below_memory) = (0u32, 0u32, 0u64);
        for &child in group.children.values() {
            let child_group = self.group(child);
            if child_group.parent != Some(index) {
                return Err(format!("{}: child {} points elsewhere", group.id, child_group.id));
            }
            below_running += child_group.local_running();
            below_queued += child_group.local_queued();
            below_memory += child_group.local_memory_bytes;
        }
        if (group.descendant_running, group.descendant_queued) != (below_running, below_queued) {
            return Err(format!(
                "{}: descendant running/queued {}/{} but sub-groups hold {below_running}/{below_queued}",
                group.id, group.descendant_running, group.descendant_queued
            ));
        }
        let mut own_memory = 0u64;
        for query_id in &group.running {
            match self.queries.get(query_id) {
                Some(entry) if entry.running && entry.group == index => own_memory += entry.memory_bytes,
                _ => return Err(format!("{}: running query {query_id} is not running here in the query table", group.id)),
            }
        }
        if group.local_memory_bytes != own_memory + below_memory {
            return Err(format!(
                "{}: memory {} but its running queries hold {own_memory} and its sub-groups {below_memory}",
                group.id, group.local_memory_bytes
            ));
        }
        self.check_eligibility(index)
    }
}
