//! Messages nodes send each other (all JSON over HTTP/1.1). One file so that the whole internal
//! protocol can be read in one sitting; the handlers and senders live with each role.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::config::Role;

/// Paths of the internal API.
pub mod paths {
    pub const ANNOUNCE: &str = "/v1/announcement";
    pub const REPLICATE: &str = "/v1/discovery/replicate";
    pub const SERVICE: &str = "/v1/service";
    pub const NODE_HEARTBEAT: &str = "/v1/resourcemanager/nodeHeartbeat";
    pub const QUERY_HEARTBEAT: &str = "/v1/resourcemanager/queryHeartbeat";
    pub const CLUSTER_VIEW: &str = "/v1/resourcemanager/clusterView";
    pub const TASK: &str = "/v1/task";
    /// `GET {TASK}/{id}/results/{buffer}/{token}`: one Arrow IPC page of a SQL task's output.
    pub const RESULTS_PAGE_COUNT_HEADER: &str = "x-fireball-page-count";
}

/// A node telling discovery it exists. Announcements expire unless repeated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announcement {
    pub node_id: String,
    pub role: Role,
    pub uri: String,
    pub environment: String,
    /// Absent from older announcements: a node that does not say is active.
    #[serde(default)]
    pub state: NodeState,
}

/// A node's own lifecycle state, as `GET /v1/info/state` reports it (Presto's `NodeState`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NodeState {
    #[default]
    Active,
    /// Finishing its work before it exits; takes nothing new.
    ShuttingDown,
}

impl NodeState {
    pub fn name(self) -> &'static str {
        match self {
            NodeState::Active => "ACTIVE",
            NodeState::ShuttingDown => "SHUTTING_DOWN",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRef {
    pub node_id: String,
    pub uri: String,
}

/// What an RM answers to an announcement: the RMs it knows, so nodes learn every RM from one.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct AnnounceResponse {
    pub resource_managers: Vec<NodeRef>,
}

/// One discovery entry as replicated between RMs. The remaining lifetime is relative, not an
/// absolute time, so that RMs with skewed clocks agree on when it expires.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicatedEntry {
    pub announcement: Announcement,
    pub remaining_ms: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReplicationBatch {
    pub from_node_id: String,
    pub entries: Vec<ReplicatedEntry>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryInfo {
    pub pool_bytes: u64,
    pub reserved_bytes: u64,
    /// Tasks are waiting for memory on this node.
    pub blocked: bool,
    pub query_reservations: BTreeMap<String, u64>,
}

#[cfg(test)]
impl MemoryInfo {
    /// A pool of `pool_bytes` holding `reservations` (query id, bytes), for tests.
    pub fn holding(pool_bytes: u64, blocked: bool, reservations: &[(&str, u64)]) -> MemoryInfo {
        MemoryInfo {
            pool_bytes,
            reserved_bytes: reservations.iter().map(|(_, bytes)| bytes).sum(),
            blocked,
            query_reservations: reservations.iter().map(|(query, bytes)| (query.to_string(), *bytes)).collect(),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuInfo {
    pub processors: u32,
    pub running_tasks: u32,
    pub blocked_tasks: u32,
}

/// A worker's periodic heartbeat, sent to every RM.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeHeartbeat {
    pub node_id: String,
    pub role: Role,
    pub uri: String,
    pub memory: MemoryInfo,
    pub cpu: CpuInfo,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum QueryState {
    Queued,
    Running,
    Finished,
    Failed,
}

impl QueryState {
    pub fn is_done(self) -> bool {
        matches!(self, QueryState::Finished | QueryState::Failed)
    }

    pub fn name(self) -> &'static str {
        match self {
            QueryState::Queued => "QUEUED",
            QueryState::Running => "RUNNING",
            QueryState::Finished => "FINISHED",
            QueryState::Failed => "FAILED",
        }
    }
}

/// What an RM knows about one query (Presto's `BasicQueryInfo`, trimmed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuerySummary {
    pub query_id: String,
    /// Resource group id, e.g. `global` or `adhoc.alice`.
    pub group: String,
    pub state: QueryState,
    pub user: String,
    pub source: Option<String>,
    /// The SQL text, truncated.
    pub query: String,
    pub memory_bytes: u64,
    pub created_wall_ms: u64,
    pub error_name: Option<String>,
}

/// A coordinator's batched query heartbeat: *all* its current queries in one message per RM.
/// The RM replaces what it knew about this coordinator with it, so a lost or reordered batch
/// costs nothing but staleness (out-of-order batches are recognised by `sequence`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QueryHeartbeat {
    pub coordinator_id: String,
    pub coordinator_uri: String,
    pub sequence: u64,
    pub queries: Vec<QuerySummary>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupCounts {
    pub group: String,
    pub running: u32,
    pub queued: u32,
    pub descendant_running: u32,
    pub descendant_queued: u32,
    pub memory_bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerView {
    pub node_id: String,
    pub uri: String,
    pub memory: MemoryInfo,
    pub cpu: CpuInfo,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterMemory {
    pub total_bytes: u64,
    pub reserved_bytes: u64,
    pub blocked_nodes: u32,
    pub nodes: u32,
    /// Bytes each query holds across the workers.
    #[serde(default)]
    pub query_reservations: BTreeMap<String, u64>,
    /// The query holding the most (ties: the smaller id), as Presto's `largestMemoryQuery`.
    #[serde(default)]
    pub largest_query: Option<String>,
    /// Queries the coordinators report running.
    #[serde(default)]
    pub running_queries: Vec<String>,
}

/// What a coordinator polls from one RM: everything it needs to admit and schedule.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ClusterView {
    pub resource_manager_id: String,
    pub resource_managers: Vec<NodeRef>,
    pub coordinators: Vec<NodeRef>,
    /// Per-group counts of every coordinator except the one asking.
    pub groups: Vec<GroupCounts>,
    pub workers: Vec<WorkerView>,
    pub memory: ClusterMemory,
    /// Queries killed for cluster out-of-memory whose memory some worker still reports (sent on
    /// every poll, not only with the nodes): a kill somewhere is still taking effect.
    #[serde(default)]
    pub pending_memory_kills: Vec<String>,
}

/// Create (idempotently) one task of a synthetic query on a worker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRequest {
    pub query_id: String,
    pub coordinator_id: String,
    pub task_index: u32,
    pub run_time_ms: u64,
    /// Reserved before the task starts.
    pub memory_bytes: u64,
    /// The task's reservation grows evenly to this over its run time (at least `memory_bytes`).
    #[serde(default)]
    pub peak_memory_bytes: u64,
    pub first_row: u64,
    pub row_count: u64,
    /// A SQL leaf task: scan one split and run the pushed-down columns and filters on it. Absent
    /// for synthetic tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fragment: Option<LeafFragment>,
}

/// What a SQL leaf task runs: one split of a connector's table, and the SQL over it (`FROM split`)
/// that carries the columns, filters and limit the coordinator's plan pushed into the scan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeafFragment {
    pub catalog: String,
    pub schema: String,
    pub table: String,
    /// `SIMPLIFIED` or `STANDARD` (the tpch connector's `tpch.column-naming`).
    pub column_naming: String,
    pub split: u32,
    pub splits: u32,
    pub sql: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskState {
    /// Waiting for memory.
    Blocked,
    Running,
    Finished,
    /// Ended by the worker with an error (e.g. the per-node memory limit); see `TaskStatus::error`.
    Failed,
    Canceled,
    /// Cancelled by the worker because its coordinator stopped polling.
    Abandoned,
}

impl TaskState {
    pub fn is_done(self) -> bool {
        matches!(self, TaskState::Finished | TaskState::Failed | TaskState::Canceled | TaskState::Abandoned)
    }

    pub fn name(self) -> &'static str {
        match self {
            TaskState::Blocked => "BLOCKED",
            TaskState::Running => "RUNNING",
            TaskState::Finished => "FINISHED",
            TaskState::Failed => "FAILED",
            TaskState::Canceled => "CANCELED",
            TaskState::Abandoned => "ABANDONED",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskStatus {
    pub task_id: String,
    pub worker_id: String,
    pub state: TaskState,
    /// What the task holds in its worker's pool now.
    pub memory_bytes: u64,
    /// Why a `Failed` task failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<TaskRejection>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TaskResults {
    pub task_id: String,
    pub rows: Vec<Vec<serde_json::Value>>,
}

/// Why a worker refused or failed a task (a refusal is sent with a 4xx status).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRejection {
    pub error_name: String,
    pub message: String,
}
