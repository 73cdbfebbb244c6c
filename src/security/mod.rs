//! Who may call a node, and what they may do. [`internal`]: nodes authenticate each other with
//! tokens signed by the cluster's shared secret ([`jwt`]). [`access`]: which user may run, see and
//! kill which queries, and read which catalogs.

pub mod access;
pub mod internal;
pub mod jwt;
