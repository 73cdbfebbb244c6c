//! A full consistency check of the tree, O(groups + queries). Tests run it after every step;
//! the simulator can too. It recomputes every cached count from the query table and compares.

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
}
