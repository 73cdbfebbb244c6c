//! Sending the same message to every RM without letting one slow RM hold up the rest.
//!
//! Each RM has a one-slot mailbox and at most one send in flight. A message for an RM whose
//! previous send is still on its way (the RM is slow or unreachable) replaces whatever waits in the
//! slot, and goes out the moment the in-flight send returns. Every message here is a full snapshot,
//! so only the newest matters: a dead RM costs one task and one connection per sender, never a
//! queue, and a state change is never held back longer than the send ahead of it.

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::runtime::http_client::HttpClient;
use crate::runtime::sim_hooks::MessageKind;

struct Slot<T> {
    in_flight: bool,
    waiting: Option<Arc<T>>,
}

pub struct FanOut<T> {
    slots: BTreeMap<String, Arc<Mutex<Slot<T>>>>,
    path: &'static str,
    kind: MessageKind,
}

impl<T: Serialize + Send + Sync + 'static> FanOut<T> {
    pub fn new(path: &'static str, kind: MessageKind) -> Self {
        FanOut { slots: BTreeMap::new(), path, kind }
    }

    /// POSTs `body` to `{uri}{path}` for every uri (now, or right after the send in flight).
    pub fn send(&mut self, client: &HttpClient, uris: Vec<String>, body: Arc<T>, timeout_ms: u64) {
        for uri in uris {
            let slot = self.slots.entry(uri.clone()).or_insert_with(|| Arc::new(Mutex::new(Slot { in_flight: false, waiting: None })));
            {
                let mut state = slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                state.waiting = Some(body.clone());
                if state.in_flight {
                    continue;
                }
                state.in_flight = true;
            }
            let (client, slot, url, kind) = (client.clone(), slot.clone(), format!("{uri}{}", self.path), self.kind);
            crate::runtime::spawn(async move {
                loop {
                    let next = {
                        let mut state = slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                        match state.waiting.take() {
                            Some(next) => next,
                            None => {
                                state.in_flight = false;
                                return;
                            }
                        }
                    };
                    let result: Result<serde_json::Value, _> = client.post_json(&url, kind, next.as_ref(), timeout_ms).await;
                    if let Err(error) = result {
                        tracing::debug!(%error, %url, kind = kind.name(), "send to RM failed");
                    }
                }
            });
        }
    }
}
