//! Who may call a node. [`internal`]: nodes authenticate each other with tokens signed by the
//! cluster's shared secret ([`jwt`]).

pub mod internal;
pub mod jwt;
