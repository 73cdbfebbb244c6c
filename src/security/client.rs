//! Client authentication (`http-server.authentication.type=PASSWORD`), as Presto does it: users
//! send `Authorization: Basic` over HTTPS, checked against the password file
//! ([`super::password`]); the authenticated user is the query's user.
//!
//! Which requests are checked is decided by [`gate`], a pure function:
//! - internal endpoints ([`super::internal::is_internal`]) keep their token check only;
//! - `/v1/info…` and `/metrics` stay open (health checks and scrapers have no password);
//! - a request that carries a valid internal token is a node's (a proxied `/v1/query` hop): the
//!   node it came from already authenticated the user;
//! - every other request must come over HTTPS with a valid password: over plain HTTP it is
//!   refused (403) — with a password, because that password has just crossed the network in
//!   clear; without one (401, with `WWW-Authenticate: Basic realm="Presto"`) or with a wrong one.
//!
//! Once the password is checked, `X-Presto-User` (or `X-Trino-User`) must name the same user, or
//! is set to it when absent (403 "cannot impersonate" otherwise), and `Authorization` is removed
//! so that the password is never forwarded to another node. Refusals are counted in
//! `fireball_client_auth_failures_total{reason}`, checks in
//! `fireball_client_password_checks_total{source}` (`cache` or `bcrypt`).

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine;

use super::access::AccessControl;
use super::internal::{is_admin, is_internal, InternalCaller};
use super::password::{PasswordAuthenticator, PasswordCheck};
use crate::metrics::Metrics;
use crate::runtime::http_server::{OverTls, PeerAddr};

/// The challenge Presto's coordinators send (clients and browsers then offer Basic).
pub const CHALLENGE: &str = "Basic realm=\"Presto\"";
/// Longest `Authorization` header read (a user name and password, base64).
const AUTHORIZATION_BYTES_MAX: usize = 4 * 1024;

/// What a request's `Authorization` header holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credentials {
    None,
    Basic { user: String, password: String },
    /// Present but unusable (another scheme, bad base64, no `:`): the reason, for the client.
    Malformed(&'static str),
}

/// Reads `Authorization: Basic base64(user:password)`.
pub fn read_credentials(value: Option<&HeaderValue>) -> Credentials {
    let Some(value) = value else { return Credentials::None };
    if value.len() > AUTHORIZATION_BYTES_MAX {
        return Credentials::Malformed("the Authorization header is too long");
    }
    let Ok(text) = value.to_str() else { return Credentials::Malformed("the Authorization header is not text") };
    let Some((scheme, encoded)) = text.trim().split_once(' ') else {
        return Credentials::Malformed("the Authorization header has no scheme");
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Credentials::Malformed("only Basic authentication is supported");
    }
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return Credentials::Malformed("the Basic credentials are not base64");
    };
    let Ok(decoded) = String::from_utf8(decoded) else { return Credentials::Malformed("the Basic credentials are not UTF-8") };
    match decoded.split_once(':') {
        Some(("", _)) => Credentials::Malformed("the user name is empty"),
        Some((user, password)) => Credentials::Basic { user: user.to_string(), password: password.to_string() },
        None => Credentials::Malformed("the Basic credentials have no ':' between user and password"),
    }
}

/// Why a request is refused: the status, the metrics label and the message for the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub reason: &'static str,
    pub message: String,
}

impl Refusal {
    fn unauthorized(reason: &'static str, message: impl Into<String>) -> Refusal {
        Refusal { status: StatusCode::UNAUTHORIZED, reason, message: message.into() }
    }

    fn forbidden(reason: &'static str, message: impl Into<String>) -> Refusal {
        Refusal { status: StatusCode::FORBIDDEN, reason, message: message.into() }
    }

    fn into_response(self) -> Response {
        let mut response = (self.status, format!("{}\n", self.message)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(CHALLENGE));
        }
        response
    }
}

/// What to do with a request before any handler sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Gate {
    /// Not a client request, or an open one: pass it on untouched.
    Open,
    /// Check this password, then pass it on as this user.
    Check { user: String, password: String },
    Refuse(Refusal),
}

/// Paths that stay open with PASSWORD authentication: health checks and metrics scrapers.
fn is_open(path: &str) -> bool {
    path == "/metrics" || path == "/v1/info" || path.starts_with("/v1/info/")
}

/// The decision for one request (see the module docs).
pub fn gate(method: &Method, path: &str, over_tls: bool, from_node: bool, credentials: Credentials) -> Gate {
    // An admin endpoint without a node's token is an administrator's request: a password, then
    // the handler's access rules.
    if from_node || (!is_admin(method, path) && (is_internal(method, path) || is_open(path))) {
        return Gate::Open;
    }
    match (over_tls, credentials) {
        (false, Credentials::Basic { .. }) => Gate::Refuse(Refusal::forbidden(
            "insecure_password",
            "Password not allowed for insecure authentication: connect with HTTPS",
        )),
        (false, _) => Gate::Refuse(Refusal::forbidden(
            "insecure_transport",
            "Authentication over HTTP is not enabled: this cluster takes client requests over HTTPS only",
        )),
        (true, Credentials::None) => Gate::Refuse(Refusal::unauthorized("missing", "Unauthorized: a user and password are required")),
        (true, Credentials::Malformed(reason)) => Gate::Refuse(Refusal::unauthorized("malformed", format!("Unauthorized: {reason}"))),
        (true, Credentials::Basic { user, password }) => Gate::Check { user, password },
    }
}

/// The header the session code reads the user from: `X-Trino-User` when the request speaks
/// Trino's headers (any `X-Trino-*`), else `X-Presto-User` — as `SessionContext::from_headers`
/// chooses.
fn user_header(headers: &HeaderMap) -> HeaderName {
    if headers.keys().any(|name| name.as_str().starts_with("x-trino-")) {
        HeaderName::from_static("x-trino-user")
    } else {
        HeaderName::from_static("x-presto-user")
    }
}

/// After a valid password: the user header may only name `principal` (set to it when absent or
/// empty), or a user the access rules let `principal` impersonate (`may_impersonate`). Both
/// dialects' headers are checked: which one the session code reads depends on the request's
/// other headers, so neither may name someone else.
pub fn assume_principal(headers: &mut HeaderMap, principal: &str, may_impersonate: &dyn Fn(&str) -> bool) -> Result<(), Refusal> {
    let mut named = false;
    for name in ["x-presto-user", "x-trino-user"] {
        for value in headers.get_all(name) {
            let claimed = value.to_str().map(str::trim).unwrap_or("\u{fffd}");
            named |= !claimed.is_empty();
            if !claimed.is_empty() && claimed != principal && !(value.to_str().is_ok() && may_impersonate(claimed)) {
                return Err(Refusal::forbidden(
                    "impersonation",
                    format!("Access Denied: User {principal} cannot impersonate user {claimed}"),
                ));
            }
        }
    }
    if !named {
        let Ok(value) = HeaderValue::from_str(principal) else {
            return Err(Refusal::forbidden("impersonation", "Access Denied: the user name cannot be a header value"));
        };
        headers.insert(user_header(headers), value);
    }
    headers.remove(header::AUTHORIZATION);
    Ok(())
}

/// Wraps all of a node's routes with PASSWORD authentication (see the module docs).
pub fn require_password(router: Router, authenticator: Arc<PasswordAuthenticator>, access: Arc<AccessControl>, metrics: Metrics) -> Router {
    router.layer(axum::middleware::from_fn(move |request: Request, next: Next| {
        let (authenticator, access, metrics) = (authenticator.clone(), access.clone(), metrics.clone());
        async move { check(&authenticator, &access, &metrics, request, next).await }
    }))
}

async fn check(authenticator: &PasswordAuthenticator, access: &AccessControl, metrics: &Metrics, mut request: Request, next: Next) -> Response {
    let over_tls = request.extensions().get::<OverTls>().is_some();
    let from_node = request.extensions().get::<InternalCaller>().is_some();
    let credentials = read_credentials(request.headers().get(header::AUTHORIZATION));
    let refusal = match gate(request.method(), request.uri().path(), over_tls, from_node, credentials) {
        Gate::Open => return next.run(request).await,
        Gate::Refuse(refusal) => refusal,
        Gate::Check { user, password } => match checked(authenticator, metrics, &user, &password).await {
            PasswordCheck::Valid { .. } => match assume_principal(request.headers_mut(), &user, &|claimed| access.can_impersonate(&user, claimed)) {
                Ok(()) => return next.run(request).await,
                Err(refusal) => refusal,
            },
            PasswordCheck::UnknownUser => Refusal::unauthorized("unknown_user", "Access Denied: Invalid credentials"),
            PasswordCheck::WrongPassword => Refusal::unauthorized("invalid_password", "Access Denied: Invalid credentials"),
            PasswordCheck::Failed(reason) => {
                tracing::error!(%user, %reason, "a password check failed");
                Refusal::unauthorized("check_failed", "Access Denied: the password could not be checked")
            }
        },
    };
    metrics.client_auth_refused(refusal.reason);
    let source = request.extensions().get::<PeerAddr>().map_or_else(|| "unknown".to_string(), |peer| peer.0.ip().to_string());
    tracing::debug!(%source, method = %request.method(), path = %request.uri().path(), reason = refusal.reason, "refused a client request");
    refusal.into_response()
}

/// One password check, counted by where its answer came from (the cache or a bcrypt run).
async fn checked(authenticator: &PasswordAuthenticator, metrics: &Metrics, user: &str, password: &str) -> PasswordCheck {
    let check = authenticator.check(user, password).await;
    metrics.client_password_checked(if matches!(check, PasswordCheck::Valid { from_cache: true }) { "cache" } else { "bcrypt" });
    check
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user_password: &str) -> HeaderValue {
        let encoded = base64::engine::general_purpose::STANDARD.encode(user_password);
        HeaderValue::from_str(&format!("Basic {encoded}")).unwrap()
    }

    #[test]
    fn reads_basic_credentials_and_names_what_is_wrong_otherwise() {
        assert_eq!(read_credentials(None), Credentials::None);
        assert_eq!(
            read_credentials(Some(&basic("alice:s3:cret"))),
            Credentials::Basic { user: "alice".into(), password: "s3:cret".into() }
        );
        assert_eq!(read_credentials(Some(&HeaderValue::from_static("Bearer abc"))), Credentials::Malformed("only Basic authentication is supported"));
        assert!(matches!(read_credentials(Some(&HeaderValue::from_static("Basic !!!"))), Credentials::Malformed(_)));
        assert!(matches!(read_credentials(Some(&basic("alice"))), Credentials::Malformed(_)));
        assert!(matches!(read_credentials(Some(&basic(":pw"))), Credentials::Malformed(_)));
    }

    #[test]
    fn client_endpoints_need_a_password_over_tls_and_the_rest_keep_their_rules() {
        let alice = || Credentials::Basic { user: "alice".into(), password: "pw".into() };
        let statement = |over_tls, credentials| gate(&Method::POST, "/v1/statement", over_tls, false, credentials);
        assert_eq!(statement(true, alice()), Gate::Check { user: "alice".into(), password: "pw".into() });
        let reason = |gate: Gate| match gate {
            Gate::Refuse(refusal) => (refusal.status.as_u16(), refusal.reason),
            other => panic!("not refused: {other:?}"),
        };
        assert_eq!(reason(statement(true, Credentials::None)), (401, "missing"));
        assert_eq!(reason(statement(true, Credentials::Malformed("x"))), (401, "malformed"));
        assert_eq!(reason(statement(false, alice())), (403, "insecure_password"));
        assert_eq!(reason(statement(false, Credentials::None)), (403, "insecure_transport"));
        assert_eq!(reason(gate(&Method::GET, "/ui/", true, false, Credentials::None)), (401, "missing"));
        for (method, path) in [(Method::GET, "/v1/info"), (Method::GET, "/v1/info/state"), (Method::GET, "/metrics"), (Method::POST, "/v1/task/q.0")] {
            assert_eq!(gate(&method, path, false, false, Credentials::None), Gate::Open, "{method} {path}");
        }
        assert_eq!(gate(&Method::GET, "/v1/query/q1", false, true, Credentials::None), Gate::Open, "a node's proxied hop");
        // Stopping a node: a node's token, or an administrator's password over TLS.
        assert_eq!(gate(&Method::PUT, "/v1/info/state", false, true, Credentials::None), Gate::Open);
        assert!(matches!(gate(&Method::PUT, "/v1/info/state", false, false, Credentials::None), Gate::Refuse(_)));
        let admin = Credentials::Basic { user: "root".into(), password: "pw".into() };
        assert_eq!(gate(&Method::PUT, "/v1/info/state", true, false, admin), Gate::Check { user: "root".into(), password: "pw".into() });
    }

    #[test]
    fn the_principal_is_the_user_and_cannot_name_another() {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, basic("alice:pw"));
        let nobody = |_: &str| false;
        assume_principal(&mut headers, "alice", &nobody).unwrap();
        assert_eq!(headers.get("x-presto-user").unwrap(), "alice");
        assert!(headers.get(header::AUTHORIZATION).is_none(), "the password is not passed on");
        let mut trino = HeaderMap::new();
        trino.insert("x-trino-source", HeaderValue::from_static("cli"));
        assume_principal(&mut trino, "alice", &nobody).unwrap();
        assert_eq!(trino.get("x-trino-user").unwrap(), "alice");
        let mut same = HeaderMap::new();
        same.insert("x-presto-user", HeaderValue::from_static("alice"));
        assert!(assume_principal(&mut same, "alice", &nobody).is_ok());
        for name in ["x-presto-user", "x-trino-user"] {
            let mut other = HeaderMap::new();
            other.insert(name, HeaderValue::from_static("bob"));
            let refusal = assume_principal(&mut other, "alice", &nobody).unwrap_err();
            assert_eq!((refusal.status, refusal.message.as_str()), (StatusCode::FORBIDDEN, "Access Denied: User alice cannot impersonate user bob"));
            // An impersonation rule lets alice run as bob: the header stays bob.
            let bob_only = |claimed: &str| claimed == "bob";
            assume_principal(&mut other, "alice", &bob_only).unwrap();
            assert_eq!(other.get(name).unwrap(), "bob");
        }
    }
}
