//! Forwarding one HTTP request to another node, for the REST endpoints only one node can answer:
//! a coordinator hands cluster views to a resource manager (RM), an RM hands one query's requests
//! to the coordinator that owns it (Presto's `ResourceManagerProxy`).
//!
//! - The forwarded request keeps its method, path, query string, body and end-to-end headers; the
//!   answer keeps its status, content type and body, so the client cannot tell it was proxied.
//! - Every hop appends its node id to `X-Fireball-Proxied-By`. A request that already went through
//!   [`HOPS_MAX`] proxies is answered where it is: an owner that does not know a query says so
//!   instead of bouncing it back to an RM forever.
//! - Everything is bounded: one time budget for the whole forward, at most
//!   [`RESOURCE_MANAGERS_TRIED_MAX`] RMs tried, and when none answers a 503 with a message that
//!   says so (clients retry 503s).

use axum::body::Bytes;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::discovery::announcer::ResourceManagers;
use crate::runtime::http_client::{self, ClientError, HttpClient};
use crate::runtime::sim_hooks::MessageKind;
use crate::runtime::Clock;

/// Node ids of the proxies a request went through, comma-separated, oldest first.
pub const PROXIED_BY: &str = "x-fireball-proxied-by";
/// Proxies a request may pass: coordinator → RM → owner is the longest legitimate path.
pub const HOPS_MAX: usize = 2;
/// RMs tried for one request before answering 503.
pub const RESOURCE_MANAGERS_TRIED_MAX: usize = 3;
/// Largest request body forwarded (REST bodies are a state name or a kill message).
pub const BODY_BYTES_MAX: usize = 1024 * 1024;

/// Headers that describe one connection, not the request (RFC 9110 §7.6.1), plus the ones the
/// client recomputes. They are never forwarded.
const HOP_BY_HOP: [&str; 10] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
];

/// How many proxies this request already passed through.
pub fn hops(headers: &HeaderMap) -> usize {
    headers
        .get_all(PROXIED_BY)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter(|node| !node.trim().is_empty())
        .count()
}

/// True when this node may forward the request once more.
pub fn may_forward(headers: &HeaderMap) -> bool {
    hops(headers) < HOPS_MAX
}

/// A request as it will be forwarded.
#[derive(Clone, Debug)]
pub struct Forward {
    pub method: Method,
    pub path_and_query: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Forward {
    /// The request this node received, stamped with `via` (this node's id) in the hop chain.
    pub fn new(method: Method, path_and_query: &str, headers: &HeaderMap, body: Bytes, via: &str) -> Forward {
        let mut chain: Vec<String> = Vec::new();
        let mut forwarded = Vec::new();
        for (name, value) in headers {
            let name = name.as_str();
            let Ok(value) = value.to_str() else { continue };
            if name == PROXIED_BY {
                chain.extend(value.split(',').map(str::trim).filter(|node| !node.is_empty()).map(String::from));
            } else if name != "host" && !HOP_BY_HOP.contains(&name) && !name.eq_ignore_ascii_case(crate::security::internal::HEADER) {
                // The internal token is this hop's credential, not the caller's: the next hop
                // gets this node's own (its client signs every request).
                forwarded.push((name.to_string(), value.to_string()));
            }
        }
        chain.push(via.to_string());
        forwarded.push((PROXIED_BY.to_string(), chain.join(",")));
        Forward { method, path_and_query: path_and_query.to_string(), headers: forwarded, body }
    }

    /// Reads a whole incoming request (body bounded by [`BODY_BYTES_MAX`]).
    pub async fn read(request: axum::extract::Request, via: &str) -> Result<Forward, Response> {
        let (parts, body) = request.into_parts();
        let path_and_query = parts.uri.path_and_query().map(|pq| pq.as_str()).unwrap_or("/").to_string();
        let body = axum::body::to_bytes(body, BODY_BYTES_MAX)
            .await
            .map_err(|_| text(StatusCode::PAYLOAD_TOO_LARGE, format!("request body larger than {BODY_BYTES_MAX} bytes")))?;
        Ok(Forward::new(parts.method, &path_and_query, &parts.headers, body, via))
    }
}

/// Where a request is proxied to, and the metrics that time it.
pub struct Hop<'a> {
    pub client: &'a HttpClient,
    pub metrics: &'a crate::metrics::Metrics,
    pub target_role: crate::config::Role,
}

/// Sends `forward` to the node at `base_uri` once, within `timeout_ms`. Any HTTP answer is the
/// answer (a 404 from the owner is news for the client); only transport failures are errors.
/// Each attempt is timed into `fireball_proxy_request_duration_seconds`.
pub async fn send(hop: &Hop<'_>, base_uri: &str, forward: &Forward, timeout_ms: u64) -> Result<Response, ClientError> {
    let mut request = http_client::Request::new(
        forward.method.clone(),
        format!("{}{}", base_uri.trim_end_matches('/'), forward.path_and_query),
        MessageKind::Other,
    )
    .timeout_ms(timeout_ms.max(1))
    .retries(0);
    for (name, value) in &forward.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    if !forward.body.is_empty() {
        request.body = Some(forward.body.clone());
    }
    let started_ms = hop.metrics.now_ms();
    let answer = hop.client.send(request).await;
    let status_class = answer.as_ref().map_or("error", |answer| crate::metrics::status_class(answer.status));
    hop.metrics.observe_proxy(hop.target_role.name(), status_class, hop.metrics.now_ms().saturating_sub(started_ms));
    Ok(relay(answer?))
}

/// Forwards to a live RM: a random healthy one first, the next on a transport failure, at most
/// [`RESOURCE_MANAGERS_TRIED_MAX`] of them, all within `budget_ms`. 503 when none answered.
pub async fn to_resource_manager(
    hop: &Hop<'_>,
    resource_managers: &ResourceManagers,
    clock: &Clock,
    forward: &Forward,
    budget_ms: u64,
) -> Response {
    let deadline_ms = clock.now_ms().saturating_add(budget_ms);
    let mut failures = Vec::new();
    for uri in resource_managers.poll_order(clock.now_ms()).into_iter().take(RESOURCE_MANAGERS_TRIED_MAX) {
        let remaining_ms = deadline_ms.saturating_sub(clock.now_ms());
        if remaining_ms == 0 {
            failures.push(format!("{uri}: not tried, the {budget_ms} ms budget ran out"));
            break;
        }
        match send(hop, &uri, forward, remaining_ms).await {
            Ok(response) => {
                resource_managers.mark_ok(&uri);
                return response;
            }
            Err(error) => {
                tracing::debug!(%error, rm = %uri, path = %forward.path_and_query, "proxy to RM failed, trying the next");
                resource_managers.mark_failed(&uri, clock.now_ms());
                failures.push(error.to_string());
            }
        }
    }
    tracing::warn!(path = %forward.path_and_query, "no resource manager answered a proxied request");
    text(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("No resource manager answered {} {} ({})", forward.method, forward.path_and_query, failures.join("; ")),
    )
}

/// The answer of the node a request was forwarded to, as this node's answer.
fn relay(answer: http_client::Response) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut response = (status, answer.body.clone()).into_response();
    if let Some(value) = answer.header("content-type").and_then(|value| HeaderValue::from_str(value).ok()) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    } else {
        response.headers_mut().remove(header::CONTENT_TYPE);
    }
    response
}

/// A plain-text answer (what Presto sends for REST errors).
pub fn text(status: StatusCode, message: impl Into<String>) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], message.into()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn hops_are_counted_across_repeated_and_joined_headers() {
        assert_eq!(hops(&headers(&[])), 0);
        assert!(may_forward(&headers(&[])));
        assert_eq!(hops(&headers(&[(PROXIED_BY, "coordinator-1")])), 1);
        assert!(may_forward(&headers(&[(PROXIED_BY, "coordinator-1")])));
        let twice = headers(&[(PROXIED_BY, "coordinator-1, rm-1")]);
        assert_eq!(hops(&twice), 2);
        assert!(!may_forward(&twice), "a request proxied twice is answered where it is");
        assert_eq!(hops(&headers(&[(PROXIED_BY, "a"), (PROXIED_BY, "b,")])), 2);
    }

    #[test]
    fn forwarding_keeps_end_to_end_headers_and_extends_the_chain() {
        let incoming = headers(&[
            ("host", "c1:8080"),
            ("connection", "keep-alive"),
            ("content-length", "5"),
            ("x-presto-user", "alice"),
            ("content-type", "text/plain"),
            (PROXIED_BY, "coordinator-1"),
        ]);
        let forward = Forward::new(Method::PUT, "/v1/query/q1/killed?x=1", &incoming, Bytes::from_static(b"stop!"), "rm-1");
        let names: Vec<&str> = forward.headers.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, vec!["x-presto-user", "content-type", PROXIED_BY]);
        assert_eq!(forward.headers.last().unwrap().1, "coordinator-1,rm-1");
        assert_eq!(forward.path_and_query, "/v1/query/q1/killed?x=1");
    }

    #[test]
    fn relayed_answers_keep_status_type_and_body() {
        let answer = http_client::Response {
            status: 410,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: Bytes::from_static(b"{}"),
        };
        let response = relay(answer);
        assert_eq!(response.status(), StatusCode::GONE);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    }
}
