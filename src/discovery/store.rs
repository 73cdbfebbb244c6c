//! The discovery store: announcements with a time-to-live, looked up by role. Pure: time is passed
//! in, nothing here does I/O.

use std::collections::BTreeMap;

use crate::config::Role;
use crate::wire::{Announcement, ReplicatedEntry};

/// A hard cap on entries: a misbehaving peer cannot make an RM hold unbounded state.
pub const ENTRIES_MAX: usize = 100_000;

#[derive(Debug, Default)]
pub struct DiscoveryStore {
    entries: BTreeMap<String, Entry>,
}

#[derive(Debug, Clone)]
struct Entry {
    announcement: Announcement,
    expires_at_ms: u64,
}

/// Whether a write changed what the store says (used to decide whether to replicate it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    New,
    Refreshed,
    Ignored,
}

impl DiscoveryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a node's own announcement; it lives for `max_age_ms`.
    pub fn announce(&mut self, announcement: Announcement, now_ms: u64, max_age_ms: u64) -> Change {
        self.put(announcement, now_ms.saturating_add(max_age_ms), now_ms)
    }

    /// Merges entries replicated from a peer RM: an entry is taken when it would live longer than
    /// what we have, so replication converges whatever the order of delivery.
    pub fn merge(&mut self, entries: Vec<ReplicatedEntry>, now_ms: u64, max_age_ms: u64) -> usize {
        let mut changed = 0;
        for entry in entries {
            // A peer cannot extend an entry beyond one max-age: it only relays announcements.
            let remaining_ms = entry.remaining_ms.min(max_age_ms);
            if self.put(entry.announcement, now_ms.saturating_add(remaining_ms), now_ms) != Change::Ignored {
                changed += 1;
            }
        }
        changed
    }

    fn put(&mut self, announcement: Announcement, expires_at_ms: u64, now_ms: u64) -> Change {
        if expires_at_ms <= now_ms {
            return Change::Ignored;
        }
        match self.entries.get_mut(&announcement.node_id) {
            Some(existing) if existing.expires_at_ms >= expires_at_ms && existing.announcement == announcement => {
                Change::Ignored
            }
            Some(existing) => {
                let is_new = existing.expires_at_ms <= now_ms;
                existing.expires_at_ms = existing.expires_at_ms.max(expires_at_ms);
                existing.announcement = announcement;
                if is_new {
                    Change::New
                } else {
                    Change::Refreshed
                }
            }
            None => {
                if self.entries.len() >= ENTRIES_MAX {
                    self.expire(now_ms);
                    if self.entries.len() >= ENTRIES_MAX {
                        return Change::Ignored;
                    }
                }
                self.entries.insert(announcement.node_id.clone(), Entry { announcement, expires_at_ms });
                Change::New
            }
        }
    }

    /// Drops expired entries.
    pub fn expire(&mut self, now_ms: u64) {
        self.entries.retain(|_, entry| entry.expires_at_ms > now_ms);
    }

    /// Live announcements of one role, ordered by node id.
    pub fn by_role(&self, role: Role, now_ms: u64) -> Vec<Announcement> {
        self.entries
            .values()
            .filter(|entry| entry.expires_at_ms > now_ms && entry.announcement.role == role)
            .map(|entry| entry.announcement.clone())
            .collect()
    }

    pub fn is_alive(&self, node_id: &str, now_ms: u64) -> bool {
        self.entries.get(node_id).is_some_and(|entry| entry.expires_at_ms > now_ms)
    }

    /// Every live entry with its remaining lifetime, for replication to peers.
    pub fn snapshot(&self, now_ms: u64) -> Vec<ReplicatedEntry> {
        self.entries
            .values()
            .filter(|entry| entry.expires_at_ms > now_ms)
            .map(|entry| ReplicatedEntry {
                announcement: entry.announcement.clone(),
                remaining_ms: entry.expires_at_ms - now_ms,
            })
            .collect()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn announcement(node_id: &str, role: Role) -> Announcement {
        Announcement { node_id: node_id.into(), role, uri: format!("http://{node_id}"), environment: "test".into(), state: Default::default() }
    }

    #[test]
    fn entries_expire_after_max_age() {
        let mut store = DiscoveryStore::new();
        assert_eq!(store.announce(announcement("w1", Role::Worker), 0, 30_000), Change::New);
        assert_eq!(store.by_role(Role::Worker, 29_999).len(), 1);
        assert!(store.by_role(Role::Worker, 30_000).is_empty());
        assert!(store.by_role(Role::Coordinator, 0).is_empty());
        assert_eq!(store.announce(announcement("w1", Role::Worker), 40_000, 30_000), Change::New);
        assert_eq!(store.announce(announcement("w1", Role::Worker), 41_000, 30_000), Change::Refreshed);
    }

    #[test]
    fn replication_converges_in_any_order() {
        let mut origin = DiscoveryStore::new();
        origin.announce(announcement("w1", Role::Worker), 0, 30_000);
        origin.announce(announcement("c1", Role::Coordinator), 10_000, 30_000);
        let mut peer = DiscoveryStore::new();
        // The peer's clock is far ahead: relative lifetimes keep the expiry right.
        let snapshot = origin.snapshot(10_000);
        assert_eq!(peer.merge(snapshot.clone(), 1_000_000, 30_000), 2);
        assert_eq!(peer.merge(snapshot, 1_000_000, 30_000), 0, "replaying a batch changes nothing");
        assert!(peer.is_alive("w1", 1_019_999));
        assert!(!peer.is_alive("w1", 1_020_000));
        assert!(peer.is_alive("c1", 1_029_999));
        // A stale relay never shortens a fresher entry.
        peer.announce(announcement("w1", Role::Worker), 1_010_000, 30_000);
        peer.merge(vec![ReplicatedEntry { announcement: announcement("w1", Role::Worker), remaining_ms: 5 }], 1_010_000, 30_000);
        assert!(peer.is_alive("w1", 1_039_999));
    }

    #[test]
    fn a_peer_cannot_extend_an_entry_past_max_age() {
        let mut store = DiscoveryStore::new();
        let entry = ReplicatedEntry { announcement: announcement("w1", Role::Worker), remaining_ms: u64::MAX };
        store.merge(vec![entry], 0, 30_000);
        assert!(!store.is_alive("w1", 30_000));
    }
}
