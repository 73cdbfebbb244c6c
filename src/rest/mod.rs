//! The cluster REST API shared by coordinators and resource managers (Presto's paths and JSON):
//!
//! - [`proxy`]: forwarding a request to an RM or to a query's owner, bounded and loop-free;
//! - [`cluster_json`]: the JSON of `/v1/cluster*`, `/v1/query` and the RM summaries (pure);
//! - [`nodes`]: `/v1/node` and `/v1/node/failed` from what discovery holds (pure);
//! - [`identity`]: whom a request speaks for, for the access rules;
//! - [`gather`]: asking many nodes the same question at once and gathering the answers, with
//!   bounded concurrency and a timeout.
//!
//! The handlers live with their role (`coordinator::query_api`, `resource_manager::rest`), next to
//! the state they read; `/v1/info*` is in [`crate::node`], on every node.

pub mod cluster_json;
pub mod gather;
pub mod identity;
pub mod nodes;
pub mod proxy;
