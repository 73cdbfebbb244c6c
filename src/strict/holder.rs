//! The coordinator side of strict admission: the leases one coordinator holds or is acquiring.
//!
//! Inputs: [`LeaseHolder::acquire`], [`LeaseHolder::release`], [`LeaseHolder::on_reply`] and
//! [`LeaseHolder::tick`] (call it at [`LeaseHolder::next_deadline_ms`] at the latest). Outputs:
//! [`Effect`]s, which the caller must carry out in order: send the requests, start a query on
//! `Acquired`, and on `Lost` stop the query at once (fail it) — from that instant the slot may
//! be someone else's soon. [`LeaseHolder::holds`] is the one answer to "may this query run".
//!
//! Invariants ([`LeaseHolder::check_invariants`]): a lease is valid no longer than `V` after the
//! newest round it sent; grants come only from members; at most `ROUNDS_MAX` rounds are tracked.

use std::collections::{BTreeMap, BTreeSet};

use super::{majority, LeaseConfig, LeaseReply, LeaseRequest, Refusal, Slot};

/// Rounds tracked per lease. A round older than `V` can never confer validity and is dropped,
/// and rounds go out every `V / 3`, so at most 4 are live; the bound is asserted.
const ROUNDS_MAX: usize = 8;

/// What the caller must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Send `request` to the RM `rm` (best effort: loss is tolerated).
    Send { rm: String, request: LeaseRequest },
    /// A majority granted `slot`: the query waiting for it may start.
    Acquired { slot: Slot },
    /// No majority within `V` (the slot is busy elsewhere, or RMs are unreachable or quiet):
    /// the grants we did get are being released; try again later.
    AcquireFailed { slot: Slot },
    /// The lease on `slot` lapsed before a majority renewed it: stop the query holding it now.
    Lost { slot: Slot },
}

/// A deliberately wrong holder, for the model tests to prove their checker catches it.
#[cfg(test)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HolderBreak {
    /// Measure validity from when the grant *arrived* instead of when the round was sent.
    AnchorAtReply,
    /// Once acquired, hold forever (keep renewing, never report `Lost`).
    IgnoreExpiry,
}

#[derive(Debug, Clone)]
struct Lease {
    lease_id: u64,
    next_round: u64,
    started_at_ms: u64,
    /// A majority granted it once (`Acquired` was reported); until then it is being acquired.
    acquired: bool,
    /// Send time of every round that may still count: round → `sent_at_ms`.
    rounds: BTreeMap<u64, u64>,
    last_sent_ms: u64,
    /// Per RM, the newest `sent_at_ms` among the rounds it granted.
    granted: BTreeMap<String, u64>,
    /// RMs that refused and have not granted since (only counted while acquiring).
    refused: BTreeSet<String>,
    /// Own clock; 0 until a majority granted.
    valid_until_ms: u64,
}

#[derive(Debug, Clone)]
pub struct LeaseHolder {
    holder: String,
    rms: BTreeSet<String>,
    config: LeaseConfig,
    next_lease_id: u64,
    leases: BTreeMap<Slot, Lease>,
    last_now_ms: u64,
    #[cfg(test)]
    pub(crate) broken: Option<HolderBreak>,
}

impl LeaseHolder {
    /// `holder` is this coordinator's node id, `rms` the fixed membership. Lease ids start at
    /// `first_lease_id`: a restarted coordinator should start above its previous incarnation's
    /// (e.g. from its wall clock), or RMs refuse its acquires as stale until the old leases expire.
    pub fn new(holder: &str, rms: &[String], config: LeaseConfig, first_lease_id: u64) -> LeaseHolder {
        if let Err(message) = config.validate() {
            panic!("unsafe lease config: {message}");
        }
        let rms: BTreeSet<String> = rms.iter().cloned().collect();
        assert!(!rms.is_empty(), "a lease holder needs at least one RM");
        LeaseHolder {
            holder: holder.to_string(),
            rms,
            config,
            next_lease_id: first_lease_id,
            leases: BTreeMap::new(),
            last_now_ms: 0,
            #[cfg(test)]
            broken: None,
        }
    }

    fn quorum(&self) -> usize {
        majority(self.rms.len())
    }

    /// How often a round goes out (renewal while held, retry while acquiring): a third of `V`,
    /// so two consecutive rounds may be lost and the third still renews in time.
    fn round_interval_ms(&self) -> u64 {
        (self.config.holder_validity_ms() / 3).max(1)
    }

    /// May the query on `slot` run at `now_ms`? True only while a majority's grant is valid.
    pub fn holds(&self, now_ms: u64, slot: &Slot) -> bool {
        let Some(lease) = self.leases.get(slot) else { return false };
        #[cfg(test)]
        if self.broken == Some(HolderBreak::IgnoreExpiry) {
            return lease.acquired;
        }
        lease.acquired && now_ms < lease.valid_until_ms
    }

    /// Is `slot` held or being acquired?
    pub fn is_active(&self, slot: &Slot) -> bool {
        self.leases.contains_key(slot)
    }

    /// Starts acquiring `slot` (nothing if it is already held or being acquired).
    #[must_use]
    pub fn acquire(&mut self, now_ms: u64, slot: &Slot) -> Vec<Effect> {
        self.observe(now_ms);
        if self.leases.contains_key(slot) {
            return Vec::new();
        }
        let lease_id = self.next_lease_id;
        self.next_lease_id = self.next_lease_id.saturating_add(1);
        let lease = Lease {
            lease_id,
            next_round: 0,
            started_at_ms: now_ms,
            acquired: false,
            rounds: BTreeMap::new(),
            last_sent_ms: now_ms,
            granted: BTreeMap::new(),
            refused: BTreeSet::new(),
            valid_until_ms: 0,
        };
        self.leases.insert(slot.clone(), lease);
        let effects = self.send_round(now_ms, slot);
        self.debug_check();
        effects
    }

    /// Stops using `slot` (the query finished): it is not held from now on, and every RM is asked
    /// to free it. Releasing is only safe because we stop counting the slot *before* sending.
    #[must_use]
    pub fn release(&mut self, now_ms: u64, slot: &Slot) -> Vec<Effect> {
        self.observe(now_ms);
        let Some(lease) = self.leases.remove(slot) else { return Vec::new() };
        self.releases(slot, lease.lease_id)
    }

    /// Takes one RM's reply.
    #[must_use]
    pub fn on_reply(&mut self, now_ms: u64, rm: &str, reply: LeaseReply) -> Vec<Effect> {
        self.observe(now_ms);
        // A lapsed lease must be reported lost before a late grant could make it valid again:
        // the caller has to see `Lost` every time `holds` turned false without a release.
        let mut effects = self.expire(now_ms);
        if !self.rms.contains(rm) {
            return effects;
        }
        match reply {
            LeaseReply::Granted { slot, lease_id, round } => {
                effects.extend(self.on_granted(now_ms, rm, &slot, lease_id, round));
            }
            LeaseReply::Refused { slot, lease_id, reason, .. } => {
                effects.extend(self.on_refused(rm, &slot, lease_id, reason));
            }
            LeaseReply::Released { .. } => {}
        }
        self.debug_check();
        effects
    }

    fn on_granted(&mut self, now_ms: u64, rm: &str, slot: &Slot, lease_id: u64, round: u64) -> Vec<Effect> {
        let quorum = self.quorum();
        let validity_ms = self.config.holder_validity_ms();
        #[cfg(test)]
        let anchor_at_reply = self.broken == Some(HolderBreak::AnchorAtReply);
        #[cfg(not(test))]
        let anchor_at_reply = false;
        let Some(lease) = self.leases.get_mut(slot).filter(|lease| lease.lease_id == lease_id) else {
            return Vec::new();
        };
        let Some(&sent_at_ms) = lease.rounds.get(&round) else { return Vec::new() };
        let anchor_ms = if anchor_at_reply { now_ms } else { sent_at_ms };
        let newest_ms = lease.granted.entry(rm.to_string()).or_insert(anchor_ms);
        *newest_ms = (*newest_ms).max(anchor_ms);
        lease.refused.remove(rm);
        if lease.granted.len() < quorum {
            return Vec::new();
        }
        // The majority-th newest send time: a majority granted rounds sent at or after it.
        let mut sent_ms: Vec<u64> = lease.granted.values().copied().collect();
        sent_ms.sort_unstable_by(|a, b| b.cmp(a));
        let majority_sent_ms = sent_ms[quorum - 1];
        lease.valid_until_ms = lease.valid_until_ms.max(majority_sent_ms.saturating_add(validity_ms));
        if !lease.acquired && now_ms < lease.valid_until_ms {
            lease.acquired = true;
            return vec![Effect::Acquired { slot: slot.clone() }];
        }
        Vec::new()
    }

    fn on_refused(&mut self, rm: &str, slot: &Slot, lease_id: u64, reason: Refusal) -> Vec<Effect> {
        let fail_at = self.rms.len() - self.quorum();
        let Some(lease) = self.leases.get_mut(slot).filter(|lease| lease.lease_id == lease_id) else {
            return Vec::new();
        };
        // A stale refusal answers a reordered old round; a refusal from an RM that granted us
        // a round is older news. Once held, refusals do not matter: only a lapse loses a lease.
        if lease.acquired || reason == Refusal::Stale || lease.granted.contains_key(rm) {
            return Vec::new();
        }
        lease.refused.insert(rm.to_string());
        if lease.refused.len() <= fail_at {
            return Vec::new();
        }
        // A majority can no longer be reached this time: give the grants back so that two
        // contenders that split the RMs do not block each other until expiry.
        self.leases.remove(slot);
        let mut effects = self.releases(slot, lease_id);
        effects.push(Effect::AcquireFailed { slot: slot.clone() });
        effects
    }

    /// Renews, retries, and reports lapsed leases and failed acquisitions.
    #[must_use]
    pub fn tick(&mut self, now_ms: u64) -> Vec<Effect> {
        self.observe(now_ms);
        let mut effects = self.expire(now_ms);
        let interval_ms = self.round_interval_ms();
        let due: Vec<Slot> = self
            .leases
            .iter()
            .filter(|(_, lease)| now_ms >= lease.last_sent_ms.saturating_add(interval_ms))
            .map(|(slot, _)| slot.clone())
            .collect();
        for slot in due {
            effects.extend(self.send_round(now_ms, &slot));
        }
        self.debug_check();
        effects
    }

    /// When `tick` must be called next at the latest (own clock), if anything is active.
    pub fn next_deadline_ms(&self) -> Option<u64> {
        let interval_ms = self.round_interval_ms();
        let validity_ms = self.config.holder_validity_ms();
        self.leases
            .values()
            .map(|lease| {
                let expiry_ms = if lease.acquired {
                    lease.valid_until_ms
                } else {
                    lease.started_at_ms.saturating_add(validity_ms)
                };
                expiry_ms.min(lease.last_sent_ms.saturating_add(interval_ms))
            })
            .min()
    }

    /// Removes every lease that lapsed (held) or timed out (acquiring) by `now_ms`.
    fn expire(&mut self, now_ms: u64) -> Vec<Effect> {
        let validity_ms = self.config.holder_validity_ms();
        let mut ended = Vec::new();
        for (slot, lease) in &self.leases {
            if lease.acquired && !self.holds(now_ms, slot) {
                ended.push((slot.clone(), lease.lease_id, Effect::Lost { slot: slot.clone() }));
            } else if !lease.acquired && now_ms >= lease.started_at_ms.saturating_add(validity_ms) {
                ended.push((slot.clone(), lease.lease_id, Effect::AcquireFailed { slot: slot.clone() }));
            }
        }
        let mut effects = Vec::new();
        for (slot, lease_id, effect) in ended {
            self.leases.remove(&slot);
            // Telling the RMs frees the slot sooner than their timers would; we stopped first.
            effects.extend(self.releases(&slot, lease_id));
            effects.push(effect);
        }
        effects
    }

    fn send_round(&mut self, now_ms: u64, slot: &Slot) -> Vec<Effect> {
        let validity_ms = self.config.holder_validity_ms();
        let duration_ms = self.config.duration_ms;
        let lease = self.leases.get_mut(slot).expect("send_round on an active lease");
        let round = lease.next_round;
        lease.next_round = lease.next_round.saturating_add(1);
        lease.rounds.retain(|_, sent_at_ms| sent_at_ms.saturating_add(validity_ms) > now_ms);
        lease.rounds.insert(round, now_ms);
        lease.last_sent_ms = now_ms;
        assert!(lease.rounds.len() <= ROUNDS_MAX, "{} rounds of {slot} in flight", lease.rounds.len());
        let lease_id = lease.lease_id;
        self.rms
            .iter()
            .map(|rm| Effect::Send {
                rm: rm.clone(),
                request: LeaseRequest::Acquire {
                    slot: slot.clone(),
                    holder: self.holder.clone(),
                    lease_id,
                    round,
                    duration_ms,
                },
            })
            .collect()
    }

    fn releases(&self, slot: &Slot, lease_id: u64) -> Vec<Effect> {
        self.rms
            .iter()
            .map(|rm| Effect::Send {
                rm: rm.clone(),
                request: LeaseRequest::Release { slot: slot.clone(), holder: self.holder.clone(), lease_id },
            })
            .collect()
    }

    fn observe(&mut self, now_ms: u64) {
        assert!(now_ms >= self.last_now_ms, "monotonic clock went back: {now_ms} < {}", self.last_now_ms);
        self.last_now_ms = now_ms;
    }

    fn debug_check(&self) {
        debug_assert_eq!(self.check_invariants(), Ok(()));
    }

    pub fn check_invariants(&self) -> Result<(), String> {
        #[cfg(test)]
        if self.broken.is_some() {
            return Ok(());
        }
        let validity_ms = self.config.holder_validity_ms();
        for (slot, lease) in &self.leases {
            if lease.rounds.len() > ROUNDS_MAX {
                return Err(format!("{slot}: {} rounds tracked", lease.rounds.len()));
            }
            if let Some(rm) = lease.granted.keys().find(|rm| !self.rms.contains(*rm)) {
                return Err(format!("{slot}: a grant from {rm}, not a member"));
            }
            if lease.valid_until_ms > lease.last_sent_ms.saturating_add(validity_ms) {
                return Err(format!(
                    "{slot}: valid until {} ms, beyond the newest round ({} ms) + V",
                    lease.valid_until_ms, lease.last_sent_ms
                ));
            }
            if lease.acquired && lease.granted.len() < self.quorum() {
                return Err(format!("{slot}: acquired with {} grants of {}", lease.granted.len(), self.rms.len()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strict::rm::SlotTable;

    fn rms() -> Vec<String> {
        vec!["rm-1".to_string(), "rm-2".to_string(), "rm-3".to_string()]
    }

    fn config() -> LeaseConfig {
        LeaseConfig::new(1_000, 1_000) // V = 999 ms, rounds every 333 ms
    }

    fn slot() -> Slot {
        Slot::new("g", 0)
    }

    /// Delivers every `Send` to the table of its RM (instantly, at `now_ms` on every clock) and
    /// feeds the replies back; returns the effects that are not sends.
    fn deliver(holder: &mut LeaseHolder, tables: &mut BTreeMap<String, SlotTable>, now_ms: u64, effects: Vec<Effect>, reachable: &[&str]) -> Vec<Effect> {
        let mut outcomes = Vec::new();
        for effect in effects {
            match effect {
                Effect::Send { rm, request } if reachable.contains(&rm.as_str()) => {
                    let reply = tables.get_mut(&rm).unwrap().handle(now_ms, request);
                    let more = holder.on_reply(now_ms, &rm, reply);
                    outcomes.extend(deliver(holder, tables, now_ms, more, reachable));
                }
                Effect::Send { .. } => {}
                other => outcomes.push(other),
            }
        }
        outcomes
    }

    fn tables() -> BTreeMap<String, SlotTable> {
        rms().into_iter().map(|rm| (rm, SlotTable::new(config()))).collect()
    }

    #[test]
    fn acquires_with_a_majority_and_not_before() {
        let mut holder = LeaseHolder::new("c1", &rms(), config(), 1);
        let effects = holder.acquire(100, &slot());
        assert_eq!(effects.len(), 3);
        let granted = LeaseReply::Granted { slot: slot(), lease_id: 1, round: 0 };
        assert_eq!(holder.on_reply(150, "rm-1", granted.clone()), vec![]);
        assert!(!holder.holds(150, &slot()));
        assert_eq!(holder.on_reply(160, "rm-2", granted.clone()), vec![Effect::Acquired { slot: slot() }]);
        // Valid from the *send* time: 100 + 999.
        assert!(holder.holds(1_098, &slot()));
        assert!(!holder.holds(1_099, &slot()));
        // A grant from a stranger counts for nothing.
        assert_eq!(holder.on_reply(170, "rm-9", granted), vec![]);
    }

    #[test]
    fn renews_and_stays_held_with_one_rm_down() {
        let mut holder = LeaseHolder::new("c1", &rms(), config(), 1);
        let mut tables = tables();
        let up = ["rm-1", "rm-2"];
        let effects = holder.acquire(0, &slot());
        assert_eq!(deliver(&mut holder, &mut tables, 0, effects, &up), vec![Effect::Acquired { slot: slot() }]);
        for now_ms in (0..10_000).step_by(50) {
            let effects = holder.tick(now_ms);
            assert_eq!(deliver(&mut holder, &mut tables, now_ms, effects, &up), vec![]);
            assert!(holder.holds(now_ms, &slot()), "lost at {now_ms}");
        }
    }

    #[test]
    fn lost_after_missed_renewals() {
        let mut holder = LeaseHolder::new("c1", &rms(), config(), 1);
        let mut tables = tables();
        let effects = holder.acquire(0, &slot());
        deliver(&mut holder, &mut tables, 0, effects, &["rm-1", "rm-2", "rm-3"]);
        // From now on only one RM answers: renewals go out but never reach a majority.
        let mut lost_at_ms = None;
        for now_ms in 1..2_000 {
            let effects = holder.tick(now_ms);
            let outcomes = deliver(&mut holder, &mut tables, now_ms, effects, &["rm-1"]);
            if outcomes.contains(&Effect::Lost { slot: slot() }) {
                lost_at_ms = Some(now_ms);
                break;
            }
        }
        assert_eq!(lost_at_ms, Some(999));
        assert!(!holder.holds(999, &slot()));
        assert!(!holder.is_active(&slot()));
    }

    #[test]
    fn a_second_holder_is_refused_while_held_and_gives_up() {
        let mut tables = tables();
        let all = ["rm-1", "rm-2", "rm-3"];
        let mut first = LeaseHolder::new("c1", &rms(), config(), 1);
        let effects = first.acquire(0, &slot());
        deliver(&mut first, &mut tables, 0, effects, &all);
        let mut second = LeaseHolder::new("c2", &rms(), config(), 1);
        let effects = second.acquire(10, &slot());
        assert_eq!(deliver(&mut second, &mut tables, 10, effects, &all), vec![Effect::AcquireFailed { slot: slot() }]);
        assert!(!second.holds(10, &slot()));
        // After the first releases, the second gets it at once.
        let effects = first.release(20, &slot());
        assert!(!first.holds(20, &slot()));
        deliver(&mut first, &mut tables, 20, effects, &all);
        let effects = second.acquire(30, &slot());
        assert_eq!(deliver(&mut second, &mut tables, 30, effects, &all), vec![Effect::Acquired { slot: slot() }]);
    }

    #[test]
    fn an_acquire_without_a_majority_times_out() {
        let mut holder = LeaseHolder::new("c1", &rms(), config(), 1);
        let mut tables = tables();
        let effects = holder.acquire(0, &slot());
        deliver(&mut holder, &mut tables, 0, effects, &["rm-1"]);
        assert_eq!(holder.next_deadline_ms(), Some(333));
        let mut outcomes = Vec::new();
        for now_ms in 1..=999 {
            let effects = holder.tick(now_ms);
            outcomes.extend(deliver(&mut holder, &mut tables, now_ms, effects, &["rm-1"]));
        }
        assert_eq!(outcomes, vec![Effect::AcquireFailed { slot: slot() }]);
    }

    #[test]
    fn a_late_grant_does_not_revive_a_lapsed_lease() {
        let mut holder = LeaseHolder::new("c1", &rms(), config(), 1);
        let _ = holder.acquire(0, &slot());
        let granted = LeaseReply::Granted { slot: slot(), lease_id: 1, round: 0 };
        let _ = holder.on_reply(1, "rm-1", granted.clone());
        let _ = holder.on_reply(1, "rm-2", granted);
        let _ = holder.tick(400); // round 1 goes out at 400
        let late = LeaseReply::Granted { slot: slot(), lease_id: 1, round: 1 };
        let effects = holder.on_reply(1_000, "rm-1", late);
        assert!(effects.contains(&Effect::Lost { slot: slot() }), "{effects:?}");
        assert!(!holder.holds(1_000, &slot()));
    }
}
