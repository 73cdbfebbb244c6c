//! The HTTP/1.1 server every node runs: our own accept loop over `tokio::net::TcpListener`, serving
//! an axum `Router` through hyper. Identical in production and under madsim.
//!
//! Bounded: connections are counted in total and per remote address against a budget derived
//! from the fd limit ([`super::connections`]); one over it is answered `503` at once and closed,
//! never left waiting. A connection must send each request head within `HEADER_READ_TIMEOUT_MS`
//! (an idle keep-alive connection too) and its body within `BODY_READ_TIMEOUT_MS`. Shutdown waits
//! at most `SHUTDOWN_GRACE_MS` for open connections to finish.
//!
//! The same loop serves HTTPS in production builds ([`serve_tls`]): the TLS handshake runs in the
//! connection's own task, bounded by `tls::HANDSHAKE_TIMEOUT_MS`, so a slow or failed handshake
//! never holds up the accept loop. Requests that came over TLS carry [`OverTls`].

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use std::net::SocketAddr;
use tower::Service;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use super::connections::{Budget, ConnectionLimits, Refused};
use super::hyper_rt::SeamTimer;
use super::stream::FlushOnWrite;

const SHUTDOWN_GRACE_MS: u64 = 5_000;
const ACCEPT_BACKOFF_MS_MAX: u64 = 1_000;
/// A client must send its request head within this long, or the connection is closed.
const HEADER_READ_TIMEOUT_MS: u64 = 10_000;
/// A client must send its whole request body within this long after the head, or gets `408`:
/// a client that announces a body and never sends it holds a connection only this long.
pub const BODY_READ_TIMEOUT_MS: u64 = 10_000;
/// Request bodies larger than this are refused with `413` (axum's extractors' own default).
pub const REQUEST_BODY_BYTES_MAX: usize = 2 * 1024 * 1024;

/// The address a request came from, in every request's extensions (for logs that name a source).
#[derive(Clone, Copy, Debug)]
pub struct PeerAddr(pub SocketAddr);

/// In a request's extensions when it came over TLS (the HTTPS listener): what tells client
/// authentication that a password may be accepted, and the coordinator which URIs to hand out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OverTls;

/// The router, with the connection's [`PeerAddr`] (and [`OverTls`]) put into each request first.
#[derive(Clone)]
struct WithPeer {
    router: Router,
    peer: PeerAddr,
    over_tls: bool,
}

impl tower::Service<hyper::Request<hyper::body::Incoming>> for WithPeer {
    type Response = <Router as tower::Service<hyper::Request<hyper::body::Incoming>>>::Response;
    type Error = <Router as tower::Service<hyper::Request<hyper::body::Incoming>>>::Error;
    type Future = <Router as tower::Service<hyper::Request<hyper::body::Incoming>>>::Future;

    fn poll_ready(&mut self, context: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        Service::<hyper::Request<hyper::body::Incoming>>::poll_ready(&mut self.router, context)
    }

    fn call(&mut self, mut request: hyper::Request<hyper::body::Incoming>) -> Self::Future {
        request.extensions_mut().insert(self.peer);
        if self.over_tls {
            request.extensions_mut().insert(OverTls);
        }
        self.router.call(request)
    }
}

/// Wraps `router` so that every request's body is read before any handler runs, bounded in size
/// ([`REQUEST_BODY_BYTES_MAX`], `413`) and in time ([`BODY_READ_TIMEOUT_MS`], `408`): no handler
/// ever waits on a slow or silent client (hyper's header timeout covers only the head).
pub fn bound_request_bodies(router: Router) -> Router {
    router.layer(axum::middleware::from_fn(read_body_bounded))
}

async fn read_body_bounded(request: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    use http_body_util::BodyExt;
    let too_large = || {
        let message = format!("request body larger than {REQUEST_BODY_BYTES_MAX} bytes\n");
        (StatusCode::PAYLOAD_TOO_LARGE, message).into_response()
    };
    let declared = request.headers().get(hyper::header::CONTENT_LENGTH).and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > REQUEST_BODY_BYTES_MAX as u64) {
        return too_large();
    }
    let (parts, body) = request.into_parts();
    let limited = http_body_util::Limited::new(body, REQUEST_BODY_BYTES_MAX);
    let bytes = match super::timeout_ms(BODY_READ_TIMEOUT_MS, limited.collect()).await {
        Some(Ok(collected)) => collected.to_bytes(),
        Some(Err(error)) if error.is::<http_body_util::LengthLimitError>() => return too_large(),
        Some(Err(error)) => return (StatusCode::BAD_REQUEST, format!("cannot read the request body: {error}\n")).into_response(),
        None => {
            let message = format!("the request body did not arrive within {BODY_READ_TIMEOUT_MS} ms\n");
            return (StatusCode::REQUEST_TIMEOUT, message).into_response();
        }
    };
    next.run(axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes))).await
}

/// A running server. Dropping it does not stop the server; call [`ServerHandle::shutdown`].
pub struct ServerHandle {
    local_addr: SocketAddr,
    stop: Stop,
    accept_loop: tokio::task::JoinHandle<()>,
}

/// The server's stop flag, which the accept loop and every connection wait on. Not a tokio
/// `watch`: a watch spreads its waiters over 8 notifiers picked with real tokio's thread RNG (not
/// madsim's), so at shutdown two runs of one seed would wake the connections in different orders.
/// `Notify::notify_waiters` wakes them in the order they began waiting.
#[derive(Clone, Default)]
struct Stop(Arc<(AtomicBool, Notify)>);

impl Stop {
    fn stop(&self) {
        self.0 .0.store(true, Ordering::SeqCst);
        self.0 .1.notify_waiters();
    }

    async fn stopped(&self) {
        loop {
            let notified = self.0 .1.notified();
            tokio::pin!(notified);
            // Registered before the flag is read, so a stop in between is not missed.
            notified.as_mut().enable();
            if self.0 .0.load(Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    }
}

impl ServerHandle {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, lets in-flight requests finish (bounded), then returns.
    pub async fn shutdown(self) {
        self.stop.stop();
        let _ = self.accept_loop.await;
    }
}

/// Serves one connection with hyper until it ends or the server stops (then gracefully).
async fn serve_connection<S>(stream: S, service: TowerToHyperService<WithPeer>, stop: Stop)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = http1::Builder::new();
    builder
        .timer(SeamTimer)
        .keep_alive(true)
        .header_read_timeout(std::time::Duration::from_millis(HEADER_READ_TIMEOUT_MS));
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        biased;
        result = conn.as_mut() => result,
        _ = stop.stopped() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(error) = result {
        // A peer that hangs up mid-response is normal (and common under fault injection).
        tracing::debug!(%error, "connection ended with an error");
    }
}

/// Binds `addr` (use port 0 for an ephemeral port).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// How a listener's connections are carried.
#[derive(Clone)]
enum Transport {
    Plain,
    #[cfg(not(madsim))]
    Tls(super::tls::TlsAcceptor),
}

/// Serves `router` on `listener` until [`ServerHandle::shutdown`].
pub fn serve(listener: TcpListener, router: Router) -> std::io::Result<ServerHandle> {
    serve_over(listener, router, Transport::Plain)
}

/// Serves `router` over TLS on `listener` until [`ServerHandle::shutdown`] (production only).
#[cfg(not(madsim))]
pub fn serve_tls(listener: TcpListener, router: Router, acceptor: super::tls::TlsAcceptor) -> std::io::Result<ServerHandle> {
    serve_over(listener, router, Transport::Tls(acceptor))
}

fn serve_over(listener: TcpListener, router: Router, transport: Transport) -> std::io::Result<ServerHandle> {
    let local_addr = listener.local_addr()?;
    let stop = Stop::default();
    let budget = Budget::from_fd_limit(super::connections::fd_limit());
    tracing::info!(%local_addr, connections_max = budget.total_max, per_address_max = budget.per_address_max, "serving");
    let accept_loop = tokio::spawn(accept_loop(listener, router, transport, ConnectionLimits::new(budget), stop.clone()));
    Ok(ServerHandle { local_addr, stop, accept_loop })
}

/// What an over-budget connection gets before it is closed.
const OVERLOADED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\ncontent-length: 38\r\nconnection: close\r\nretry-after: 1\r\n\r\ntoo many connections; try again later\n";
/// How long writing that answer may take.
const OVERLOADED_WRITE_TIMEOUT_MS: u64 = 1_000;

async fn refuse(mut stream: tokio::net::TcpStream, peer: SocketAddr, refused: Refused) {
    use tokio::io::AsyncWriteExt;
    tracing::debug!(%peer, reason = refused.label(), "refused a connection over the budget");
    let _ = super::timeout_ms(OVERLOADED_WRITE_TIMEOUT_MS, stream.write_all(OVERLOADED)).await;
    let _ = super::timeout_ms(OVERLOADED_WRITE_TIMEOUT_MS, stream.shutdown()).await;
}

async fn accept_loop(listener: TcpListener, router: Router, transport: Transport, limits: ConnectionLimits, stop: Stop) {
    let mut backoff_ms = 1;
    loop {
        // `biased`: branches are polled in order (shutdown first). Unbiased `select!` draws from
        // real tokio's thread RNG, which madsim does not seed, and would break determinism.
        let accepted = tokio::select! {
            biased;
            _ = stop.stopped() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok((stream, peer)) => {
                backoff_ms = 1;
                (stream, peer)
            }
            Err(error) => {
                // Typically EMFILE: back off instead of spinning, but never give up on serving.
                tracing::warn!(%error, backoff_ms, "accept failed");
                super::sleep_ms(backoff_ms).await;
                backoff_ms = (backoff_ms * 2).min(ACCEPT_BACKOFF_MS_MAX);
                continue;
            }
        };
        let permit = match limits.admit(peer.ip()) {
            Ok(slot) => slot,
            Err(refused) => {
                tokio::spawn(refuse(stream, peer, refused));
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let conn_stop = stop.clone();
        match &transport {
            Transport::Plain => {
                let service = TowerToHyperService::new(WithPeer { router: router.clone(), peer: PeerAddr(peer), over_tls: false });
                tokio::spawn(async move {
                    let _permit = permit;
                    serve_connection(FlushOnWrite::new(stream), service, conn_stop).await;
                });
            }
            #[cfg(not(madsim))]
            Transport::Tls(acceptor) => {
                let service = TowerToHyperService::new(WithPeer { router: router.clone(), peer: PeerAddr(peer), over_tls: true });
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    let handshake = tokio::select! {
                        biased;
                        _ = conn_stop.stopped() => return,
                        handshake = super::timeout_ms(super::tls::HANDSHAKE_TIMEOUT_MS, acceptor.accept(stream)) => handshake,
                    };
                    match handshake {
                        Some(Ok(tls)) => serve_connection(tls, service, conn_stop).await,
                        // A scanner, a plain-HTTP client on the HTTPS port, an untrusted
                        // certificate on the client's side: only this connection ends.
                        Some(Err(error)) => tracing::debug!(%error, %peer, "TLS handshake failed"),
                        None => tracing::debug!(%peer, timeout_ms = super::tls::HANDSHAKE_TIMEOUT_MS, "TLS handshake timed out"),
                    }
                });
            }
        }
    }
    // Wait (bounded) for open connections to drain.
    let drained = super::timeout_ms(SHUTDOWN_GRACE_MS, limits.idle()).await;
    if drained.is_none() {
        tracing::warn!("shutdown grace period ended with connections still open");
    }
}
