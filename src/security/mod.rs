//! Who may call a node. [`internal`]: nodes authenticate each other with tokens signed by the
//! cluster's shared secret ([`jwt`]). [`client`]: users authenticate with a password over HTTPS
//! ([`password`]; production builds only).

#[cfg(not(madsim))]
pub mod client;
pub mod internal;
pub mod jwt;
#[cfg(not(madsim))]
pub mod password;
