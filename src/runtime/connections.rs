//! How many connections a server holds open, in total and per remote address.
//!
//! A fixed cap taken *before* `accept` (what the server did first) turns a full table into a
//! hang: new peers wait in the listen backlog until their requests time out, and ~1,000 idle
//! keep-alive connections — one per worker of a larger cluster, or one client's loop — locked
//! everyone else out. Instead the server accepts, then asks [`ConnectionLimits::admit`]: over
//! the total budget or the per-address share it answers `503` at once and closes. The budget is
//! derived from the process's file-descriptor limit at start (a quarter is kept for files and the
//! node's own outgoing connections); one address may hold at most a quarter of it, so a single
//! client cannot take all.
//!
//! The count is shared by the connections' tasks: a [`Slot`] gives its place back when dropped.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// Used when the fd limit cannot be read (and in simulation, which has no such limit).
pub const TOTAL_MAX_DEFAULT: usize = 4_096;
/// Never fewer, however low the fd limit: a node must still serve its cluster.
const TOTAL_MIN: usize = 64;
/// Never more, however high the fd limit ("unlimited" reads as a huge number).
const TOTAL_CAP: usize = 1 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    pub total_max: usize,
    pub per_address_max: usize,
}

impl Budget {
    /// Three quarters of `fd_limit` for served connections, a quarter of those per address.
    pub fn from_fd_limit(fd_limit: Option<u64>) -> Budget {
        let total_max = match fd_limit {
            Some(limit) => usize::try_from(limit.saturating_mul(3) / 4).unwrap_or(TOTAL_CAP).clamp(TOTAL_MIN, TOTAL_CAP),
            None => TOTAL_MAX_DEFAULT,
        };
        Budget { total_max, per_address_max: (total_max / 4).max(TOTAL_MIN.min(total_max)) }
    }
}

/// Why a connection was refused (the `reason` label of `fireball_connections_refused_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    Total,
    PerAddress,
}

impl Refused {
    pub fn label(self) -> &'static str {
        match self {
            Refused::Total => "total",
            Refused::PerAddress => "per_address",
        }
    }
}

#[derive(Default)]
struct Counts {
    total: usize,
    by_address: BTreeMap<IpAddr, usize>,
    /// Signalled when the last connection ends (shutdown waits for it).
    idle: Arc<Notify>,
}

#[derive(Clone)]
pub struct ConnectionLimits {
    budget: Budget,
    counts: Arc<Mutex<Counts>>,
}

/// One admitted connection's place; given back on drop.
pub struct Slot {
    address: IpAddr,
    counts: Arc<Mutex<Counts>>,
}

impl ConnectionLimits {
    pub fn new(budget: Budget) -> ConnectionLimits {
        ConnectionLimits { budget, counts: Arc::default() }
    }

    pub fn budget(&self) -> Budget {
        self.budget
    }

    /// Takes a place for a connection from `address`, or says why there is none.
    pub fn admit(&self, address: IpAddr) -> Result<Slot, Refused> {
        let mut counts = super::lock(&self.counts);
        if counts.total >= self.budget.total_max {
            return Err(Refused::Total);
        }
        let held = counts.by_address.get(&address).copied().unwrap_or(0);
        if held >= self.budget.per_address_max {
            return Err(Refused::PerAddress);
        }
        counts.total += 1;
        counts.by_address.insert(address, held + 1);
        Ok(Slot { address, counts: self.counts.clone() })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        super::lock(&self.counts).total
    }

    /// Returns once no connection is open.
    pub async fn idle(&self) {
        loop {
            let idle = super::lock(&self.counts).idle.clone();
            let notified = idle.notified();
            tokio::pin!(notified);
            // Registered before the count is read, so a last close in between is not missed.
            notified.as_mut().enable();
            if self.open() == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = super::lock(&self.counts);
        counts.total = counts.total.saturating_sub(1);
        let remaining = counts.by_address.get(&self.address).copied().unwrap_or(0).saturating_sub(1);
        if remaining == 0 {
            counts.by_address.remove(&self.address);
        } else {
            counts.by_address.insert(self.address, remaining);
        }
        debug_assert_eq!(counts.total, counts.by_address.values().sum::<usize>(), "connection counts agree");
        if counts.total == 0 {
            counts.idle.notify_waiters();
        }
    }
}

/// The soft `RLIMIT_NOFILE` of this process, from `/proc/self/limits` (Linux); `None` elsewhere or
/// when it reads "unlimited".
#[cfg(not(madsim))]
pub fn fd_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|line| line.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files").split_whitespace().next()?.parse().ok()
}

/// The simulation has no fd limit: the default budget.
#[cfg(madsim)]
pub fn fd_limit() -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_follows_the_fd_limit() {
        assert_eq!(Budget::from_fd_limit(Some(20_000)), Budget { total_max: 15_000, per_address_max: 3_750 });
        assert_eq!(Budget::from_fd_limit(Some(10)), Budget { total_max: 64, per_address_max: 64 });
        assert_eq!(Budget::from_fd_limit(None).total_max, TOTAL_MAX_DEFAULT);
        assert_eq!(Budget::from_fd_limit(Some(u64::MAX)).total_max, TOTAL_CAP);
    }

    #[test]
    fn one_address_cannot_take_all_and_places_come_back() {
        let limits = ConnectionLimits::new(Budget { total_max: 3, per_address_max: 2 });
        let (a, b, c): (IpAddr, IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap(), "10.0.0.3".parse().unwrap());
        let first = limits.admit(a).unwrap();
        let _second = limits.admit(a).unwrap();
        assert_eq!(limits.admit(a).err(), Some(Refused::PerAddress));
        let _third = limits.admit(b).unwrap();
        assert_eq!(limits.admit(c).err(), Some(Refused::Total));
        drop(first);
        assert_eq!(limits.open(), 2);
        assert!(limits.admit(c).is_ok(), "a place given back is taken again");
    }
}
