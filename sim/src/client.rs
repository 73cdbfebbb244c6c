//! A Presto-protocol client for simulated users: submits SQL to a coordinator and follows
//! `nextUri` to the end, collecting rows, exactly as presto-python-client does. It retries
//! transport failures (bounded) like the real clients retry 503s.

use fireball::runtime::http_client::{HttpClient, Request};
use fireball::runtime::sim_hooks::MessageKind;
use hyper::Method;
use serde_json::Value;

const POLLS_MAX: u32 = 1_000_000;
const TRANSPORT_RETRIES_MAX: u32 = 60;
const RETRY_DELAY_MS: u64 = 1_000;
const REQUEST_TIMEOUT_MS: u64 = 20_000;

#[derive(Clone, Debug, PartialEq)]
pub struct QueryOutcome {
    pub query_id: Option<String>,
    /// Final state from the last page (`FINISHED`, `FAILED`), or `LOST` if the client gave up.
    pub state: String,
    pub error_name: Option<String>,
    pub rows: Vec<Vec<Value>>,
}

pub struct SimClient {
    http: HttpClient,
    user: String,
}

impl SimClient {
    pub fn new(name: &str, user: &str) -> SimClient {
        SimClient { http: HttpClient::new(name, REQUEST_TIMEOUT_MS, 0), user: user.to_string() }
    }

    pub async fn run(&self, coordinator_uri: &str, sql: &str) -> QueryOutcome {
        let post = Request::new(Method::POST, format!("{coordinator_uri}/v1/statement"), MessageKind::Client)
            .header("X-Presto-User", self.user.as_str())
            .header("X-Presto-Source", "sim")
            .text(sql);
        let mut page = match self.send_with_retries(post).await {
            Some(page) => page,
            None => return lost(None),
        };
        let query_id = page.get("id").and_then(Value::as_str).map(String::from);
        let mut rows = Vec::new();
        for _ in 0..POLLS_MAX {
            if let Some(Value::Array(data)) = page.get("data") {
                rows.extend(data.iter().filter_map(|row| row.as_array().cloned()));
            }
            let Some(next_uri) = page.get("nextUri").and_then(Value::as_str).map(String::from) else {
                let state = page.pointer("/stats/state").and_then(Value::as_str).unwrap_or("UNKNOWN").to_string();
                let error_name = page.pointer("/error/errorName").and_then(Value::as_str).map(String::from);
                return QueryOutcome { query_id, state, error_name, rows };
            };
            page = match self.send_with_retries(Request::new(Method::GET, next_uri, MessageKind::Client)).await {
                Some(page) => page,
                None => return lost(query_id),
            };
        }
        lost(query_id)
    }

    async fn send_with_retries(&self, request: Request) -> Option<Value> {
        for _ in 0..TRANSPORT_RETRIES_MAX {
            match self.http.send(request.clone()).await {
                Ok(response) if response.status == 200 => return serde_json::from_slice(&response.body).ok(),
                Ok(response) if response.status == 503 => {}
                Ok(response) => {
                    tracing::warn!(status = response.status, body = %String::from_utf8_lossy(&response.body), "client got an error status");
                    return None;
                }
                Err(error) => tracing::debug!(%error, "client request failed, retrying"),
            }
            fireball::runtime::sleep_ms(RETRY_DELAY_MS).await;
        }
        None
    }
}

fn lost(query_id: Option<String>) -> QueryOutcome {
    QueryOutcome { query_id, state: "LOST".into(), error_name: None, rows: Vec::new() }
}
