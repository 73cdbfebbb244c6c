//! fireball: a SQL query cluster with a disaggregated coordinator, simulation-first.
//!
//! # Layout
//! One folder per concern, so the layout shows the architecture:
//!
//! - [`runtime`]: the seam — the only module that knows fireball runs both on tokio and on madsim
//!   (HTTP server and client, clock, spawning, randomness, simulation hooks).
//! - [`config`]: Presto-style `etc/` properties with Presto's names and defaults.
//! - [`context`]: what every role is built from (config, clock, client, metrics, rng).
//! - [`protocol`]: the Presto client protocol (headers, result JSON, error codes).
//! - [`sql`]: parsing with sqlparser; the synthetic workload statement.
//! - [`wire`]: the messages nodes send each other.
//! - [`discovery`]: the replicated discovery store and the node-side announcer.
//! - [`resource_manager`]: aggregates heartbeats into the cluster view; replicates discovery.
//! - [`coordinator`]: admission, query lifecycle, scheduling, the client protocol endpoints.
//! - [`worker`]: tasks and the memory pool.
//! - [`node`]: starting any role from its config; `/v1/info` and the node lifecycle.
//! - [`rest`]: the cluster REST API (Presto paths) and proxying between coordinators and RMs.
//! - [`metrics`]: per-node Prometheus metrics at `/metrics`.
//! - [`console`]: the web console at `/ui/` (embedded HTML, JavaScript and CSS).
//! - [`memory`]: worker memory pools and the low-memory killer.
//! - [`local`]: `fireball local`, a whole cluster on loopback.
//!
//! Decisions live in pure structs that take `now_ms` and return what to do
//! ([`resource_groups::ResourceGroupManager`], [`resource_manager::cluster_state::ClusterState`],
//! [`discovery::DiscoveryStore`], [`memory::pool::MemoryPool`], [`memory::killer::LowMemoryKiller`],
//! [`coordinator::query::Query`]); async drivers around them stay thin.

pub mod config;
pub mod console;
pub mod context;
pub mod coordinator;
pub mod discovery;
pub mod memory;
pub mod local;
pub mod metrics;
pub mod node;
pub mod protocol;
pub mod rest;
pub mod resource_groups;
pub mod resource_manager;
pub mod runtime;
pub mod sql;
pub mod wire;
pub mod worker;
