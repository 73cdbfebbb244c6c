//! The pure core of strict admission (issue 14): leases on named slots, granted by a majority of
//! the resource managers. No I/O, no clock, no randomness: every input carries `now_ms` (the
//! caller's *monotonic* clock) and every output is a value the caller must act on, in the style
//! of quinn-proto and raft-rs. Nothing here is wired into the roles yet.
//!
//! # The protocol
//! - **Slots.** A resource group with `hardConcurrencyLimit` L has L named slots `group#0 …
//!   group#L−1` ([`Slot`]). A query may run only while its coordinator holds one slot of every
//!   group on its path. Counting quorums ("at most L running, summed over RMs") do not give a
//!   hard bound for L > 1; a named slot is a single-holder lock, and single-holder locks compose.
//! - **Membership** is a fixed list of RMs given at construction (`discovery-server.peers`), the
//!   same list on every node. A majority is `n / 2 + 1` of it ([`majority`]).
//! - **Acquire / renew.** The holder ([`holder::LeaseHolder`]) picks a fresh `lease_id` for the
//!   slot and sends *rounds* of `Acquire { slot, holder, lease_id, round, duration_ms }` to every
//!   RM, remembering the time `sent_at_ms` each round was sent. An RM ([`rm::SlotTable`]) grants
//!   when the slot is free, or already granted to the same holder (that is a renewal: it restarts
//!   the RM's timer), and refuses otherwise. Renewals are new rounds of the same lease, sent well
//!   before expiry (every third of the validity), so a lost message or two does not lose it.
//! - **Validity.** For each RM the holder keeps the newest `sent_at_ms` among the rounds that RM
//!   granted. The lease is valid until `S + V` on the holder's clock, where `S` is the
//!   majority-th newest of those send times (so a majority of RMs each granted a round sent at or
//!   after `S`) and `V = T − ⌈ρT⌉ ≤ T·(1−ρ)`, T being `duration_ms`. When it lapses the holder
//!   reports [`holder::Effect::Lost`]: the caller must stop the query (fail it) at once.
//! - **Expiry at the RM.** An RM keeps a grant busy until `granted_at_ms + T + margin_ms` on its
//!   own clock, and only then may grant the slot to another holder.
//! - **Release.** The holder stops counting the slot first, then sends `Release` to every RM; an
//!   RM frees the slot at once if the release names the lease it holds. A lost release costs only
//!   availability (the slot frees at expiry).
//! - **RM restart.** An RM restarted with empty state does not know what it granted before, so it
//!   grants nothing for a *quiet period* of `T + margin_ms` on its new clock
//!   ([`rm::SlotTable::restarted`]); every lease it granted before the crash has expired by then
//!   (the same inequality as below, with the restart after the grant). We chose the quiet period
//!   over recovering grants: it needs no disk and no state transfer, and with 3 RMs the other
//!   two keep granting meanwhile. If all RMs restart at once, admission pauses for `T + margin`.
//!
//! # Safety: at most one holder per slot at any true instant
//! Clock model: every node's monotonic clock runs at a rate within `[1−ρ, 1+ρ]` of true time
//! (ρ = `drift_ppm / 10⁶`); offsets are arbitrary (they cancel: each node only compares its
//! own readings). Take a holder H whose lease is valid at true time t because of RM set Q
//! (a majority), each RM i ∈ Q having granted, at true time `g_i`, a round H sent at `s_i ≥ S`.
//! 1. *The holder stops in time.* H's clock advanced at most `V` since it read `S`, at rate at
//!    least `1−ρ`, so `t < t(S) + V/(1−ρ) ≤ t(S) + T` (true time), since `V ≤ T(1−ρ)`.
//! 2. *The RM waits long enough.* RM i's clock must advance `T + m` after `g_i` before it
//!    re-grants; at rate at most `1+ρ` that takes at least `(T + m)/(1+ρ)` true time.
//! 3. *Grant after send.* `g_i ≥ t(s_i) ≥ t(S)`: an RM cannot grant a round before it was sent.
//!
//! So RM i re-grants no earlier than `t(S) + (T + m)/(1+ρ)`, and H is valid no later than
//! `t(S) + T`; safety needs `(T + m)/(1+ρ) ≥ T`, that is **`m ≥ ρ·T`**. A renewal only moves
//! `g_i` later, a release is sent only after H stopped counting, and a restarted RM's quiet
//! period starts after every grant it made, so each RM of Q refuses everyone else until H is no
//! longer valid. A second holder H' valid at t needs a majority Q' granting to it, and Q ∩ Q' ≠ ∅
//! (two majorities of one membership intersect), so H' cannot exist.
//!
//! **Integer clocks.** Clocks are read in whole milliseconds, so each reading is up to 1 ms
//! early: the holder's elapsed time may be under-read by 1 ms and the RM's over-read by 1 ms.
//! Redoing the bound with `V + 1` and `T + m − 1` gives `m ≥ ρT + 2/(1−ρ)`; we take
//! [`LeaseConfig::minimum_margin_ms`] `= ⌈ρT⌉ + 3` (valid for ρ ≤ 1/3; [`LeaseConfig::validate`]
//! also rejects larger ρ). With T = 30 s and ρ = 0.001 that is 33 ms.
//!
//! What the bound does not cover (integration): the caller must stop the query *at*
//! [`holder::Effect::Lost`] — arm a timer at [`holder::LeaseHolder::next_deadline_ms`], and if
//! stopping the query's tasks on workers takes time, that time must come out of `V`.
//!
//! # Files
//! - [`rm`]: [`rm::SlotTable`], the RM side.
//! - [`holder`]: [`holder::LeaseHolder`], the coordinator side.
//! - `model_tests.rs`: a model of true time with drifting clocks, lossy networks and crashes that
//!   checks the safety property after every step, and must catch deliberately broken variants.

use std::fmt;

use serde::{Deserialize, Serialize};

pub mod holder;
pub mod rm;

#[cfg(test)]
mod model_tests;

/// One part per million: the unit of `drift_ppm`.
pub const PPM: u64 = 1_000_000;

/// The largest clock drift the bound in the module docs holds for (1/3, as ppm).
pub const DRIFT_PPM_MAX: u64 = PPM / 3;

/// A named slot: `group#index`, `index < hardConcurrencyLimit`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Slot {
    pub group: String,
    pub index: u32,
}

impl Slot {
    pub fn new(group: &str, index: u32) -> Slot {
        Slot { group: group.to_string(), index }
    }

    /// The slots of a group with `hardConcurrencyLimit` `limit`: `group#0 … group#limit−1`.
    pub fn all_of(group: &str, limit: u32) -> Vec<Slot> {
        (0..limit).map(|index| Slot::new(group, index)).collect()
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.group, self.index)
    }
}

/// The lease parameters; every node of a cluster must use the same ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseConfig {
    /// T: how long one grant lasts. Holders ask for exactly this; RMs refuse longer requests
    /// (their quiet period after a restart covers only this long).
    pub duration_ms: u64,
    /// ρ in parts per million: the bound on every monotonic clock's rate error.
    pub drift_ppm: u64,
    /// m: how much longer than T an RM keeps a grant busy. At least [`Self::minimum_margin_ms`].
    pub margin_ms: u64,
}

impl LeaseConfig {
    /// A config with the smallest safe margin.
    pub fn new(duration_ms: u64, drift_ppm: u64) -> LeaseConfig {
        let margin_ms = LeaseConfig::minimum_margin_ms(duration_ms, drift_ppm);
        LeaseConfig { duration_ms, drift_ppm, margin_ms }
    }

    /// `⌈ρT⌉ + 3`: the derivation is in the module docs (`m ≥ ρT`, plus 3 ms for millisecond
    /// clock readings).
    pub fn minimum_margin_ms(duration_ms: u64, drift_ppm: u64) -> u64 {
        drift_of_ms(duration_ms, drift_ppm).saturating_add(3)
    }

    /// V: how long after *sending* a round the holder may count a majority's grant of it, on its
    /// own clock: `T − ⌈ρT⌉ ≤ T·(1−ρ)` (rounded down, the safe way).
    pub fn holder_validity_ms(&self) -> u64 {
        self.duration_ms.saturating_sub(drift_of_ms(self.duration_ms, self.drift_ppm))
    }

    /// How long after a grant (or a restart) an RM keeps the slot busy: `T + m`.
    pub fn rm_hold_ms(&self) -> u64 {
        self.duration_ms.saturating_add(self.margin_ms)
    }

    /// Rejects a config the safety bound does not hold for.
    pub fn validate(&self) -> Result<(), String> {
        if self.duration_ms == 0 {
            return Err("lease duration_ms must be positive".to_string());
        }
        if self.drift_ppm > DRIFT_PPM_MAX {
            return Err(format!("lease drift_ppm {} is above the supported {DRIFT_PPM_MAX}", self.drift_ppm));
        }
        let minimum_ms = LeaseConfig::minimum_margin_ms(self.duration_ms, self.drift_ppm);
        if self.margin_ms < minimum_ms {
            return Err(format!(
                "lease margin_ms {} is below ⌈ρT⌉ + 3 = {minimum_ms} (T = {} ms, ρ = {} ppm)",
                self.margin_ms, self.duration_ms, self.drift_ppm
            ));
        }
        if self.holder_validity_ms() < 3 {
            return Err(format!("lease duration_ms {} leaves the holder no time to renew", self.duration_ms));
        }
        Ok(())
    }
}

/// `⌈duration · drift / 10⁶⌉` in whole ms, in u128 so no product overflows.
fn drift_of_ms(duration_ms: u64, drift_ppm: u64) -> u64 {
    let product = u128::from(duration_ms) * u128::from(drift_ppm);
    let ceiling = product.div_ceil(u128::from(PPM));
    u64::try_from(ceiling).unwrap_or(u64::MAX)
}

/// How many grants of a membership of `members` RMs make a majority: `n / 2 + 1`. Any two sets
/// of that size intersect, which is the whole safety argument.
pub fn majority(members: usize) -> usize {
    members / 2 + 1
}

/// What a holder asks an RM.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LeaseRequest {
    /// Grant (or renew: same holder and lease, a newer round) `slot` for `duration_ms`.
    Acquire { slot: Slot, holder: String, lease_id: u64, round: u64, duration_ms: u64 },
    /// The holder has stopped using this lease; free the slot if it is this lease.
    Release { slot: Slot, holder: String, lease_id: u64 },
}

/// What an RM answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LeaseReply {
    Granted { slot: Slot, lease_id: u64, round: u64 },
    Refused { slot: Slot, lease_id: u64, round: u64, reason: Refusal },
    Released { slot: Slot, lease_id: u64 },
}

/// Why an RM refused an acquire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Refusal {
    /// Another holder's grant is still busy here.
    HeldByOther,
    /// This RM restarted and grants nothing until `until_ms` on its own clock.
    QuietPeriod { until_ms: u64 },
    /// The same holder already has a newer lease or round here (a reordered old message).
    Stale,
    /// `duration_ms` is 0 or longer than this RM's T.
    BadDuration,
}
