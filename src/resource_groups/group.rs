//! One resource group: its resolved configuration, its queued and running queries, and the
//! sub-groups that are ready to start one (Presto's `InternalResourceGroup` fields).

use std::collections::{BTreeMap, BTreeSet};

use super::queues::{OrderedQueue, Rng, WeightedSampler};
use super::spec::{GroupSpec, MemoryLimit, PerQueryLimits, SchedulingPolicy};

pub(crate) type GroupIndex = u32;

/// A group's configuration, resolved from its spec (Presto's `configureGroup`).
#[derive(Clone, Debug)]
pub(crate) struct GroupConfig {
    pub(crate) max_queued: u32,
    pub(crate) hard_concurrency_limit: u32,
    /// Defaults to the hard limit, as Presto's configuration manager sets it.
    pub(crate) soft_concurrency_limit: u32,
    pub(crate) soft_memory_limit: MemoryLimit,
    pub(crate) policy: SchedulingPolicy,
    pub(crate) weight: u32,
    pub(crate) per_query_limits: PerQueryLimits,
    pub(crate) workers_per_query_limit: u32,
    /// Presto: setting only a hard cpu limit also lowers the soft one to it.
    pub(crate) soft_cpu_limit_ms: Option<u64>,
    pub(crate) hard_cpu_limit_ms: Option<u64>,
    /// Quota regained per whole second; `u64::MAX` (usage forgotten every second) without limits.
    pub(crate) cpu_quota_ms_per_second: u64,
}

impl GroupConfig {
    pub(crate) fn from_spec(
        spec: &GroupSpec,
        parent_policy: Option<SchedulingPolicy>,
        cpu_quota_period_ms: Option<u64>,
    ) -> Self {
        let forced = parent_policy.filter(|policy| *policy == SchedulingPolicy::QueryPriority);
        let cpu_limit_ms = spec.hard_cpu_limit_ms.or(spec.soft_cpu_limit_ms);
        let cpu_quota_ms_per_second = match (cpu_limit_ms, cpu_quota_period_ms) {
            (Some(limit_ms), Some(period_ms)) => ((1000.0 * limit_ms as f64 / period_ms as f64) as u64).max(1),
            _ => u64::MAX,
        };
        GroupConfig {
            max_queued: spec.max_queued,
            hard_concurrency_limit: spec.hard_concurrency_limit,
            soft_concurrency_limit: spec.soft_concurrency_limit.unwrap_or(spec.hard_concurrency_limit),
            soft_memory_limit: spec.soft_memory_limit,
            policy: spec.scheduling_policy.or(forced).unwrap_or(SchedulingPolicy::Fair),
            weight: spec.scheduling_weight.unwrap_or(1),
            per_query_limits: spec.per_query_limits,
            workers_per_query_limit: spec.workers_per_query_limit,
            soft_cpu_limit_ms: spec.soft_cpu_limit_ms.or(spec.hard_cpu_limit_ms),
            hard_cpu_limit_ms: spec.hard_cpu_limit_ms,
            cpu_quota_ms_per_second,
        }
    }
}

/// What the RM reported for this group from every other coordinator.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RemoteCounts {
    pub(crate) running: u32,
    pub(crate) queued: u32,
    pub(crate) descendant_running: u32,
    pub(crate) descendant_queued: u32,
    /// Includes the group's descendants (the RM adds a query's memory to every ancestor).
    pub(crate) memory_bytes: u64,
}

/// What a new group is made from: where its spec is, its configuration, its remote counts.
#[derive(Clone, Debug)]
pub(crate) struct NewGroup {
    pub(crate) spec_path: Vec<usize>,
    pub(crate) is_leaf_spec: bool,
    pub(crate) config: GroupConfig,
    pub(crate) remote: RemoteCounts,
}

/// Queued queries of a leaf, ordered by the group's policy.
#[derive(Clone, Debug)]
pub(crate) enum QueryQueue {
    /// fair: first in, first out; `query_priority` is ignored.
    Fifo(OrderedQueue<String>),
    /// weighted: a lottery with `query_priority` tickets.
    Lottery(WeightedSampler<String>),
    /// weighted_fair and query_priority: highest priority first, FIFO among equals.
    Priority(OrderedQueue<String>),
}

impl QueryQueue {
    pub(crate) fn for_policy(policy: SchedulingPolicy) -> Self {
        match policy {
            SchedulingPolicy::Fair => QueryQueue::Fifo(OrderedQueue::new()),
            SchedulingPolicy::Weighted => QueryQueue::Lottery(WeightedSampler::new()),
            SchedulingPolicy::WeightedFair | SchedulingPolicy::QueryPriority => {
                QueryQueue::Priority(OrderedQueue::new())
            }
        }
    }

    pub(crate) fn push(&mut self, query_id: String, priority: i32) {
        let added = match self {
            QueryQueue::Fifo(queue) => queue.add_or_update(query_id, 0),
            // Presto requires positive tickets; a priority below 1 still gets one.
            QueryQueue::Lottery(sampler) => sampler.insert(query_id, u64::try_from(priority).unwrap_or(0).max(1)),
            QueryQueue::Priority(queue) => queue.add_or_update(query_id, i64::from(priority)),
        };
        debug_assert!(added, "a query is queued once");
    }

    pub(crate) fn poll(&mut self, rng: &mut Rng) -> Option<String> {
        match self {
            QueryQueue::Fifo(queue) | QueryQueue::Priority(queue) => queue.pop_first(),
            QueryQueue::Lottery(sampler) => {
                let winner = sampler.sample(rng)?;
                sampler.remove(&winner);
                Some(winner)
            }
        }
    }

    pub(crate) fn remove(&mut self, query_id: &str) -> bool {
        let key = query_id.to_string();
        match self {
            QueryQueue::Fifo(queue) | QueryQueue::Priority(queue) => queue.remove(&key),
            QueryQueue::Lottery(sampler) => sampler.remove(&key),
        }
    }

    pub(crate) fn contains(&self, query_id: &str) -> bool {
        let key = query_id.to_string();
        match self {
            QueryQueue::Fifo(queue) | QueryQueue::Priority(queue) => queue.contains(&key),
            QueryQueue::Lottery(sampler) => sampler.contains(&key),
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            QueryQueue::Fifo(queue) | QueryQueue::Priority(queue) => queue.len(),
            QueryQueue::Lottery(sampler) => sampler.len(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The priority that would start next (query_priority scheduling only).
    pub(crate) fn highest_priority(&self) -> Option<i64> {
        match self {
            QueryQueue::Priority(queue) => queue.first_priority(),
            QueryQueue::Fifo(_) | QueryQueue::Lottery(_) => None,
        }
    }
}

/// Sub-groups that can start a query now, in the order the group's policy picks them.
#[derive(Clone, Debug)]
pub(crate) enum EligibleSet {
    /// fair: sub-groups take turns (a group that started goes to the back).
    Fifo(OrderedQueue<GroupIndex>),
    /// weighted: a lottery by `schedulingWeight`, drawn among the sub-groups below their soft
    /// concurrency limit when there are any (Presto's `Integer.MAX_VALUE * weight` tickets).
    Lottery { below_soft_limit: WeightedSampler<GroupIndex>, at_soft_limit: WeightedSampler<GroupIndex> },
    /// weighted_fair: least running relative to weight; the tickets break ties.
    WeightedFair(OrderedQueue<GroupIndex>),
    /// query_priority: the sub-group holding the highest queued priority.
    Priority(OrderedQueue<GroupIndex>),
}

impl EligibleSet {
    pub(crate) fn for_policy(policy: SchedulingPolicy) -> Self {
        match policy {
            SchedulingPolicy::Fair => EligibleSet::Fifo(OrderedQueue::new()),
            SchedulingPolicy::Weighted => {
                EligibleSet::Lottery { below_soft_limit: WeightedSampler::new(), at_soft_limit: WeightedSampler::new() }
            }
            SchedulingPolicy::WeightedFair => EligibleSet::WeightedFair(OrderedQueue::new()),
            SchedulingPolicy::QueryPriority => EligibleSet::Priority(OrderedQueue::new()),
        }
    }

    pub(crate) fn add_or_update(&mut self, child: GroupIndex, weight: u32, below_soft_limit: bool, priority: i64) {
        match self {
            EligibleSet::Fifo(queue) | EligibleSet::WeightedFair(queue) => {
                queue.add_or_update(child, 0);
            }
            EligibleSet::Priority(queue) => {
                queue.add_or_update(child, priority);
            }
            EligibleSet::Lottery { below_soft_limit: below, at_soft_limit: at } => {
                let (target, other) = if below_soft_limit { (below, at) } else { (at, below) };
                other.remove(&child);
                target.insert(child, u64::from(weight));
            }
        }
    }

    pub(crate) fn remove(&mut self, child: GroupIndex) -> bool {
        match self {
            EligibleSet::Fifo(queue) | EligibleSet::WeightedFair(queue) | EligibleSet::Priority(queue) => {
                queue.remove(&child)
            }
            EligibleSet::Lottery { below_soft_limit, at_soft_limit } => {
                below_soft_limit.remove(&child) | at_soft_limit.remove(&child)
            }
        }
    }

    pub(crate) fn contains(&self, child: GroupIndex) -> bool {
        match self {
            EligibleSet::Fifo(queue) | EligibleSet::WeightedFair(queue) | EligibleSet::Priority(queue) => {
                queue.contains(&child)
            }
            EligibleSet::Lottery { below_soft_limit, at_soft_limit } => {
                below_soft_limit.contains(&child) || at_soft_limit.contains(&child)
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            EligibleSet::Fifo(queue) | EligibleSet::WeightedFair(queue) | EligibleSet::Priority(queue) => queue.len(),
            EligibleSet::Lottery { below_soft_limit, at_soft_limit } => below_soft_limit.len() + at_soft_limit.len(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn highest_priority(&self) -> Option<i64> {
        match self {
            EligibleSet::Priority(queue) => queue.first_priority(),
            _ => None,
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Group {
    /// Dotted id, `global.adhoc.alice`.
    pub(crate) id: String,
    pub(crate) parent: Option<GroupIndex>,
    pub(crate) children: BTreeMap<String, GroupIndex>,
    /// Where the spec is: `rootGroups[spec_path[0]].subGroups[spec_path[1]]...`.
    pub(crate) spec_path: Vec<usize>,
    /// The spec has no sub-groups, so queries may be submitted here.
    pub(crate) is_leaf_spec: bool,
    pub(crate) config: GroupConfig,
    pub(crate) queued: QueryQueue,
    pub(crate) running: BTreeSet<String>,
    pub(crate) descendant_running: u32,
    pub(crate) descendant_queued: u32,
    pub(crate) eligible: EligibleSet,
    /// User memory of this coordinator's running queries in this group and below.
    pub(crate) local_memory_bytes: u64,
    pub(crate) remote: RemoteCounts,
    pub(crate) cpu_usage_ms: u64,
    /// Stamped when a query starts here or below; creation time at first (Presto).
    pub(crate) last_start_ms: u64,
}

impl Group {
    pub(crate) fn local_running(&self) -> u32 {
        self.running.len() as u32 + self.descendant_running
    }

    pub(crate) fn local_queued(&self) -> u32 {
        self.queued.len() as u32 + self.descendant_queued
    }

    /// Presto's `getAggregatedRunningQueries`: this coordinator's plus the RM's view of the rest.
    pub(crate) fn total_running(&self) -> u32 {
        self.local_running().saturating_add(self.remote.running).saturating_add(self.remote.descendant_running)
    }

    pub(crate) fn total_queued(&self) -> u32 {
        self.local_queued().saturating_add(self.remote.queued).saturating_add(self.remote.descendant_queued)
    }

    pub(crate) fn total_memory_bytes(&self) -> u64 {
        self.local_memory_bytes.saturating_add(self.remote.memory_bytes)
    }
}
