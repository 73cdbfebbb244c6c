//! The query manager's vocabulary: what it is configured with, the inputs the shell feeds it and
//! the effects it returns. Types only; the decisions are in the parent module.

use crate::config::NodeConfig;
use crate::protocol::{QueryFailure, SessionContext};
use crate::sql::ParsedStatement;
use crate::wire::ClusterView;

/// The properties the manager decides with (Presto's names in the comments).
#[derive(Clone, Debug)]
pub struct ManagerConfig {
    pub node_id: String,
    /// `query.max-memory`
    pub query_max_memory_bytes: u64,
    /// `query.max-total-memory`
    pub query_max_total_memory_bytes: u64,
    /// `query.client.timeout`
    pub query_client_timeout_ms: u64,
    /// `query.max-history`
    pub query_max_history: usize,
    /// `query.min-expire-age`
    pub query_min_expire_age_ms: u64,
}

impl ManagerConfig {
    pub fn from_node(config: &NodeConfig) -> ManagerConfig {
        ManagerConfig {
            node_id: config.node_id.clone(),
            query_max_memory_bytes: config.query_max_memory_bytes,
            query_max_total_memory_bytes: config.query_max_total_memory_bytes,
            query_client_timeout_ms: config.query_client_timeout_ms,
            query_max_history: config.query_max_history as usize,
            query_min_expire_age_ms: config.query_min_expire_age_ms,
        }
    }
}

/// A `POST /v1/statement`, already parsed (parsing is CPU work the shell does outside the lock).
#[derive(Debug)]
pub struct Submission {
    pub session: SessionContext,
    pub sql: String,
    pub parsed: Result<ParsedStatement, QueryFailure>,
    /// The random part of every URI handed to the client (drawn by the shell's seeded RNG).
    pub slug: String,
    pub wall_ms: u64,
}

#[derive(Debug)]
pub enum Input {
    Submit(Submission),
    /// Rows a task produced (already in the plan's column order); `task_done` when it was the
    /// task's last batch.
    TaskOutput { query_id: String, rows: Vec<Vec<serde_json::Value>>, task_done: bool },
    /// A SQL leaf task was created on `node_id` (`done: false`), or its output was all read.
    LeafTask { query_id: String, task_id: String, node_id: String, done: bool },
    /// The SQL engine planned the query: its result columns (before any of its rows).
    Columns { query_id: String, columns: Vec<crate::protocol::Column> },
    /// What one task holds now, as its worker reported it.
    TaskMemory { query_id: String, task_index: u32, bytes: u64 },
    /// The execution driver returned: every task's rows are in, or it failed.
    ExecutionEnded { query_id: String, outcome: Result<(), QueryFailure> },
    /// The client cancelled (`DELETE` on its statement URI or `/v1/query/{id}`).
    Cancel { query_id: String },
    /// An administrator killed or preempted the query (`PUT /v1/query/{id}/killed|preempted`).
    Kill { query_id: String, failure: QueryFailure },
    /// A fresh cluster view from an RM; workers and memory are in it when `with_nodes`.
    ClusterView { view: ClusterView, with_nodes: bool },
    /// The housekeeping timer (every second).
    Tick,
    /// From now on new queries are refused; admitted ones carry on.
    BeginShutdown,
}

/// What `PUT /v1/query/{id}/killed` did (Presto's answers: 200, 409, 410).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KillOutcome {
    Killed,
    AlreadyDone,
    NotFound,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// The id the client gets for a [`Input::Submit`]: exactly one per submission, refused or not.
    Accepted { query_id: String },
    /// The query was admitted: run it (spawn its execution driver).
    Execute { query_id: String, group: String },
    /// The query reached a final state (`error_name` is `None` when it finished).
    Ended { query_id: String, group: String, error_name: Option<&'static str> },
    /// Queries changed state: send the query heartbeat now rather than at the next interval
    /// (other coordinators' view of a group's running count depends on it). At most one per input.
    HeartbeatDue,
    /// The answer to [`Input::Kill`].
    KillResult(KillOutcome),
}

/// Which page path a client asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PagePath {
    Queued,
    Executing,
}

/// What a graceful shutdown still waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DrainProgress {
    /// Queries queued or running.
    pub active: usize,
    /// Of the queries that were open when the drain began, those whose client has not read the
    /// last page yet (a cancelled or abandoned one will not come back for it, so it does not count).
    pub unread: usize,
}
