//! The low-memory killer's settings: `query.low-memory-killer.policy`, `.scope` and `.delay`.
//!
//! The killer itself is [`crate::memory::killer`]; its settings live here, with the rest of the
//! configuration, so that `config` needs nothing from the modules it configures.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KillerPolicy {
    None,
    /// Largest total reservation across the cluster.
    TotalReservation,
    /// Largest reservation summed over blocked nodes only.
    TotalReservationOnBlockedNodes,
}

impl KillerPolicy {
    pub fn parse(text: &str) -> Option<KillerPolicy> {
        match text {
            "none" => Some(KillerPolicy::None),
            "total-reservation" => Some(KillerPolicy::TotalReservation),
            "total-reservation-on-blocked-nodes" => Some(KillerPolicy::TotalReservationOnBlockedNodes),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KillerScope {
    /// Presto: each coordinator kills among its own queries.
    Coordinator,
    /// One victim cluster-wide, killed by its owner.
    Cluster,
}

impl KillerScope {
    pub fn parse(text: &str) -> Option<KillerScope> {
        match text {
            "coordinator" => Some(KillerScope::Coordinator),
            "cluster" => Some(KillerScope::Cluster),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct KillerConfig {
    pub policy: KillerPolicy,
    pub scope: KillerScope,
    pub delay_ms: u64,
    /// Cluster scope: quiet time after the candidate changes (see the module comment).
    pub settle_ms: u64,
}
