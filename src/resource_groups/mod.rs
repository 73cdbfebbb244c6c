//! Presto's resource groups, for a coordinator that shares cluster-wide limits with others
//! through resource managers.
//!
//! # Layout
//! - [`spec`]: `resource-groups.json` (Presto's file manager format), validated at load with
//!   errors that name the field path.
//! - [`template`]: group-name templates (`${USER}`, `bi-${toolname}`).
//! - `selector`: which group a query goes to (first matching selector).
//! - `queues`: the seeded RNG, FIFO/priority queue and weighted lottery the policies draw from.
//! - `group`: one group's configuration and live state.
//! - `tree`: admission and scheduling (Presto's `InternalResourceGroup`), local + remote merge,
//!   the freshness gate; `invariants`: the full consistency check.
//! - `manager`: [`ResourceGroupManager`], the API the coordinator calls; `info`: what it reports.
//!
//! # Semantics (Presto's, generalised to many coordinators)
//! Every query sits in one leaf group and counts against that group and all its ancestors. A
//! query starts at once if every ancestor `canRunMore` and its leaf has no queue, queues if every
//! ancestor `canQueueMore`, and is refused with `QUERY_QUEUE_FULL` otherwise. `canRunMore`
//! compares **total** running (this coordinator's, plus the RM's counts for every other
//! coordinator) with the hard limit (lowered by cpu usage past `softCpuLimit`), and checks
//! memory (local + remote) against `softMemoryLimit` and `running × workersPerQueryLimit`
//! against the active workers.
//!
//! The RM's counts are stale between polls, so two coordinators can both admit into the last
//! slot. Presto's mitigation, reproduced exactly, is the **freshness gate**: once a group's total
//! running reaches `concurrency_threshold × hard limit`, it may start only if a successful RM
//! refresh completed after its last start (`last_refresh_ms > last_start_ms`); starts stamp the
//! group and all its ancestors. At threshold 0 every start needs a fresh poll; if the RMs are
//! down, gated groups keep their queries queued rather than over-admit.
//!
//! # Purity
//! No I/O, no clock, no threads: `now_ms` is an argument, randomness comes only from the seed
//! given to [`ResourceGroupManager::new`], and all state lives in ordered maps, so the same
//! inputs give the same decisions (the simulator depends on this).

mod group;
mod info;
mod invariants;
mod json;
mod manager;
mod queues;
mod selector;
pub mod spec;
pub mod template;
mod tree;

#[cfg(test)]
mod tests;

pub use manager::ResourceGroupManager;
pub use selector::NO_MATCHING_SELECTOR;
pub use spec::{parse_resource_groups, ManagerSpec, PerQueryLimits, SchedulingPolicy};

/// Groups one coordinator creates from templates before refusing new ones (Presto never
/// forgets a group, so a stream of new user names must not grow the tree without bound).
pub const GROUPS_MAX: usize = 10_000;
/// Queries (queued + running) one manager holds.
pub const QUERIES_MAX: usize = 1_000_000;
/// Entries taken from one RM snapshot.
pub const REMOTE_GROUPS_MAX: usize = 100_000;

/// How admission treats the RM's stale counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdmissionPolicy {
    /// Presto's behaviour, freshness gate included.
    Presto,
    /// **Deliberately weakened**: identical, except it never waits for a fresh RM refresh, so it
    /// admits on stale counts and over-admits across coordinators. It exists only to prove that
    /// the simulation's oracle catches over-admission; never configure it for real use.
    Naive,
}

/// What the coordinator knows about a query when choosing its group.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SelectionContext {
    pub user: String,
    pub source: Option<String>,
    pub client_tags: Vec<String>,
    pub query_type: Option<crate::sql::QueryType>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubmitOutcome {
    /// Start it now.
    Started,
    /// Wait; [`ResourceGroupManager::start_eligible`] will start it.
    Queued,
    /// Fail with `QUERY_QUEUE_FULL` and this message (Presto's `Too many queued queries for "id"`).
    QueueFull(String),
    /// The group cannot take queries (not a leaf, no configuration, group cap reached, query id
    /// already known): fail with Presto's `INVALID_RESOURCE_GROUP` and this message.
    Invalid(String),
}
