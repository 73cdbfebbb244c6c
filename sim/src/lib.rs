//! Deterministic simulation of a fireball cluster under madsim.
//!
//! The nodes are the production nodes: [`cluster::SimCluster`] builds each node's config with the
//! same [`fireball::local::ClusterLayout`] as `fireball local` and runs it with the same
//! [`fireball::node::run`], on its own simulated host (shutdown included). Only the clock, the network and the task
//! scheduler are madsim's. Everything here is only compiled with `--cfg madsim`.

pub mod entry;
pub mod memory_oracle;
pub mod oracle;
pub mod plan;
pub mod scenario;
pub mod shutdown_oracle;
#[cfg(madsim)]
pub mod cluster;
#[cfg(madsim)]
pub mod explore;
#[cfg(madsim)]
pub mod faults;
#[cfg(madsim)]
pub mod report;
#[cfg(madsim)]
pub mod run;
#[cfg(madsim)]
pub mod timeline;
#[cfg(madsim)]
pub mod trace;
