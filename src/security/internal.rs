//! Internal authentication: with `internal-communication.shared-secret` set, every request a node
//! sends carries `X-Presto-Internal-Bearer`, a short-lived HS256 token naming the node (see
//! [`super::jwt`]), and every internal endpoint refuses a request without a valid one (401).
//!
//! Which endpoints are internal is one table, [`is_internal`]: discovery (announcements,
//! replication, service lists), heartbeats and the cluster view, worker tasks and their results,
//! and `PUT /v1/info/state` (which stops a node). Client endpoints stay open to clients; a request
//! to them that does carry an internal token must carry a valid one, and then the handler knows
//! its caller is a node ([`InternalCaller`]).
//!
//! Refusals are counted in `fireball_internal_auth_failures_total{reason}` and logged once per
//! source address (bounded), so a scanner does not flood the log.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;

use super::jwt::{self, Key, TokenError};
use crate::config::SharedSecret;
use crate::metrics::Metrics;
use crate::runtime::http_client::RequestSigner;
use crate::runtime::http_server::PeerAddr;
use crate::runtime::Clock;

/// The header Presto's nodes authenticate each other with.
pub const HEADER: &str = "X-Presto-Internal-Bearer";
/// How long a token is good for (Presto's five minutes).
const TOKEN_LIFETIME_MS: u64 = 5 * 60 * 1_000;
/// A node signs a new token once its current one is this old, so tokens in flight are fresh.
const TOKEN_REUSE_MS: u64 = 60 * 1_000;
/// Clock skew tolerated between two nodes, both ways.
const CLOCK_LEEWAY_MS: u64 = 2 * 60 * 1_000;
/// Sources whose first refusal is logged; past this, refusals are only counted.
const LOGGED_SOURCES_MAX: usize = 1_024;

/// The node that sent a request, as its verified token names it. Present in a request's
/// extensions only when the request carried a valid internal token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InternalCaller(pub String);

/// Does `method path` need an internal token (when a secret is configured)?
pub fn is_internal(method: &Method, path: &str) -> bool {
    const PREFIXES: [&str; 4] = [crate::wire::paths::ANNOUNCE, crate::wire::paths::REPLICATE, crate::wire::paths::SERVICE, crate::wire::paths::TASK];
    const EXACT: [&str; 3] =
        [crate::wire::paths::NODE_HEARTBEAT, crate::wire::paths::QUERY_HEARTBEAT, crate::wire::paths::CLUSTER_VIEW];
    let under = |prefix: &str| path == prefix || path.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/'));
    PREFIXES.iter().any(|prefix| under(prefix))
        || EXACT.contains(&path)
        || is_admin(method, path)
}

/// An admin endpoint (`PUT /v1/info/state`, which stops the node): internal, and also open to an
/// admin principal when client passwords are configured (`security::access`'s
/// `system_information` rules, checked by the handler).
pub fn is_admin(method: &Method, path: &str) -> bool {
    method == Method::PUT && path == "/v1/info/state"
}

/// One node's signer and verifier.
pub struct InternalAuth {
    key: Key,
    node_id: String,
    clock: Clock,
    /// The token this node currently sends, and when (node monotonic ms) it was signed.
    current: Mutex<Option<(u64, String)>>,
    logged_sources: Mutex<BTreeSet<IpAddr>>,
}

impl InternalAuth {
    pub fn new(secret: &SharedSecret, node_id: &str, clock: Clock) -> InternalAuth {
        InternalAuth {
            key: Key::from_secret(secret.expose()),
            node_id: node_id.to_string(),
            clock,
            current: Mutex::new(None),
            logged_sources: Mutex::new(BTreeSet::new()),
        }
    }

    /// The token to send now (signed at most [`TOKEN_REUSE_MS`] ago).
    pub fn token(&self) -> String {
        let now_ms = self.clock.now_ms();
        let mut current = crate::runtime::lock(&self.current);
        match current.as_ref() {
            Some((signed_ms, token)) if now_ms.saturating_sub(*signed_ms) < TOKEN_REUSE_MS => token.clone(),
            _ => {
                let expires_at_s = self.clock.wall_ms().saturating_add(TOKEN_LIFETIME_MS) / 1_000;
                let token = jwt::sign(&self.key, &self.node_id, expires_at_s);
                *current = Some((now_ms, token.clone()));
                token
            }
        }
    }

    /// The node a token names, if it is valid now.
    pub fn verify(&self, token: &str) -> Result<String, TokenError> {
        jwt::verify(&self.key, token, self.clock.wall_ms() / 1_000, TOKEN_LIFETIME_MS / 1_000, CLOCK_LEEWAY_MS / 1_000)
    }

    /// Whether this is the first refusal from `source` (so it is worth a log line).
    fn first_refusal_from(&self, source: Option<IpAddr>) -> bool {
        let Some(source) = source else { return true };
        let mut logged = crate::runtime::lock(&self.logged_sources);
        if logged.contains(&source) || logged.len() >= LOGGED_SOURCES_MAX {
            return false;
        }
        logged.insert(source)
    }
}

impl RequestSigner for InternalAuth {
    fn header(&self) -> (&'static str, String) {
        (HEADER, self.token())
    }
}

/// The signer a node's HTTP client uses, if the node has a secret.
pub fn signer(auth: &Option<Arc<InternalAuth>>) -> Option<Arc<dyn RequestSigner>> {
    auth.clone().map(|auth| auth as Arc<dyn RequestSigner>)
}

/// Wraps all of a node's routes: internal ones refuse requests without a valid token. Without a
/// secret (`auth` is `None`) nothing is checked, as in a Presto cluster without one. With
/// `admins_by_password`, an admin endpoint without a token is passed on to the password check
/// (and then to its handler, which asks the access rules).
pub fn require_internal_auth(router: Router, auth: Option<Arc<InternalAuth>>, admins_by_password: bool, metrics: Metrics) -> Router {
    let Some(auth) = auth else { return router };
    router.layer(axum::middleware::from_fn(move |request: Request, next: Next| {
        let (auth, metrics) = (auth.clone(), metrics.clone());
        async move { check(&auth, admins_by_password, &metrics, request, next).await }
    }))
}

async fn check(auth: &InternalAuth, admins_by_password: bool, metrics: &Metrics, mut request: Request, next: Next) -> Response {
    let token = request.headers().get(HEADER).map(|value| value.to_str().unwrap_or(""));
    let outcome = match token {
        Some(token) => auth.verify(token).map(Some).map_err(|error| (error.label(), error.to_string())),
        None if admins_by_password && is_admin(request.method(), request.uri().path()) => Ok(None),
        None if is_internal(request.method(), request.uri().path()) => {
            Err(("missing", format!("an internal endpoint needs the {HEADER} header")))
        }
        None => Ok(None),
    };
    match outcome {
        Ok(Some(caller)) => {
            request.extensions_mut().insert(InternalCaller(caller));
            next.run(request).await
        }
        Ok(None) => next.run(request).await,
        Err((label, reason)) => {
            metrics.internal_auth_refused(label);
            let source = request.extensions().get::<PeerAddr>().map(|peer| peer.0.ip());
            if auth.first_refusal_from(source) {
                let source = source.map_or_else(|| "unknown".to_string(), |ip| ip.to_string());
                tracing::warn!(%source, method = %request.method(), path = %request.uri().path(), %reason,
                    "refused an unauthenticated internal request (further ones from this source are only counted)");
            }
            (StatusCode::UNAUTHORIZED, format!("internal authentication failed: {reason}\n")).into_response()
        }
    }
}

/// Handlers that take a claimed node id (announcements, heartbeats) check that the token names
/// the same node: with a secret configured, a node speaks only for itself.
pub fn speaks_for(caller: Option<&InternalCaller>, node_id: &str) -> Result<(), String> {
    match caller {
        Some(InternalCaller(subject)) if subject != node_id => {
            Err(format!("node {subject:?} may not speak for node {node_id:?}"))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(secret: &str, node_id: &str) -> InternalAuth {
        InternalAuth::new(&SharedSecret::new(secret.into()).expect("long enough"), node_id, Clock::new())
    }

    #[test]
    fn the_internal_table_covers_node_to_node_endpoints_only() {
        for (method, path) in [
            (Method::POST, "/v1/announcement/worker-1"),
            (Method::POST, "/v1/discovery/replicate"),
            (Method::GET, "/v1/service/worker"),
            (Method::POST, "/v1/resourcemanager/nodeHeartbeat"),
            (Method::POST, "/v1/resourcemanager/queryHeartbeat"),
            (Method::GET, "/v1/resourcemanager/clusterView"),
            (Method::POST, "/v1/task/q.0"),
            (Method::DELETE, "/v1/task/q.0"),
            (Method::GET, "/v1/task/q.0/results/0/3"),
            (Method::PUT, "/v1/info/state"),
        ] {
            assert!(is_internal(&method, path), "{method} {path}");
        }
        for (method, path) in [
            (Method::POST, "/v1/statement"),
            (Method::GET, "/v1/query/q1"),
            (Method::GET, "/v1/info/state"),
            (Method::GET, "/v1/info"),
            (Method::GET, "/v1/cluster"),
            (Method::GET, "/v1/resourcemanager/summary"),
            (Method::GET, "/v1/taskfoo"),
            (Method::GET, "/metrics"),
        ] {
            assert!(!is_internal(&method, path), "{method} {path}");
        }
    }

    #[test]
    fn a_node_verifies_its_peers_token_and_refuses_another_clusters() {
        let worker = auth("the cluster's shared secret", "worker-1");
        let rm = auth("the cluster's shared secret", "rm-1");
        let stranger = auth("another cluster's secret!", "worker-1");
        assert_eq!(rm.verify(&worker.token()), Ok("worker-1".into()));
        assert_eq!(rm.verify(&stranger.token()), Err(TokenError::Signature));
        assert_eq!(worker.token(), worker.token(), "reused while fresh");
    }

    #[test]
    fn a_node_speaks_only_for_itself() {
        let caller = InternalCaller("worker-1".into());
        assert!(speaks_for(Some(&caller), "worker-1").is_ok());
        assert!(speaks_for(Some(&caller), "rm-1").is_err());
        assert!(speaks_for(None, "rm-1").is_ok(), "no secret configured: nothing to check");
    }
}
