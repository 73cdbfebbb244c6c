//! The RM side of strict admission: which holder each slot is granted to, and until when.
//!
//! Invariants ([`SlotTable::check_invariants`]): every grant is busy for exactly as long as the
//! newest grant of it asked (`busy_until_ms ≤ granted_at_ms + T + m`, and `≥` that for the
//! newest grant); no grant was made during the quiet period or in the future.

use std::collections::BTreeMap;

use super::{LeaseConfig, LeaseReply, LeaseRequest, Refusal, Slot};

/// One RM's grants. Pure: the caller passes its monotonic `now_ms` into every call, and must
/// never pass a smaller one than before (asserted).
#[derive(Debug, Clone)]
pub struct SlotTable {
    config: LeaseConfig,
    /// No grants before this (own clock): the quiet period after a restart with empty state.
    quiet_until_ms: u64,
    grants: BTreeMap<Slot, Grant>,
    /// The largest `now_ms` seen: the clock must not go backwards.
    last_now_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Grant {
    holder: String,
    lease_id: u64,
    round: u64,
    /// When the newest round was granted (own clock).
    granted_at_ms: u64,
    /// Until when no other holder may be granted the slot: the latest `granted_at + duration + m`
    /// over all grants of this lease (a shorter later request never shortens an earlier promise).
    busy_until_ms: u64,
}

impl SlotTable {
    /// A table for an RM whose membership has *never* granted a lease (a brand new cluster, a
    /// test). An RM that may have granted before must use [`SlotTable::restarted`].
    pub fn new(config: LeaseConfig) -> SlotTable {
        if let Err(message) = config.validate() {
            panic!("unsafe lease config: {message}");
        }
        SlotTable { config, quiet_until_ms: 0, grants: BTreeMap::new(), last_now_ms: 0 }
    }

    /// A table for an RM that (re)started at `now_ms` with empty state: it grants nothing until
    /// `now_ms + T + m`, when every lease it may have granted before has expired everywhere.
    pub fn restarted(now_ms: u64, config: LeaseConfig) -> SlotTable {
        let mut table = SlotTable::new(config);
        table.quiet_until_ms = now_ms.saturating_add(config.rm_hold_ms());
        table.last_now_ms = now_ms;
        table
    }

    /// A table that skips [`LeaseConfig::validate`]: only for the model tests' broken variants.
    #[cfg(test)]
    pub(crate) fn new_unchecked(config: LeaseConfig, quiet_until_ms: u64, now_ms: u64) -> SlotTable {
        SlotTable { config, quiet_until_ms, grants: BTreeMap::new(), last_now_ms: now_ms }
    }

    pub fn config(&self) -> &LeaseConfig {
        &self.config
    }

    /// Until when this RM refuses everything (0 if it never had a quiet period).
    pub fn quiet_until_ms(&self) -> u64 {
        self.quiet_until_ms
    }

    /// Who holds `slot` here at `now_ms`, if anyone.
    pub fn holder_of(&self, now_ms: u64, slot: &Slot) -> Option<&str> {
        self.grants.get(slot).filter(|grant| now_ms < grant.busy_until_ms).map(|grant| grant.holder.as_str())
    }

    /// Answers one request. Grants are the only thing that can make a second holder, so every
    /// path that grants checks the quiet period and the current grant first.
    pub fn handle(&mut self, now_ms: u64, request: LeaseRequest) -> LeaseReply {
        assert!(now_ms >= self.last_now_ms, "monotonic clock went back: {now_ms} < {}", self.last_now_ms);
        self.last_now_ms = now_ms;
        // Expired grants are dropped as soon as any request comes, so the table stays as small
        // as the set of slots actually busy.
        self.grants.retain(|_, grant| now_ms < grant.busy_until_ms);
        let reply = match request {
            LeaseRequest::Acquire { slot, holder, lease_id, round, duration_ms } => {
                self.acquire(now_ms, slot, holder, lease_id, round, duration_ms)
            }
            LeaseRequest::Release { slot, holder, lease_id } => {
                let ours = self.grants.get(&slot).is_some_and(|g| g.holder == holder && g.lease_id == lease_id);
                if ours {
                    self.grants.remove(&slot);
                }
                LeaseReply::Released { slot, lease_id }
            }
        };
        debug_assert_eq!(self.check_invariants(), Ok(()));
        reply
    }

    fn acquire(
        &mut self,
        now_ms: u64,
        slot: Slot,
        holder: String,
        lease_id: u64,
        round: u64,
        duration_ms: u64,
    ) -> LeaseReply {
        let refuse = |slot, reason| LeaseReply::Refused { slot, lease_id, round, reason };
        if now_ms < self.quiet_until_ms {
            return refuse(slot, Refusal::QuietPeriod { until_ms: self.quiet_until_ms });
        }
        // Longer than T would outlive the quiet period of a restart; 0 is a bug at the sender.
        if duration_ms == 0 || duration_ms > self.config.duration_ms {
            return refuse(slot, Refusal::BadDuration);
        }
        let busy_until_ms = now_ms.saturating_add(duration_ms).saturating_add(self.config.margin_ms);
        match self.grants.get_mut(&slot) {
            Some(grant) if grant.holder != holder => refuse(slot, Refusal::HeldByOther),
            // The same holder with an older lease or round: a reordered message. Granting it would
            // be safe (the holder is the same) but would let an old acquire resurrect a lease the
            // holder has given up, so refuse it and leave the timer alone.
            Some(grant) if (lease_id, round) < (grant.lease_id, grant.round) => refuse(slot, Refusal::Stale),
            Some(grant) => {
                // A renewal (or a new lease of the same holder): restart the timer, never shorten it.
                grant.lease_id = lease_id;
                grant.round = round;
                grant.granted_at_ms = now_ms;
                grant.busy_until_ms = grant.busy_until_ms.max(busy_until_ms);
                LeaseReply::Granted { slot, lease_id, round }
            }
            None => {
                let grant = Grant { holder, lease_id, round, granted_at_ms: now_ms, busy_until_ms };
                self.grants.insert(slot.clone(), grant);
                LeaseReply::Granted { slot, lease_id, round }
            }
        }
    }

    pub fn check_invariants(&self) -> Result<(), String> {
        let hold_ms = self.config.rm_hold_ms();
        for (slot, grant) in &self.grants {
            if grant.granted_at_ms > self.last_now_ms {
                return Err(format!("{slot} granted at {} ms, after now {} ms", grant.granted_at_ms, self.last_now_ms));
            }
            if grant.granted_at_ms < self.quiet_until_ms {
                return Err(format!("{slot} granted at {} ms, inside the quiet period", grant.granted_at_ms));
            }
            if grant.busy_until_ms <= grant.granted_at_ms {
                return Err(format!("{slot} busy until {} ms, not after its grant", grant.busy_until_ms));
            }
            if grant.busy_until_ms > grant.granted_at_ms.saturating_add(hold_ms) {
                return Err(format!("{slot} busy until {} ms, beyond the newest grant + T + m", grant.busy_until_ms));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strict::PPM;

    const HOLD_MS: u64 = 1_000 + 4; // T + ⌈ρT⌉ + 3 with T = 1 s, ρ = 0.1%

    fn config() -> LeaseConfig {
        LeaseConfig::new(1_000, 1_000)
    }

    fn acquire(holder: &str, lease_id: u64, round: u64) -> LeaseRequest {
        LeaseRequest::Acquire { slot: Slot::new("g", 0), holder: holder.to_string(), lease_id, round, duration_ms: 1_000 }
    }

    fn granted(reply: &LeaseReply) -> bool {
        matches!(reply, LeaseReply::Granted { .. })
    }

    #[test]
    fn the_margin_is_rho_t_plus_three() {
        assert_eq!(config().margin_ms, 4);
        assert_eq!(config().rm_hold_ms(), HOLD_MS);
        assert_eq!(config().holder_validity_ms(), 999);
        assert_eq!(LeaseConfig::new(30_000, 1_000).margin_ms, 33);
        assert!(LeaseConfig { margin_ms: 3, ..config() }.validate().is_err());
        assert!(LeaseConfig::new(1_000, PPM / 2).validate().is_err());
    }

    #[test]
    fn grants_a_free_slot_and_refuses_another_holder_while_held() {
        let mut table = SlotTable::new(config());
        assert!(granted(&table.handle(10, acquire("c1", 1, 0))));
        assert_eq!(table.holder_of(10, &Slot::new("g", 0)), Some("c1"));
        let reply = table.handle(500, acquire("c2", 7, 0));
        assert!(matches!(reply, LeaseReply::Refused { reason: Refusal::HeldByOther, .. }), "{reply:?}");
        // Another slot of the same group is independent.
        let other = LeaseRequest::Acquire { slot: Slot::new("g", 1), holder: "c2".into(), lease_id: 7, round: 0, duration_ms: 1_000 };
        assert!(granted(&table.handle(500, other)));
    }

    #[test]
    fn re_grants_only_after_t_plus_margin() {
        let mut table = SlotTable::new(config());
        assert!(granted(&table.handle(10, acquire("c1", 1, 0))));
        assert!(!granted(&table.handle(10 + HOLD_MS - 1, acquire("c2", 1, 0))));
        assert!(granted(&table.handle(10 + HOLD_MS, acquire("c2", 1, 0))));
        assert_eq!(table.holder_of(10 + HOLD_MS, &Slot::new("g", 0)), Some("c2"));
    }

    #[test]
    fn renewal_restarts_the_timer_and_old_rounds_are_stale() {
        let mut table = SlotTable::new(config());
        assert!(granted(&table.handle(0, acquire("c1", 1, 0))));
        assert!(granted(&table.handle(800, acquire("c1", 1, 1))));
        // Without the renewal c2 would be granted at HOLD_MS.
        assert!(!granted(&table.handle(HOLD_MS + 10, acquire("c2", 1, 0))));
        let reply = table.handle(HOLD_MS + 10, acquire("c1", 1, 0));
        assert!(matches!(reply, LeaseReply::Refused { reason: Refusal::Stale, .. }), "{reply:?}");
        assert!(granted(&table.handle(800 + HOLD_MS, acquire("c2", 1, 0))));
    }

    #[test]
    fn release_frees_at_once_but_only_the_named_lease() {
        let mut table = SlotTable::new(config());
        assert!(granted(&table.handle(0, acquire("c1", 2, 0))));
        let stale = LeaseRequest::Release { slot: Slot::new("g", 0), holder: "c1".into(), lease_id: 1 };
        table.handle(5, stale);
        assert!(!granted(&table.handle(5, acquire("c2", 1, 0))));
        let release = LeaseRequest::Release { slot: Slot::new("g", 0), holder: "c1".into(), lease_id: 2 };
        assert_eq!(table.handle(6, release), LeaseReply::Released { slot: Slot::new("g", 0), lease_id: 2 });
        assert!(granted(&table.handle(6, acquire("c2", 1, 0))));
    }

    #[test]
    fn quiet_period_after_restart() {
        let mut table = SlotTable::restarted(5_000, config());
        let reply = table.handle(5_000 + HOLD_MS - 1, acquire("c1", 1, 0));
        assert_eq!(
            reply,
            LeaseReply::Refused {
                slot: Slot::new("g", 0),
                lease_id: 1,
                round: 0,
                reason: Refusal::QuietPeriod { until_ms: 5_000 + HOLD_MS }
            }
        );
        assert!(granted(&table.handle(5_000 + HOLD_MS, acquire("c1", 1, 0))));
    }

    #[test]
    fn refuses_durations_it_cannot_cover() {
        let mut table = SlotTable::new(config());
        let long = LeaseRequest::Acquire { slot: Slot::new("g", 0), holder: "c1".into(), lease_id: 1, round: 0, duration_ms: 1_001 };
        assert!(matches!(table.handle(0, long), LeaseReply::Refused { reason: Refusal::BadDuration, .. }));
        let zero = LeaseRequest::Acquire { slot: Slot::new("g", 0), holder: "c1".into(), lease_id: 1, round: 0, duration_ms: 0 };
        assert!(matches!(table.handle(0, zero), LeaseReply::Refused { reason: Refusal::BadDuration, .. }));
    }

    #[test]
    #[should_panic(expected = "monotonic clock went back")]
    fn a_clock_going_back_is_a_bug() {
        let mut table = SlotTable::new(config());
        table.handle(10, acquire("c1", 1, 0));
        table.handle(9, acquire("c1", 1, 1));
    }

    #[test]
    fn check_invariants_catches_a_grant_in_the_quiet_period() {
        let mut table = SlotTable::restarted(100, config());
        let grant = Grant { holder: "c1".into(), lease_id: 1, round: 0, granted_at_ms: 100, busy_until_ms: 200 };
        table.grants.insert(Slot::new("g", 0), grant);
        assert!(table.check_invariants().unwrap_err().contains("quiet period"));
    }
}
