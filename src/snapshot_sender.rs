//! Sending the newest snapshot to every RM without letting one slow RM hold up the rest (worker
//! node heartbeats, coordinator query heartbeats, RM-to-RM discovery replication).
//!
//! Each RM has a one-slot, latest-value mailbox and at most one send in flight. A message for an
//! RM whose previous send is still on its way (the RM is slow or unreachable) replaces whatever
//! waits in the slot, and goes out the moment the in-flight send returns. Every message here is a
//! full snapshot, so only the newest matters: a dead RM costs one task and one connection per
//! sender, never a queue, and a state change is never held back longer than the send ahead of it.
//!
//! With [`SnapshotSender::with_metrics`], every send is counted (by kind, target and outcome) and
//! timed, and every snapshot replaced before it could go out is counted as superseded: together
//! they are the sender's side of heartbeat lag (see [`crate::metrics`]).
//!
//! Infrastructure below every role (it used to live in `node/`, which imports every role). Not to
//! be confused with [`crate::rest::gather`], which GETs one question from many nodes and waits
//! for all the answers.

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::metrics::Metrics;
use crate::runtime::http_client::HttpClient;
use crate::runtime::sim_hooks::MessageKind;

struct Slot<T> {
    in_flight: bool,
    waiting: Option<Arc<T>>,
}

pub struct SnapshotSender<T> {
    slots: BTreeMap<String, Arc<Mutex<Slot<T>>>>,
    path: &'static str,
    kind: MessageKind,
    metrics: Option<Metrics>,
}

impl<T: Serialize + Send + Sync + 'static> SnapshotSender<T> {
    pub fn new(path: &'static str, kind: MessageKind) -> Self {
        SnapshotSender { slots: BTreeMap::new(), path, kind, metrics: None }
    }

    /// Counts and times this sender's sends in the node's metrics.
    pub fn with_metrics(mut self, metrics: &Metrics) -> Self {
        self.metrics = Some(metrics.clone());
        self
    }

    /// POSTs `body` to `{uri}{path}` for every uri (now, or right after the send in flight).
    pub fn send(&mut self, client: &HttpClient, uris: Vec<String>, body: Arc<T>, timeout_ms: u64) {
        for uri in uris {
            let slot = self.slots.entry(uri.clone()).or_insert_with(|| Arc::new(Mutex::new(Slot { in_flight: false, waiting: None })));
            {
                let mut state = crate::runtime::lock(slot);
                if state.waiting.replace(body.clone()).is_some() {
                    if let Some(metrics) = &self.metrics {
                        metrics.heartbeat_superseded(self.kind, &uri);
                    }
                }
                if state.in_flight {
                    continue;
                }
                state.in_flight = true;
            }
            let (client, slot, url, kind) = (client.clone(), slot.clone(), format!("{uri}{}", self.path), self.kind);
            let metrics = self.metrics.clone();
            crate::runtime::spawn(async move {
                loop {
                    let next = {
                        let mut state = crate::runtime::lock(&slot);
                        match state.waiting.take() {
                            Some(next) => next,
                            None => {
                                state.in_flight = false;
                                return;
                            }
                        }
                    };
                    let started_ms = metrics.as_ref().map(Metrics::now_ms);
                    let result: Result<serde_json::Value, _> = client.post_json(&url, kind, next.as_ref(), timeout_ms).await;
                    if let (Some(metrics), Some(started_ms)) = (&metrics, started_ms) {
                        metrics.heartbeat_sent(kind, &uri, result.is_ok(), metrics.now_ms().saturating_sub(started_ms));
                    }
                    if let Err(error) = result {
                        tracing::debug!(%error, %url, kind = kind.name(), "send to RM failed");
                    }
                }
            });
        }
    }
}
