//! The HTTP/1.1 + JSON client every node uses to talk to every other node.
//!
//! - Connections are reused: idle connections wait in a small per-authority pool.
//! - Every attempt has a timeout; a request is attempted at most `1 + retries_max` times with
//!   doubling backoff. Callers only mark a request retryable when repeating it is harmless
//!   (heartbeats carry full snapshots, task creation is idempotent by task id).
//! - Response bodies are capped at `BODY_BYTES_MAX`.
//! - Before each attempt the simulation's fault filter may drop or delay the message. A dropped
//!   message looks to the sender exactly like a lost one: it times out.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Uri};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::sim_hooks::{self, MessageKind, Verdict};
use super::stream::FlushOnWrite;

const BODY_BYTES_MAX: usize = 64 * 1024 * 1024;
const IDLE_CONNECTIONS_PER_AUTHORITY_MAX: usize = 8;
const AUTHORITIES_MAX: usize = 4096;
const BACKOFF_MS_INITIAL: u64 = 50;
const BACKOFF_MS_MAX: u64 = 1_000;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("cannot connect to {authority}: {reason}")]
    Connect { authority: String, reason: String },
    #[error("no answer from {authority} within {timeout_ms} ms")]
    Timeout { authority: String, timeout_ms: u64 },
    #[error("HTTP exchange with {authority} failed: {reason}")]
    Exchange { authority: String, reason: String },
    #[error("{authority} answered {status}: {body}")]
    Status { authority: String, status: u16, body: String },
    #[error("cannot decode the answer from {authority}: {reason}")]
    Decode { authority: String, reason: String },
}

/// One request to send.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: Method,
    pub url: String,
    pub kind: MessageKind,
    pub headers: Vec<(String, String)>,
    pub body: Option<Bytes>,
    pub timeout_ms: Option<u64>,
    pub retries_max: Option<u32>,
}

impl Request {
    pub fn new(method: Method, url: impl Into<String>, kind: MessageKind) -> Self {
        Request { method, url: url.into(), kind, headers: Vec::new(), body: None, timeout_ms: None, retries_max: None }
    }

    pub fn json<T: Serialize>(mut self, body: &T) -> Self {
        // Serializing our own plain structs cannot fail; fall back to `null` rather than panic.
        let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"null".to_vec());
        self.body = Some(Bytes::from(bytes));
        self.headers.push(("content-type".into(), "application/json".into()));
        self
    }

    pub fn text(mut self, body: impl Into<String>) -> Self {
        self.body = Some(Bytes::from(body.into()));
        self
    }

    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn timeout_ms(mut self, timeout_ms: u64) -> Self {
        self.timeout_ms = Some(timeout_ms);
        self
    }

    pub fn retries(mut self, retries_max: u32) -> Self {
        self.retries_max = Some(retries_max);
        self
    }
}

#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }
}

/// Adds a credential to every request a node sends (internal authentication): a trait here, so
/// the seam knows nothing about how requests are signed.
pub trait RequestSigner: Send + Sync {
    /// The header to add (name, value).
    fn header(&self) -> (&'static str, String);
}

#[derive(Clone)]
pub struct HttpClient {
    inner: Arc<Inner>,
}

struct Inner {
    node_name: String,
    signer: Option<Arc<dyn RequestSigner>>,
    default_timeout_ms: u64,
    default_retries_max: u32,
    idle: Mutex<BTreeMap<String, Vec<SendRequest<Full<Bytes>>>>>,
}

impl HttpClient {
    /// `node_name` identifies the sender to the simulation's fault filter.
    pub fn new(node_name: impl Into<String>, default_timeout_ms: u64, default_retries_max: u32) -> Self {
        Self::signed(node_name, default_timeout_ms, default_retries_max, None)
    }

    /// [`HttpClient::new`] whose every request carries `signer`'s header.
    pub fn signed(
        node_name: impl Into<String>,
        default_timeout_ms: u64,
        default_retries_max: u32,
        signer: Option<Arc<dyn RequestSigner>>,
    ) -> Self {
        assert!(default_timeout_ms > 0, "every request needs a timeout");
        HttpClient {
            inner: Arc::new(Inner {
                node_name: node_name.into(),
                signer,
                default_timeout_ms,
                default_retries_max,
                idle: Mutex::new(BTreeMap::new()),
            }),
        }
    }

    pub fn node_name(&self) -> &str {
        &self.inner.node_name
    }

    /// Sends `request`, retrying transport failures (not HTTP error statuses) up to its bound.
    pub async fn send(&self, request: Request) -> Result<Response, ClientError> {
        let uri: Uri = request.url.parse().map_err(|error: hyper::http::uri::InvalidUri| ClientError::InvalidUrl {
            url: request.url.clone(),
            reason: error.to_string(),
        })?;
        let target = Target::from_uri(&request.url, &uri)?;
        let timeout_ms = request.timeout_ms.unwrap_or(self.inner.default_timeout_ms);
        let retries_max = request.retries_max.unwrap_or(self.inner.default_retries_max);
        let mut backoff_ms = BACKOFF_MS_INITIAL;
        let mut attempt = 0;
        loop {
            let result = self.attempt(&request, &target, timeout_ms).await;
            match result {
                Ok(response) => return Ok(response),
                Err(error) if attempt < retries_max => {
                    tracing::debug!(%error, attempt, url = %request.url, "request failed, retrying");
                    attempt += 1;
                    super::sleep_ms(backoff_ms).await;
                    backoff_ms = (backoff_ms * 2).min(BACKOFF_MS_MAX);
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// GETs `url` once (no retries) and decodes a JSON answer; non-2xx statuses are errors.
    ///
    /// Periodic messages (heartbeats, polls, announcements) use the single-attempt forms: the next
    /// period is their retry, and failing over to another RM beats waiting on a dead one.
    pub async fn get_json<T: DeserializeOwned>(&self, url: &str, kind: MessageKind, timeout_ms: u64) -> Result<T, ClientError> {
        self.send_json(Request::new(Method::GET, url, kind).timeout_ms(timeout_ms).retries(0)).await
    }

    /// POSTs `body` as JSON to `url` once (no retries) and decodes a JSON answer.
    pub async fn post_json<B: Serialize, T: DeserializeOwned>(
        &self,
        url: &str,
        kind: MessageKind,
        body: &B,
        timeout_ms: u64,
    ) -> Result<T, ClientError> {
        self.send_json(Request::new(Method::POST, url, kind).json(body).timeout_ms(timeout_ms).retries(0)).await
    }

    /// Sends `request` (with its own retry bound) and decodes a JSON answer.
    pub async fn send_json<T: DeserializeOwned>(&self, request: Request) -> Result<T, ClientError> {
        let url = request.url.clone();
        decode_json(self.send(request).await?, &url)
    }

    async fn attempt(&self, request: &Request, target: &Target, timeout_ms: u64) -> Result<Response, ClientError> {
        match sim_hooks::message_verdict(&self.inner.node_name, &target.authority, request.kind) {
            Verdict::Deliver => {}
            Verdict::Delay { delay_ms } => super::sleep_ms(delay_ms).await,
            Verdict::Drop => {
                super::sleep_ms(timeout_ms).await;
                return Err(ClientError::Timeout { authority: target.authority.clone(), timeout_ms });
            }
        }
        match super::timeout_ms(timeout_ms, self.exchange(request, target)).await {
            Some(result) => result,
            None => Err(ClientError::Timeout { authority: target.authority.clone(), timeout_ms }),
        }
    }

    async fn exchange(&self, request: &Request, target: &Target) -> Result<Response, ClientError> {
        let mut sender = match self.take_idle(&target.authority) {
            Some(sender) => sender,
            None => connect(&target.authority).await?,
        };
        let mut builder = hyper::Request::builder()
            .method(request.method.clone())
            .uri(target.path_and_query.as_str())
            .header(hyper::header::HOST, target.authority.as_str());
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        if let Some(signer) = &self.inner.signer {
            let (name, value) = signer.header();
            builder = builder.header(name, value);
        }
        let body = Full::new(request.body.clone().unwrap_or_default());
        let hyper_request = builder.body(body).map_err(|error| ClientError::InvalidUrl {
            url: request.url.clone(),
            reason: error.to_string(),
        })?;
        let exchange_error = |reason: String| ClientError::Exchange { authority: target.authority.clone(), reason };
        sender.ready().await.map_err(|error| exchange_error(error.to_string()))?;
        let response = sender.send_request(hyper_request).await.map_err(|error| exchange_error(error.to_string()))?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .filter_map(|(name, value)| Some((name.as_str().to_string(), value.to_str().ok()?.to_string())))
            .collect();
        let body = Limited::new(response.into_body(), BODY_BYTES_MAX)
            .collect()
            .await
            .map_err(|error| exchange_error(error.to_string()))?
            .to_bytes();
        self.put_idle(&target.authority, sender);
        Ok(Response { status, headers, body })
    }

    fn take_idle(&self, authority: &str) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = crate::runtime::lock(&self.inner.idle);
        let senders = idle.get_mut(authority)?;
        while let Some(sender) = senders.pop() {
            if !sender.is_closed() {
                return Some(sender);
            }
        }
        None
    }

    fn put_idle(&self, authority: &str, sender: SendRequest<Full<Bytes>>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = crate::runtime::lock(&self.inner.idle);
        if !idle.contains_key(authority) && idle.len() >= AUTHORITIES_MAX {
            return; // bounded: an unusual fan-out just costs a fresh connection next time
        }
        let senders = idle.entry(authority.to_string()).or_default();
        if senders.len() < IDLE_CONNECTIONS_PER_AUTHORITY_MAX {
            senders.push(sender);
        }
    }
}

fn decode_json<T: DeserializeOwned>(response: Response, url: &str) -> Result<T, ClientError> {
    let authority = url.to_string();
    if !(200..300).contains(&response.status) {
        let body = String::from_utf8_lossy(&response.body).chars().take(500).collect();
        return Err(ClientError::Status { authority, status: response.status, body });
    }
    serde_json::from_slice(&response.body).map_err(|error| ClientError::Decode { authority, reason: error.to_string() })
}

async fn connect(authority: &str) -> Result<SendRequest<Full<Bytes>>, ClientError> {
    let connect_error = |reason: String| ClientError::Connect { authority: authority.to_string(), reason };
    let stream = tokio::net::TcpStream::connect(authority).await.map_err(|error| connect_error(error.to_string()))?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(FlushOnWrite::new(stream)))
        .await
        .map_err(|error| connect_error(error.to_string()))?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "client connection ended with an error");
        }
    });
    Ok(sender)
}

struct Target {
    authority: String,
    path_and_query: String,
}

impl Target {
    fn from_uri(url: &str, uri: &Uri) -> Result<Target, ClientError> {
        let invalid = |reason: &str| ClientError::InvalidUrl { url: url.to_string(), reason: reason.to_string() };
        if uri.scheme_str() != Some("http") {
            return Err(invalid("only http:// URLs are supported"));
        }
        let authority = uri.authority().ok_or_else(|| invalid("no host"))?;
        let port = authority.port_u16().unwrap_or(80);
        let host = match authority.host() {
            "localhost" => "127.0.0.1",
            host => host,
        };
        let path_and_query = uri.path_and_query().map(|pq| pq.as_str().to_string()).unwrap_or_else(|| "/".into());
        Ok(Target { authority: format!("{host}:{port}"), path_and_query })
    }
}
