//! What the manager reports: Presto's `ResourceGroupInfo` JSON (for `/v1/resourceGroupState`)
//! and this coordinator's per-group counts (what the RM aggregates).

use serde_json::{json, Value};

use super::group::GroupIndex;
use super::manager::ResourceGroupManager;
use crate::config::format_data_size;
use crate::wire::GroupCounts;

impl ResourceGroupManager {
    /// This coordinator's counts for every group holding a query at or below it: leaves carry
    /// `running`/`queued`, ancestors `descendant_*`; `memory_bytes` covers the subtree. Ordered
    /// by group id.
    pub fn local_counts(&self) -> Vec<GroupCounts> {
        let mut counts: Vec<GroupCounts> = self
            .tree
            .groups
            .iter()
            .filter(|group| group.local_running() + group.local_queued() > 0)
            .map(|group| GroupCounts {
                group: group.id.clone(),
                running: group.running.len() as u32,
                queued: group.queued.len() as u32,
                descendant_running: group.descendant_running,
                descendant_queued: group.descendant_queued,
                memory_bytes: group.local_memory_bytes,
            })
            .collect();
        counts.sort_by(|left, right| left.group.cmp(&right.group));
        counts
    }

    /// Presto's `ResourceGroupInfo` for a group this coordinator has created, with sub-group
    /// summaries (those holding queries). `include_remote` adds the RM's counts of the other
    /// coordinators to the numbers; `state` always reflects the merged view, as Presto's does.
    pub fn group_info(&self, group_id: &str, include_remote: bool) -> Option<Value> {
        let &index = self.tree.by_id.get(group_id)?;
        let mut info = self.info_summary(index, include_remote);
        let group = self.tree.group(index);
        let summaries: Vec<Value> = group
            .children
            .values()
            .filter(|child| {
                let (running, queued, _) = self.counts(**child, include_remote);
                running + queued > 0
            })
            .map(|child| self.info_summary(*child, include_remote))
            .collect();
        info["subGroups"] = Value::Array(summaries);
        Some(info)
    }

    /// (running, queued, memory bytes), local or merged.
    fn counts(&self, index: GroupIndex, include_remote: bool) -> (u32, u32, u64) {
        let group = self.tree.group(index);
        if include_remote {
            (group.total_running(), group.total_queued(), group.total_memory_bytes())
        } else {
            (group.local_running(), group.local_queued(), group.local_memory_bytes)
        }
    }

    fn info_summary(&self, index: GroupIndex, include_remote: bool) -> Value {
        let group = self.tree.group(index);
        let state = if self.tree.can_run_more(index) {
            "CAN_RUN"
        } else if self.tree.can_queue_more(index) {
            "CAN_QUEUE"
        } else {
            "FULL"
        };
        let (running, queued, memory_bytes) = self.counts(index, include_remote);
        let config = &group.config;
        json!({
            "id": group.id.split('.').collect::<Vec<_>>(),
            "state": state,
            "schedulingPolicy": config.policy.presto_name(),
            "schedulingWeight": config.weight,
            "softMemoryLimit": format_data_size(config.soft_memory_limit.resolve_bytes(self.tree.cluster_memory_bytes)),
            "softConcurrencyLimit": config.soft_concurrency_limit,
            "hardConcurrencyLimit": config.hard_concurrency_limit,
            "maxQueuedQueries": config.max_queued,
            "memoryUsage": format_data_size(memory_bytes),
            "numQueuedQueries": queued,
            "numRunningQueries": running,
            "numAggregatedQueuedQueries": queued,
            "numAggregatedRunningQueries": running,
            "numEligibleSubGroups": group.eligible.len(),
            "workersPerQueryLimit": config.workers_per_query_limit,
        })
    }
}
