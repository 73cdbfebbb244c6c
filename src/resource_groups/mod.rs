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
//! # Where this differs from Presto's code (each on purpose)
//! - A group is in its parent's eligible set exactly when it can start a query. Presto leaves a
//!   blocked group that still has queued queries in the set, which can end a scheduling pass
//!   early; the documented invariant ("must return true when internalStartNext is called") is
//!   kept here instead.
//! - `query_priority` is strict across nested groups: a group ranks by the best priority queued
//!   anywhere below it (Presto ranks groups that have sub-groups at priority 0).
//! - `weighted` draws queued queries by lottery on `query_priority`, as documented (Presto's
//!   tiered queue ends up polling them in hash order). Its soft-limit rule uses two tiers
//!   instead of `Integer.MAX_VALUE × weight` tickets: the same outcome except with
//!   probability below 1e-9. As in Presto, the soft limit matters only under `weighted`.
//! - `weighted_fair` reads running counts when it picks, not when the group was enqueued.
//! - `submit` refuses a query that would push a queue past `maxQueued`; Presto queues it
//!   anyway when the group could run but its leaf still has a queue.
//! - The cpu-penalised limit never exceeds the configured hard limit (Presto's "at least one"
//!   could exceed a limit of 0). A `.` in a variable's value becomes `_` (ids are dotted).
//! - Configuration mistakes Presto reports at a group's first query (a selector naming no
//!   group, a policy contradicting a `query_priority` parent) are load errors here.
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
