//! Cluster memory management: the workers' pools, and the low-memory killer coordinators run on
//! the cluster-wide view the RMs aggregate from the pools' heartbeats.
//!
//! - [`pool`]: one worker's pool (pure): FIFO reservations that grow, per-node query limit,
//!   blocked flag;
//! - [`killer`]: which query to kill when the cluster is out of memory (pure), with Presto's
//!   per-coordinator behaviour and fireball's coordinated one.

pub mod killer;
pub mod pool;
