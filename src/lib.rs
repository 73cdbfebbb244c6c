//! fireball: a SQL query cluster with a disaggregated coordinator, simulation-first.
//!
//! # Layout
//! One folder per concern, so the layout shows the architecture. Listed from the bottom up: each
//! module imports only modules above it in this list, and only [`node`] imports the roles.
//! `ci/check-module-cycles` (in `ci/test`) keeps the rule that matters most: no two top-level
//! modules import each other, directly or through others. Infrastructure never imports a role.
//!
//! - [`runtime`]: the seam — the only module that knows fireball runs both on tokio and on madsim
//!   (HTTP server and client, clock, spawning, randomness, simulation hooks). Imports nothing.
//! - [`config`]: Presto-style `etc/` properties with Presto's names and defaults; the node
//!   [`config::Role`], the low-memory killer's settings ([`config::low_memory_killer`]) and the
//!   build's [`config::VERSION`].
//! - [`wire`]: the messages nodes send each other.
//! - [`query_id`]: query ids and the coordinator suffix in each, shared by coordinators (which
//!   make them) and RMs (which find a query's owner by them).
//! - [`protocol`]: the Presto client protocol (headers, result JSON, error codes).
//! - [`sql`]: parsing with sqlparser; the synthetic workload statement.
//! - [`resource_groups`]: Presto's resource groups: the spec, selectors and admission (pure).
//! - [`memory`]: worker memory pools and the low-memory killer (pure).
//! - [`discovery`]: the replicated discovery store and the node-side announcer.
//! - [`metrics`]: per-node Prometheus metrics at `/metrics`; the router reads role state only
//!   through a closure `node` hands it.
//! - [`security`]: internal authentication (tokens signed with the shared secret, the middleware
//!   that checks them on internal endpoints), client passwords over HTTPS, and the access rules
//!   (who may see, kill and run which queries).
//! - [`strict`]: the lease protocol of strict admission (issue 14; pure, not wired in yet).
//! - [`context`]: what every role is built from (config, clock, client, metrics, rng).
//! - [`snapshot_sender`]: sending the newest snapshot (heartbeats, replication) to every RM, one
//!   latest-value mailbox per RM.
//! - [`rest`]: the cluster REST API (Presto paths), proxying between coordinators and RMs, and
//!   [`rest::gather`] (one question to many nodes, bounded concurrency).
//! - [`console`]: the web console at `/ui/` (embedded HTML, JavaScript and CSS).
//! - [`resource_manager`]: aggregates heartbeats into the cluster view; replicates discovery.
//! - [`coordinator`]: the query manager (every decision about the coordinator's queries), its
//!   shell, the execution driver and the client protocol endpoints.
//! - [`worker`]: the task table, the executor interface engines plug into, the synthetic engine.
//! - [`node`]: starting any role from its config; `/v1/info` and the node lifecycle.
//! - [`local`]: `fireball local`, a whole cluster on loopback.
//!
//! Decisions live in pure structs that take `now_ms` and return what to do
//! ([`resource_groups::ResourceGroupManager`], [`resource_manager::cluster_state::ClusterState`],
//! [`discovery::DiscoveryStore`], [`memory::pool::MemoryPool`], [`memory::killer::LowMemoryKiller`],
//! [`coordinator::manager::QueryManager`] with its [`coordinator::query::Query`]s,
//! [`worker::tasks::TaskTable`]); async drivers around them stay thin. Each checks its invariants
//! after every input through [`runtime::sim_hooks::check_invariants`].

#[cfg(not(madsim))]
pub mod cli;
pub mod config;
pub mod console;
pub mod context;
pub mod coordinator;
pub mod discovery;
#[cfg(test)]
mod fuzz_tests;
#[doc(hidden)]
pub mod fuzzing;
#[cfg(not(madsim))]
pub mod engine;
pub mod memory;
pub mod local;
pub mod metrics;
pub mod node;
pub mod protocol;
pub mod query_id;
pub mod rest;
pub mod resource_groups;
pub mod resource_manager;
pub mod runtime;
pub mod security;
pub mod snapshot_sender;
pub mod sql;
pub mod strict;
pub mod wire;
pub mod worker;
