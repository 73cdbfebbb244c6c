//! Discovery: who is in the cluster. Each RM holds a [`store::DiscoveryStore`]; nodes announce to
//! one RM and RMs replicate announcements to each other (multi-primary, last-expiry wins), so an
//! announcement made to any RM shows up on all of them and a restarted RM catches up.

pub mod announcer;
pub mod store;

pub use store::DiscoveryStore;
