//! Asking many nodes the same question at once (an RM asking every coordinator for its queries):
//! at most [`CONCURRENCY_MAX`] requests in flight, each bounded by a timeout, answers in the
//! order of the URLs so that merged results do not depend on who answered first.
//!
//! (Sending the newest snapshot to every RM, without waiting for answers, is
//! [`crate::snapshot_sender`].)

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::Semaphore;

use crate::runtime::http_client::HttpClient;
use crate::runtime::sim_hooks::MessageKind;

/// Requests in flight at once for one gathering.
pub const CONCURRENCY_MAX: usize = 8;

/// GETs every URL (JSON answers); each result is the decoded answer or why there is none.
pub async fn get_all(client: &HttpClient, urls: Vec<String>, timeout_ms: u64) -> Vec<Result<Value, String>> {
    let permits = Arc::new(Semaphore::new(CONCURRENCY_MAX));
    let mut pending = Vec::with_capacity(urls.len());
    for url in urls {
        let (client, permits) = (client.clone(), permits.clone());
        pending.push(crate::runtime::spawn(async move {
            // The semaphore is never closed; if it were, asking anyway is still bounded.
            let _permit = permits.acquire_owned().await.ok();
            client.get_json::<Value>(&url, MessageKind::Other, timeout_ms).await.map_err(|error| error.to_string())
        }));
    }
    let mut answers = Vec::with_capacity(pending.len());
    for task in pending {
        answers.push(task.await.unwrap_or_else(|error| Err(format!("request task failed: {error}"))));
    }
    answers
}
