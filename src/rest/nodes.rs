//! `GET /v1/node` and `/v1/node/failed` on an RM: every node discovery knows, and the nodes that
//! stopped announcing. Presto fills these from a failure detector that pings every node; fireball
//! has no pings, so the request counters describe the node's *announcements* to this RM (decayed
//! over about a minute, like Presto's counters), and a node fails when its announcement expires.
//! Pure: time is passed in.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::config::format_duration;
use crate::runtime::clock::format_iso8601;
use crate::wire::Announcement;

/// Failed nodes remembered at most (oldest forgotten first), and for how long.
pub const FAILED_NODES_MAX: usize = 1_000;
pub const FAILED_RETENTION_MS: u64 = 15 * 60_000;
/// Time constant of the announcement counters.
const DECAY_MS: f64 = 60_000.0;
/// An entry refreshed by less than this is the same announcement relayed by a peer RM (its
/// expiry differs by the replication delay), not a new one.
const ANNOUNCEMENT_GAP_MS_MIN: u64 = 500;
/// Failure type reported for a node whose announcement expired.
const EXPIRED: &str = "fireball.AnnouncementExpired";

#[derive(Clone, Debug)]
struct Seen {
    announcement: Announcement,
    first_seen_ms: u64,
    last_announced_ms: u64,
    /// Announcements received, exponentially decayed, as of `last_announced_ms`.
    recent_announcements: f64,
}

#[derive(Clone, Debug)]
struct Failed {
    seen: Seen,
    failed_at_ms: u64,
}

#[derive(Debug, Default)]
pub struct NodeTracker {
    live: BTreeMap<String, Seen>,
    failed: BTreeMap<String, Failed>,
}

impl NodeTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes what discovery holds now: each live announcement with the time this RM last heard
    /// it. Nodes no longer listed have failed; a failed node that announces again is live again.
    pub fn observe(&mut self, live: Vec<(Announcement, u64)>, now_ms: u64) {
        let mut next = BTreeMap::new();
        for (announcement, last_announced_ms) in live {
            let node_id = announcement.node_id.clone();
            let previous = self.live.remove(&node_id).or_else(|| self.failed.remove(&node_id).map(|failed| failed.seen));
            let seen = match previous {
                Some(mut seen) => {
                    if last_announced_ms >= seen.last_announced_ms + ANNOUNCEMENT_GAP_MS_MIN {
                        seen.recent_announcements = decay(seen.recent_announcements, last_announced_ms - seen.last_announced_ms) + 1.0;
                        seen.last_announced_ms = last_announced_ms;
                    }
                    seen.announcement = announcement;
                    seen
                }
                None => Seen { announcement, first_seen_ms: now_ms, last_announced_ms, recent_announcements: 1.0 },
            };
            next.insert(node_id, seen);
        }
        for (node_id, seen) in std::mem::replace(&mut self.live, next) {
            self.failed.insert(node_id, Failed { seen, failed_at_ms: now_ms });
        }
        self.failed.retain(|_, failed| now_ms.saturating_sub(failed.failed_at_ms) < FAILED_RETENTION_MS);
        while self.failed.len() > FAILED_NODES_MAX {
            let oldest = self.failed.iter().min_by_key(|(_, failed)| failed.failed_at_ms).map(|(id, _)| id.clone());
            match oldest {
                Some(node_id) => self.failed.remove(&node_id),
                None => break,
            };
        }
    }

    /// `GET /v1/node`: live nodes, by node id.
    pub fn live_json(&self, now_ms: u64, wall_now_ms: u64) -> Vec<Value> {
        self.live.values().map(|seen| node_json(seen, None, now_ms, wall_now_ms)).collect()
    }

    /// `GET /v1/node/failed`: nodes that stopped announcing (for up to [`FAILED_RETENTION_MS`]).
    pub fn failed_json(&self, now_ms: u64, wall_now_ms: u64) -> Vec<Value> {
        self.failed.values().map(|failed| node_json(&failed.seen, Some(failed.failed_at_ms), now_ms, wall_now_ms)).collect()
    }
}

fn decay(count: f64, elapsed_ms: u64) -> f64 {
    count * (-(elapsed_ms as f64) / DECAY_MS).exp()
}

/// Presto's `NodeResource` stats plus fireball's `nodeId`, `role` and `state`.
fn node_json(seen: &Seen, failed_at_ms: Option<u64>, now_ms: u64, wall_now_ms: u64) -> Value {
    let wall = |at_ms: u64| format_iso8601(wall_now_ms.saturating_sub(now_ms.saturating_sub(at_ms)));
    let requests = decay(seen.recent_announcements, now_ms.saturating_sub(seen.last_announced_ms));
    let (failures, state, by_type) = match failed_at_ms {
        Some(_) => (1.0, "INACTIVE", json!({ EXPIRED: 1.0 })),
        None => (0.0, seen.announcement.state.name(), json!({})),
    };
    let total = requests + failures;
    json!({
        "uri": seen.announcement.uri,
        "age": format_duration(now_ms.saturating_sub(seen.first_seen_ms)),
        "recentRequests": total,
        "recentFailures": failures,
        "recentSuccesses": requests,
        "recentFailureRatio": if total > 0.0 { failures / total } else { 0.0 },
        "lastRequestTime": wall(seen.last_announced_ms),
        "lastResponseTime": wall(failed_at_ms.unwrap_or(seen.last_announced_ms)),
        "recentFailuresByType": by_type,
        "nodeId": seen.announcement.node_id,
        "role": seen.announcement.role.name(),
        "state": state,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Role;
    use crate::wire::NodeState;

    fn announcement(id: &str, role: Role, state: NodeState) -> Announcement {
        Announcement { node_id: id.into(), role, uri: format!("http://{id}"), environment: "test".into(), state }
    }

    #[test]
    fn nodes_fail_when_they_stop_announcing_and_come_back() {
        let mut tracker = NodeTracker::new();
        tracker.observe(vec![(announcement("w1", Role::Worker, NodeState::Active), 0), (announcement("c1", Role::Coordinator, NodeState::ShuttingDown), 0)], 0);
        let live = tracker.live_json(0, 1_000_000);
        assert_eq!(live.len(), 2);
        assert_eq!(live[0]["nodeId"], "c1");
        assert_eq!(live[0]["role"], "coordinator");
        assert_eq!(live[0]["state"], "SHUTTING_DOWN");
        assert_eq!(live[1]["recentFailureRatio"], 0.0);
        for key in ["uri", "age", "recentRequests", "recentFailures", "recentSuccesses", "lastRequestTime", "lastResponseTime", "recentFailuresByType"] {
            assert!(live[1].get(key).is_some(), "{key} missing: {}", live[1]);
        }
        tracker.observe(vec![(announcement("w1", Role::Worker, NodeState::Active), 5_000)], 6_000);
        assert_eq!(tracker.live_json(6_000, 0).len(), 1);
        let failed = tracker.failed_json(6_000, 0);
        assert_eq!(failed.len(), 1);
        assert_eq!((failed[0]["nodeId"].as_str(), failed[0]["state"].as_str()), (Some("c1"), Some("INACTIVE")));
        assert!(failed[0]["recentFailureRatio"].as_f64().unwrap() > 0.0);
        let w1 = &tracker.live_json(6_000, 0)[0];
        assert_eq!(w1["age"], "6.00s", "age counts from when the node was first seen");
        assert!(w1["recentSuccesses"].as_f64().unwrap() > 1.5, "two announcements: {w1}");
        tracker.observe(vec![(announcement("w1", Role::Worker, NodeState::Active), 7_000), (announcement("c1", Role::Coordinator, NodeState::Active), 7_000)], 7_000);
        assert!(tracker.failed_json(7_000, 0).is_empty(), "a node that announces again is live");
        assert_eq!(tracker.live_json(7_000, 0)[0]["age"], "7.00s", "and keeps its age");
    }

    #[test]
    fn failed_nodes_are_forgotten_after_a_while_and_bounded() {
        let mut tracker = NodeTracker::new();
        tracker.observe(vec![(announcement("w1", Role::Worker, NodeState::Active), 0)], 0);
        tracker.observe(vec![], 1);
        assert_eq!(tracker.failed_json(1, 0).len(), 1);
        tracker.observe(vec![], 1 + FAILED_RETENTION_MS);
        assert!(tracker.failed_json(1 + FAILED_RETENTION_MS, 0).is_empty());
        let many: Vec<(Announcement, u64)> =
            (0..FAILED_NODES_MAX + 5).map(|index| (announcement(&format!("w{index}"), Role::Worker, NodeState::Active), 0)).collect();
        tracker.observe(many, 0);
        tracker.observe(vec![], 10);
        assert_eq!(tracker.failed_json(10, 0).len(), FAILED_NODES_MAX);
    }
}
