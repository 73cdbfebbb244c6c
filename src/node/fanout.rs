//! Sending the same message to every RM without letting one slow RM hold up the rest.
//!
//! Each RM gets its own task per send, and at most one send per RM is in flight: while the
//! previous message to an RM is still on its way (the RM is slow or unreachable), newer messages
//! to it are skipped — every heartbeat is a full snapshot, so the next one supersedes them. This
//! bounds the tasks and connections a dead RM can cost to one per sender.

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::runtime::http_client::HttpClient;
use crate::runtime::sim_hooks::MessageKind;

#[derive(Default)]
pub struct FanOut {
    in_flight: BTreeMap<String, Arc<AtomicBool>>,
}

impl FanOut {
    pub fn new() -> Self {
        Self::default()
    }

    /// POSTs `body` to `{uri}{path}` for every uri; returns how many sends were started.
    pub fn send<T: Serialize + Send + Sync + 'static>(
        &mut self,
        client: &HttpClient,
        uris: Vec<String>,
        path: &'static str,
        kind: MessageKind,
        body: Arc<T>,
        timeout_ms: u64,
    ) -> usize {
        let mut started = 0;
        for uri in uris {
            let busy = self.in_flight.entry(uri.clone()).or_insert_with(|| Arc::new(AtomicBool::new(false))).clone();
            if busy.swap(true, Ordering::AcqRel) {
                continue;
            }
            started += 1;
            let client = client.clone();
            let body = body.clone();
            crate::runtime::spawn(async move {
                let url = format!("{uri}{path}");
                let result: Result<serde_json::Value, _> = client.post_json(&url, kind, body.as_ref(), timeout_ms).await;
                if let Err(error) = result {
                    tracing::debug!(%error, %url, kind = kind.name(), "send to RM failed");
                }
                busy.store(false, Ordering::Release);
            });
        }
        started
    }
}
