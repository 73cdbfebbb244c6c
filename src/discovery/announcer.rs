//! The node side of discovery: announce to one RM at a time (failing over to the next), and learn
//! the set of RMs from its answer. Coordinators and workers use [`ResourceManagers`] to find every
//! RM they must heartbeat to and a live one to poll.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::runtime::http_client::HttpClient;
use crate::runtime::rng::NodeRng;
use crate::runtime::sim_hooks::MessageKind;
use crate::runtime::Clock;
use crate::wire::{paths, AnnounceResponse, Announcement, NodeRef, NodeState};

/// How long an RM that failed a request is passed over when choosing one to poll.
const SUSPECT_MS: u64 = 1_000;

/// The RMs a node knows: those configured in `discovery.uri` until discovery tells it more.
#[derive(Clone)]
pub struct ResourceManagers {
    inner: Arc<Mutex<Inner>>,
    rng: NodeRng,
}

struct Inner {
    configured: Vec<String>,
    learned: BTreeMap<String, String>,
    suspect_until_ms: BTreeMap<String, u64>,
}

impl ResourceManagers {
    pub fn new(configured: Vec<String>, rng: NodeRng) -> Self {
        assert!(!configured.is_empty(), "a node needs at least one RM (discovery.uri)");
        let inner = Inner { configured, learned: BTreeMap::new(), suspect_until_ms: BTreeMap::new() };
        ResourceManagers { inner: Arc::new(Mutex::new(inner)), rng }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        crate::runtime::lock(&self.inner)
    }

    /// Every RM URI to heartbeat to: the configured ones always, plus every RM discovery listed.
    /// (Learned RMs never replace configured ones: early on, discovery may list only the RM that
    /// answered, and heartbeating to that one alone would hide this node from the others.)
    pub fn all(&self) -> Vec<String> {
        let inner = self.lock();
        let mut uris: std::collections::BTreeSet<String> = inner.configured.iter().cloned().collect();
        uris.extend(inner.learned.values().cloned());
        uris.into_iter().collect()
    }

    /// Replaces the learned RM set with what discovery says (ignored when it says nothing).
    pub fn learn(&self, resource_managers: &[NodeRef]) {
        if resource_managers.is_empty() {
            return;
        }
        let mut inner = self.lock();
        inner.learned = resource_managers.iter().map(|rm| (rm.node_id.clone(), rm.uri.clone())).collect();
    }

    /// RMs in the order to try them for one poll: a random healthy one first (Presto's
    /// `RandomResourceManagerAddressSelector`), then the others, suspects last.
    pub fn poll_order(&self, now_ms: u64) -> Vec<String> {
        let all = self.all();
        if all.is_empty() {
            return all;
        }
        let start = self.rng.index(all.len());
        let rotated: Vec<String> = all[start..].iter().chain(all[..start].iter()).cloned().collect();
        let inner = self.lock();
        let is_suspect = |uri: &String| inner.suspect_until_ms.get(uri).is_some_and(|until| *until > now_ms);
        let (healthy, suspect): (Vec<String>, Vec<String>) = rotated.into_iter().partition(|uri| !is_suspect(uri));
        healthy.into_iter().chain(suspect).collect()
    }

    pub fn mark_failed(&self, uri: &str, now_ms: u64) {
        self.lock().suspect_until_ms.insert(uri.to_string(), now_ms + SUSPECT_MS);
    }

    pub fn mark_ok(&self, uri: &str) {
        self.lock().suspect_until_ms.remove(uri);
    }
}

/// Announces `announcement` every `interval_ms`, forever (until the task is dropped), carrying the
/// node's current `state`; a state change is announced at once, so discovery (and `/v1/node`, and
/// the workers coordinators schedule on) learns of a shutdown without waiting for the interval.
pub async fn run_announcer(
    client: HttpClient,
    clock: Clock,
    resource_managers: ResourceManagers,
    mut announcement: Announcement,
    mut state: tokio::sync::watch::Receiver<NodeState>,
    interval_ms: u64,
    timeout_ms: u64,
) {
    loop {
        announcement.state = *state.borrow_and_update();
        announce_once(&client, &clock, &resource_managers, &announcement, timeout_ms).await;
        let changed = tokio::select! {
            biased;
            changed = state.changed() => changed.is_ok(),
            _ = crate::runtime::sleep_ms(interval_ms) => true,
        };
        if !changed {
            // The lifecycle is gone (the node is stopping): keep the interval, never spin.
            crate::runtime::sleep_ms(interval_ms).await;
        }
    }
}

async fn announce_once(
    client: &HttpClient,
    clock: &Clock,
    resource_managers: &ResourceManagers,
    announcement: &Announcement,
    timeout_ms: u64,
) {
    for uri in resource_managers.poll_order(clock.now_ms()) {
        let url = format!("{uri}{}/{}", paths::ANNOUNCE, announcement.node_id);
        let result: Result<AnnounceResponse, _> =
            client.post_json(&url, MessageKind::Announce, announcement, timeout_ms).await;
        match result {
            Ok(response) => {
                resource_managers.mark_ok(&uri);
                resource_managers.learn(&response.resource_managers);
                return;
            }
            Err(error) => {
                tracing::debug!(%error, rm = %uri, "announcement failed, trying the next RM");
                resource_managers.mark_failed(&uri, clock.now_ms());
            }
        }
    }
    tracing::warn!(node = %announcement.node_id, "no resource manager accepted the announcement");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rm(id: &str) -> NodeRef {
        NodeRef { node_id: id.into(), uri: format!("http://{id}") }
    }

    #[test]
    fn configured_rms_are_kept_when_discovery_lists_fewer() {
        let rms = ResourceManagers::new(vec!["http://rm-1".into(), "http://rm-2".into()], NodeRng::from_seed(1));
        rms.learn(&[rm("rm-1")]);
        assert_eq!(rms.all(), vec!["http://rm-1", "http://rm-2"]);
        rms.learn(&[rm("rm-1"), rm("rm-3")]);
        assert_eq!(rms.all(), vec!["http://rm-1", "http://rm-2", "http://rm-3"]);
    }

    #[test]
    fn suspects_are_polled_last() {
        let rms = ResourceManagers::new(vec!["http://rm-1".into(), "http://rm-2".into()], NodeRng::from_seed(7));
        rms.mark_failed("http://rm-1", 100);
        for _ in 0..10 {
            assert_eq!(rms.poll_order(200), vec!["http://rm-2", "http://rm-1"]);
        }
        assert_eq!(rms.poll_order(1_100).len(), 2, "suspicion expires");
    }
}
