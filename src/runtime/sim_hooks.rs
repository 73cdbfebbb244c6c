//! Simulation-only hooks: the message-level fault filter and the oracle's event recorder.
//!
//! Both are consulted by node code unconditionally, but in a production build they are empty inline
//! functions: no state, no allocation, nothing recorded. Under madsim the harness installs a filter
//! and a recorder per simulation. madsim runs a whole simulation on one OS thread, so thread-locals
//! give each simulation (and each seed run in one process) its own hooks.

use serde::{Deserialize, Serialize};

/// What an inter-node request is, so that faults can target one kind of message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// A node announcing itself to discovery on an RM.
    Announce,
    /// RM to RM discovery replication.
    DiscoveryReplication,
    /// Worker (or coordinator) node heartbeat to an RM.
    NodeHeartbeat,
    /// Coordinator's batched query heartbeat to an RM.
    QueryHeartbeat,
    /// Coordinator polling an RM for the cluster view.
    ClusterView,
    /// Coordinator creating a task on a worker.
    TaskCreate,
    /// Coordinator polling a task's status (also keeps the task alive).
    TaskStatus,
    /// Coordinator fetching a task's rows.
    TaskResults,
    /// Coordinator cancelling a task.
    TaskCancel,
    /// A client of the Presto protocol (used by the simulated clients).
    Client,
    /// Anything else (REST proxying, admin calls).
    Other,
}

impl MessageKind {
    pub const ALL: [MessageKind; 11] = [
        MessageKind::Announce,
        MessageKind::DiscoveryReplication,
        MessageKind::NodeHeartbeat,
        MessageKind::QueryHeartbeat,
        MessageKind::ClusterView,
        MessageKind::TaskCreate,
        MessageKind::TaskStatus,
        MessageKind::TaskResults,
        MessageKind::TaskCancel,
        MessageKind::Client,
        MessageKind::Other,
    ];

    pub fn name(self) -> &'static str {
        match self {
            MessageKind::Announce => "announce",
            MessageKind::DiscoveryReplication => "discovery_replication",
            MessageKind::NodeHeartbeat => "node_heartbeat",
            MessageKind::QueryHeartbeat => "query_heartbeat",
            MessageKind::ClusterView => "cluster_view",
            MessageKind::TaskCreate => "task_create",
            MessageKind::TaskStatus => "task_status",
            MessageKind::TaskResults => "task_results",
            MessageKind::TaskCancel => "task_cancel",
            MessageKind::Client => "client",
            MessageKind::Other => "other",
        }
    }

    pub fn parse(name: &str) -> Option<MessageKind> {
        MessageKind::ALL.into_iter().find(|kind| kind.name() == name)
    }
}

/// What the fault filter decides for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Deliver,
    /// The request is lost: the sender sees what it would see on a real network, a timeout.
    Drop,
    /// The request is held back this long before it is sent.
    Delay { delay_ms: u64 },
}

/// Decides the fate of each request by sender node, receiver address and kind.
pub trait FaultFilter {
    fn verdict(&self, from_node: &str, to_authority: &str, kind: MessageKind) -> Verdict;
}

/// What the oracle is told. Recorded by coordinators and workers at the moment a fact becomes true.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A client was handed this query id. `queue_limits` is `maxQueued` of the query's group and
    /// each ancestor (leaf first), so the oracle can check queue bounds cluster-wide.
    QueryCreated { query_id: String, coordinator: String, user: String, group: String, queue_limits: Vec<(String, u32)> },
    /// The coordinator admitted the query: from now on it counts as running in `group` and its
    /// ancestors. `limits` is the hard concurrency limit of each (leaf first).
    QueryStarted { query_id: String, coordinator: String, group: String, limits: Vec<(String, u32)> },
    /// The query reached a final state (`FINISHED` or `FAILED`, with Presto's error name).
    QueryFinished { query_id: String, coordinator: String, state: String, error_name: Option<String> },
    /// A worker began executing a task.
    TaskStarted { task_id: String, query_id: String, worker: String },
    /// A coordinator took output of this task attempt into its query (its rows, or its first
    /// page). The oracle checks that no query took output from two attempts of one task.
    TaskOutputConsumed { query_id: String, task_id: String },
    /// A worker stopped a task (finished, failed, cancelled or abandoned).
    TaskEnded { task_id: String, query_id: String, worker: String, state: String },
    /// A worker's pool changed for this task: it now holds `task_bytes` (0 once released), and
    /// the node is `blocked` when any task waits for memory. The oracle's true memory picture.
    TaskMemory { task_id: String, query_id: String, worker: String, task_bytes: u64, blocked: bool },
    /// A pure core found one of its invariants broken (see [`check_invariants`]). Any such event
    /// fails the run.
    InvariantViolated { core: String, message: String },
}

/// Reports the outcome of a core's `check_invariants`. Cores call it after every input they
/// apply. In simulation a broken invariant becomes an [`Event::InvariantViolated`] that the oracle
/// turns into a failed run (with the seed to replay it); in tests and debug builds it also panics
/// at the spot; in a release build it is logged, because a production node should degrade, not die.
pub fn check_invariants(core: &'static str, result: Result<(), String>) {
    if let Err(message) = result {
        tracing::error!(core, %message, "invariant violated");
        record(|| Event::InvariantViolated { core: core.to_string(), message: message.clone() });
        if !cfg!(madsim) {
            debug_assert!(false, "{core}: invariant violated: {message}");
        }
    }
}

#[cfg(madsim)]
mod imp {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    /// The oracle's sink for this simulation's events.
    type Recorder = Box<dyn FnMut(Event)>;

    thread_local! {
        static FILTER: RefCell<Option<Rc<dyn FaultFilter>>> = const { RefCell::new(None) };
        static RECORDER: RefCell<Option<Recorder>> = const { RefCell::new(None) };
    }

    pub fn install_fault_filter(filter: Rc<dyn FaultFilter>) {
        FILTER.with(|slot| *slot.borrow_mut() = Some(filter));
    }

    pub fn install_recorder(recorder: Recorder) {
        RECORDER.with(|slot| *slot.borrow_mut() = Some(recorder));
    }

    /// Removes both hooks (between simulations run on one thread).
    pub fn clear() {
        FILTER.with(|slot| *slot.borrow_mut() = None);
        RECORDER.with(|slot| *slot.borrow_mut() = None);
    }

    pub fn message_verdict(from_node: &str, to_authority: &str, kind: MessageKind) -> Verdict {
        // Clone the Rc out so the filter may itself be re-entered without a RefCell conflict.
        let filter = FILTER.with(|slot| slot.borrow().clone());
        match filter {
            Some(filter) => filter.verdict(from_node, to_authority, kind),
            None => Verdict::Deliver,
        }
    }

    pub fn record(make: impl FnOnce() -> Event) {
        RECORDER.with(|slot| {
            if let Ok(mut guard) = slot.try_borrow_mut() {
                if let Some(recorder) = guard.as_mut() {
                    recorder(make());
                }
            }
        });
    }
}

#[cfg(not(madsim))]
mod imp {
    use super::*;

    #[inline(always)]
    pub fn message_verdict(_from_node: &str, _to_authority: &str, _kind: MessageKind) -> Verdict {
        Verdict::Deliver
    }

    #[inline(always)]
    pub fn record(_make: impl FnOnce() -> Event) {}
}

pub use imp::*;
