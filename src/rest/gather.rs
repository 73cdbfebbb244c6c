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

// Real sockets on loopback, real tokio: what is measured is how many requests the server sees
// at once.
#[cfg(all(test, not(madsim)))]
mod tests {
    use super::*;
    use axum::extract::{Path, State};
    use axum::routing::get;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Default)]
    struct Load {
        in_flight: AtomicUsize,
        in_flight_max: AtomicUsize,
    }

    /// Answers its index after a while, noting how many requests were being answered at once.
    async fn answer(State(load): State<Arc<Load>>, Path(index): Path<usize>) -> axum::Json<usize> {
        let now = load.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        load.in_flight_max.fetch_max(now, Ordering::SeqCst);
        crate::runtime::sleep_ms(50).await;
        load.in_flight.fetch_sub(1, Ordering::SeqCst);
        axum::Json(index)
    }

    #[tokio::test]
    async fn at_most_concurrency_max_in_flight_and_answers_in_url_order() {
        let load = Arc::new(Load::default());
        let router = axum::Router::new().route("/answer/{index}", get(answer)).with_state(load.clone());
        let listener = crate::runtime::http_server::bind(([127, 0, 0, 1], 0).into()).await.expect("bind");
        let server = crate::runtime::http_server::serve(listener, router).expect("serve");
        let base = format!("http://{}", server.local_addr());
        let count = CONCURRENCY_MAX * 3;
        let mut urls: Vec<String> = (0..count).map(|index| format!("{base}/answer/{index}")).collect();
        urls.insert(1, format!("{base}/no-such-path"));

        let answers = get_all(&HttpClient::new("gather-test", 10_000, 0), urls, 10_000).await;

        assert_eq!(answers.len(), count + 1);
        assert!(answers[1].is_err(), "a 404 is an error in its own place: {:?}", answers[1]);
        let values: Vec<Value> = answers.into_iter().filter_map(Result::ok).collect();
        let expected: Vec<Value> = (0..count).map(Value::from).collect();
        assert_eq!(values, expected, "answers in the order of the URLs, whoever answered first");
        let in_flight_max = load.in_flight_max.load(Ordering::SeqCst);
        assert!(in_flight_max <= CONCURRENCY_MAX, "{in_flight_max} requests at once, the limit is {CONCURRENCY_MAX}");
        assert!(in_flight_max > 1, "the requests overlap (got {in_flight_max} at once)");
        server.shutdown().await;
    }
}
