//! Who may call a node, and what they may do. [`internal`]: nodes authenticate each other with
//! tokens signed by the cluster's shared secret ([`jwt`]). [`client`]: users authenticate with a
//! password over HTTPS ([`password`]; production builds only). [`access`]: which user may run, see
//! and kill which queries, and read which catalogs.

pub mod access;
#[cfg(not(madsim))]
pub mod client;
pub mod internal;
pub mod jwt;
#[cfg(not(madsim))]
pub mod password;
