//! A minimal client of the Presto protocol, built on the seam's HTTP client: submit SQL, follow
//! `nextUri` to the end, collect the rows — what presto-python-client does. The simulator's users
//! and the process tests drive the cluster through it, so they exercise the same protocol as
//! real clients. Transport failures and 503s are retried (bounded), like real clients retry.

use hyper::Method;
use serde_json::Value;

use crate::runtime::http_client::{HttpClient, Request};
use crate::runtime::sim_hooks::MessageKind;

const POLLS_MAX: u32 = 1_000_000;
const TRANSPORT_RETRIES_MAX: u32 = 60;
const RETRY_DELAY_MS: u64 = 1_000;
/// Longer than the server's longest long-poll (10 s), so a healthy poll never times out.
const REQUEST_TIMEOUT_MS: u64 = 20_000;

#[derive(Clone, Debug, PartialEq)]
pub struct QueryOutcome {
    pub query_id: Option<String>,
    /// Final state from the last page (`FINISHED`, `FAILED`), or `LOST` if the client gave up.
    pub state: String,
    pub error_name: Option<String>,
    pub error_message: Option<String>,
    pub rows: Vec<Vec<Value>>,
}

pub struct StatementClient {
    http: HttpClient,
    user: String,
    source: String,
    /// Sent as `X-Presto-Session` (e.g. `query_priority=5`).
    session: Vec<(String, String)>,
}

impl StatementClient {
    /// `name` identifies this client to the simulation's fault filter.
    pub fn new(name: &str, user: &str) -> StatementClient {
        StatementClient {
            http: HttpClient::new(name, REQUEST_TIMEOUT_MS, 0),
            user: user.to_string(),
            source: "fireball-client".into(),
            session: Vec::new(),
        }
    }

    pub fn with_source(mut self, source: &str) -> Self {
        self.source = source.to_string();
        self
    }

    pub fn with_session_property(mut self, name: &str, value: &str) -> Self {
        self.session.push((name.to_string(), value.to_string()));
        self
    }

    /// Submits `sql` and returns the first page (so callers can learn the query id early).
    pub async fn submit(&self, coordinator_uri: &str, sql: &str) -> Option<Value> {
        let mut post = Request::new(Method::POST, format!("{coordinator_uri}/v1/statement"), MessageKind::Client)
            .header("X-Presto-User", self.user.as_str())
            .header("X-Presto-Source", self.source.as_str())
            .text(sql);
        if !self.session.is_empty() {
            let pairs: Vec<String> = self.session.iter().map(|(name, value)| format!("{name}={value}")).collect();
            post = post.header("X-Presto-Session", pairs.join(","));
        }
        self.send_with_retries(post).await
    }

    /// Follows `page` to the end of the query.
    pub async fn follow(&self, mut page: Value) -> QueryOutcome {
        let query_id = page.get("id").and_then(Value::as_str).map(String::from);
        let mut rows = Vec::new();
        for _ in 0..POLLS_MAX {
            if let Some(Value::Array(data)) = page.get("data") {
                rows.extend(data.iter().filter_map(|row| row.as_array().cloned()));
            }
            let Some(next_uri) = page.get("nextUri").and_then(Value::as_str).map(String::from) else {
                let state = page.pointer("/stats/state").and_then(Value::as_str).unwrap_or("UNKNOWN").to_string();
                let error_name = page.pointer("/error/errorName").and_then(Value::as_str).map(String::from);
                let error_message = page.pointer("/error/message").and_then(Value::as_str).map(String::from);
                return QueryOutcome { query_id, state, error_name, error_message, rows };
            };
            page = match self.send_with_retries(Request::new(Method::GET, next_uri, MessageKind::Client)).await {
                Some(page) => page,
                None => return lost(query_id),
            };
        }
        lost(query_id)
    }

    pub async fn run(&self, coordinator_uri: &str, sql: &str) -> QueryOutcome {
        match self.submit(coordinator_uri, sql).await {
            Some(page) => self.follow(page).await,
            None => lost(None),
        }
    }

    async fn send_with_retries(&self, request: Request) -> Option<Value> {
        for _ in 0..TRANSPORT_RETRIES_MAX {
            match self.http.send(request.clone()).await {
                Ok(response) if response.status == 200 => return serde_json::from_slice(&response.body).ok(),
                Ok(response) if response.status == 503 => {}
                Ok(response) => {
                    tracing::warn!(status = response.status, body = %String::from_utf8_lossy(&response.body), "error status");
                    return None;
                }
                Err(error) => tracing::debug!(%error, "request failed, retrying"),
            }
            crate::runtime::sleep_ms(RETRY_DELAY_MS).await;
        }
        None
    }
}

fn lost(query_id: Option<String>) -> QueryOutcome {
    QueryOutcome { query_id, state: "LOST".into(), error_name: None, error_message: None, rows: Vec::new() }
}
