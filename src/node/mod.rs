//! One node of any role, from start to exit. `fireball server`, `fireball local` and the simulator
//! all run nodes through [`run`] (mini-redis's `server::run(listener, shutdown)`), so simulation
//! exercises the production path, shutdown included.
//!
//! A node stops for one of two reasons, and both end the same way: the `shutdown` future its
//! caller passes completes (a signal, the simulator, a test), or someone sends
//! `PUT /v1/info/state "SHUTTING_DOWN"`. Either way it enters SHUTTING_DOWN (a coordinator refuses
//! new queries, a worker new tasks), finishes what it runs — bounded by one grace policy,
//! `shutdown.grace-period` — and returns.

mod client_security;
pub mod lifecycle;

use axum::body::Bytes;
use axum::http::{Extensions, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use std::future::Future;
use std::net::SocketAddr;
use tokio::net::TcpListener;

use crate::config::{NodeConfig, Role};
use crate::coordinator::Coordinator;
use crate::discovery::announcer::{run_announcer, ResourceManagers};
use crate::metrics::ScrapeLevels;
use crate::resource_manager::ResourceManager;
use crate::context::NodeContext;
use crate::runtime::http_server::{self, ServerHandle};
use crate::rest::identity::Requester;
use crate::security::internal::InternalCaller;
use crate::wire::Announcement;
use crate::worker::Worker;
use lifecycle::{Lifecycle, StateRequest};

pub use crate::config::VERSION;

/// Runs a node until it is asked to stop, then stops it gracefully (see the module docs).
/// `Err` only when the node cannot start (its port is taken, its configuration is refused).
pub async fn run(context: NodeContext, shutdown: impl Future<Output = ()>) -> Result<(), String> {
    run_with(context, shutdown, |_| {}).await
}

/// [`run`], calling `started` once the node serves (to print where it listens, or to start the
/// next node of a local cluster only after this one is up).
pub async fn run_with(
    context: NodeContext,
    shutdown: impl Future<Output = ()>,
    started: impl FnOnce(&RunningNode),
) -> Result<(), String> {
    let listener = bind(&context.config).await?;
    run_on(listener, context, shutdown, started).await
}

/// [`run_with`] on a port its caller already bound ([`bind`]), as mini-redis's
/// `server::run(listener, shutdown)`. The simulator binds before it builds the node's context,
/// so each node draws its seed after its bind as it always did (madsim's bind itself draws a
/// random delay: the other order would give every seed a different run).
pub async fn run_on(
    listener: TcpListener,
    context: NodeContext,
    shutdown: impl Future<Output = ()>,
    started: impl FnOnce(&RunningNode),
) -> Result<(), String> {
    let node = start_on(listener, context).await?;
    started(&node);
    node.run_until(shutdown).await;
    Ok(())
}

/// Binds the node's HTTP port (`http-server.bind-address`, `http-server.http.port`).
pub async fn bind(config: &NodeConfig) -> Result<TcpListener, String> {
    let bind: SocketAddr = format!("{}:{}", config.bind_address, config.http_port)
        .parse()
        .map_err(|_| format!("http-server.bind-address {:?} is not an IP address", config.bind_address))?;
    http_server::bind(bind).await.map_err(|error| format!("cannot listen on {bind}: {error}"))
}

/// A started node. Dropping it leaves it running; [`RunningNode::run_until`] or
/// [`RunningNode::shutdown`] stop it.
pub struct RunningNode {
    pub node_id: String,
    pub role: Role,
    pub uri: String,
    /// `https://…` when the node serves HTTPS (`http-server.https.enabled`).
    pub https_uri: Option<String>,
    server: ServerHandle,
    https_server: Option<ServerHandle>,
    background: Vec<tokio::task::JoinHandle<()>>,
    coordinator: Option<Coordinator>,
    worker: Option<Worker>,
    lifecycle: Lifecycle,
    /// `shutdown.grace-period`: the bound on draining, whatever asked for the shutdown.
    grace_period_ms: u64,
}

/// How often a draining worker looks whether its tasks are done.
const DRAIN_POLL_MS: u64 = 100;

impl RunningNode {
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    pub fn coordinator(&self) -> Option<&Coordinator> {
        self.coordinator.as_ref()
    }

    pub fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }

    /// Returns once someone asked this node to shut down (`PUT /v1/info/state`).
    pub async fn shutdown_requested(&self) {
        self.lifecycle.shutdown_requested().await
    }

    /// Serves until `shutdown` completes or a `PUT /v1/info/state` asks for it, then
    /// [`shutdown`](Self::shutdown)s.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) {
        let asked_by = tokio::select! {
            biased;
            _ = self.lifecycle.shutdown_requested() => "PUT /v1/info/state",
            _ = shutdown => "its caller (a signal)",
        };
        tracing::info!(
            node = %self.node_id,
            asked_by,
            grace_period = %crate::config::format_duration(self.grace_period_ms),
            "shutting down: finishing running work, taking none"
        );
        self.shutdown().await;
    }

    /// Graceful stop: enters SHUTTING_DOWN, then a coordinator finishes its queries and a worker
    /// its tasks, for at most `shutdown.grace-period` (an RM has nothing to finish); then the
    /// background loops and the server stop.
    pub async fn shutdown(self) {
        self.lifecycle.begin_shutdown();
        if crate::runtime::timeout_ms(self.grace_period_ms, self.drain()).await.is_none() {
            if self.coordinator.is_some() {
                tracing::warn!(node = %self.node_id, "shutdown.grace-period is over: stopping with queries still running");
            }
            if let Some(worker) = &self.worker {
                tracing::warn!(node = %self.node_id, tasks = worker.unfinished_tasks(), "shutdown.grace-period is over: stopping with tasks still running");
            }
        }
        for task in &self.background {
            task.abort();
        }
        if let Some(https_server) = self.https_server {
            https_server.shutdown().await;
        }
        self.server.shutdown().await;
        tracing::info!(node = %self.node_id, "stopped");
    }

    /// Returns once the node's own work is done (unbounded: the caller bounds it).
    async fn drain(&self) {
        if let Some(coordinator) = &self.coordinator {
            coordinator.drain().await;
        }
        if let Some(worker) = &self.worker {
            while worker.unfinished_tasks() > 0 {
                crate::runtime::sleep_ms(DRAIN_POLL_MS).await;
            }
        }
    }
}

/// Binds the node's port, starts its role, its announcer and its background loops.
pub async fn start(context: NodeContext) -> Result<RunningNode, String> {
    let listener = bind(&context.config).await?;
    start_on(listener, context).await
}

/// [`start`] on a port already bound.
pub async fn start_on(listener: TcpListener, context: NodeContext) -> Result<RunningNode, String> {
    let config = context.config.clone();
    let clock = context.clock.clone();
    let bind = format!("{}:{}", config.bind_address, config.http_port);
    let (client, metrics) = (context.client.clone(), context.metrics.clone());
    let mut background = Vec::new();
    let mut coordinator = None;
    let mut resource_manager = None;
    let mut worker = None;
    let lifecycle = Lifecycle::new();
    let client_security = client_security::ClientSecurity::prepare(&context).await?;
    let role_router = match config.role {
        Role::ResourceManager => {
            let rm = ResourceManager::new(context.clone());
            background.extend(rm.spawn_background());
            resource_manager = Some(rm.clone());
            rm.router()
        }
        Role::Coordinator | Role::Worker => {
            let resource_managers = ResourceManagers::new(config.discovery_uris.clone(), context.rng.clone());
            // Build the role first: a coordinator with an invalid resource-groups file must not
            // announce itself before refusing to start.
            let router = if config.role == Role::Coordinator {
                let node = Coordinator::new(context.clone(), resource_managers.clone())?;
                background.extend(node.spawn_background());
                let router = node.router();
                let draining = node.clone();
                lifecycle.on_shutdown(move || draining.begin_shutdown());
                coordinator = Some(node);
                router
            } else {
                // Production workers run SQL leaf tasks and synthetic ones; the simulation only the latter.
                #[cfg(not(madsim))]
                let node = Worker::with_executor(context.clone(), resource_managers.clone(), std::sync::Arc::new(crate::engine::leaf::LeafExecutor));
                #[cfg(madsim)]
                let node = Worker::new(context.clone(), resource_managers.clone());
                background.extend(node.spawn_background());
                let router = refuse_tasks_while_shutting_down(node.router(), lifecycle.clone(), config.node_id.clone());
                worker = Some(node);
                router
            };
            let announcement = Announcement {
                node_id: config.node_id.clone(),
                role: config.role,
                uri: config.self_uri(),
                environment: config.environment.clone(),
                state: lifecycle.state(),
            };
            background.push(crate::runtime::spawn(run_announcer(
                client.clone(),
                clock.clone(),
                resource_managers,
                announcement,
                lifecycle.subscribe(),
                config.announce_interval_ms,
                config.request_timeout_ms,
            )));
            router
        }
    };
    // `/metrics` reads the role's levels through this closure, so metrics never import a role.
    let (scrape_coordinator, scrape_resource_manager) = (coordinator.clone(), resource_manager);
    let scrape_levels = move || ScrapeLevels {
        local_groups: scrape_coordinator.as_ref().map(Coordinator::local_counts).unwrap_or_default(),
        cluster: scrape_resource_manager.as_ref().map(|rm| rm.cluster_view(None, true)),
    };
    let router = role_router.merge(info_router(&context, lifecycle.clone())).merge(crate::metrics::http::router(metrics.clone(), scrape_levels));
    let router = if config.role == Role::Worker { router } else { router.merge(crate::console::router()) };
    if context.auth.is_none() {
        tracing::warn!(node = %config.node_id, "internal-communication.shared-secret is not set: anyone who can reach this node can drive it");
    }
    // From the outside in: measuring (refused requests are measured too), authentication (an
    // unauthenticated request is refused before its body is read), then the bounded body read.
    // Client (PASSWORD) authentication sits inside internal authentication, which marks the
    // requests that come from nodes. Both listeners serve the same routes.
    let router = http_server::bound_request_bodies(router);
    let router = client_security.layer(router, &context);
    let admins_by_password = config.client_authentication == crate::config::client_security::ClientAuthentication::Password;
    let router = crate::security::internal::require_internal_auth(router, context.auth.clone(), admins_by_password, metrics.clone());
    let router = crate::metrics::http::measure_requests(router, &metrics);
    let server = http_server::serve(listener, router.clone()).map_err(|error| format!("cannot serve on {bind}: {error}"))?;
    let https_server = client_security.serve_https(router)?;
    let https_uri = https_server.as_ref().and_then(|_| config.self_https_uri());
    tracing::info!(node = %config.node_id, role = config.role.name(), uri = %config.self_uri(), https_uri = https_uri.as_deref().unwrap_or("-"), "node started");
    Ok(RunningNode {
        node_id: config.node_id.clone(),
        role: config.role,
        uri: config.self_uri(),
        https_uri,
        server,
        https_server,
        background,
        coordinator,
        worker,
        lifecycle,
        grace_period_ms: config.shutdown_grace_period_ms,
    })
}

/// A worker that is shutting down finishes its tasks but creates no new ones: `503` (coordinators
/// then place the task on another worker).
fn refuse_tasks_while_shutting_down(router: Router, lifecycle: Lifecycle, node_id: String) -> Router {
    router.route_layer(axum::middleware::from_fn(move |request: axum::extract::Request, next: axum::middleware::Next| {
        let (lifecycle, node_id) = (lifecycle.clone(), node_id.clone());
        async move {
            if request.method() == Method::POST && lifecycle.is_shutting_down() {
                let message = format!("worker {node_id} is shutting down: it takes no new tasks");
                return crate::rest::proxy::text(StatusCode::SERVICE_UNAVAILABLE, message);
            }
            next.run(request).await
        }
    }))
}

/// `/v1/info`, `/v1/info/state` and `/v1/info/coordinator`, on every node.
fn info_router(context: &NodeContext, lifecycle: Lifecycle) -> Router {
    let (config, clock) = (&context.config, context.clock.clone());
    // With a secret, a `PUT /v1/info/state` that reaches the handler without a node's token came
    // through password authentication: its user must be an administrator.
    let (secured, access) = (context.auth.is_some(), context.access.clone());
    let is_coordinator = config.role == Role::Coordinator;
    let environment = config.environment.clone();
    let node_id = config.node_id.clone();
    let started_ms = clock.now_ms();
    let state_lifecycle = lifecycle.clone();
    Router::new()
        .route(
            "/v1/info",
            get(move || {
                let environment = environment.clone();
                let uptime_ms = clock.now_ms().saturating_sub(started_ms);
                async move {
                    Json(json!({
                        "nodeVersion": { "version": VERSION },
                        "environment": environment,
                        "coordinator": is_coordinator,
                        "starting": false,
                        "uptime": crate::config::format_duration(uptime_ms),
                    }))
                }
            }),
        )
        .route(
            "/v1/info/state",
            get(move || {
                let state = state_lifecycle.state();
                async move { Json(state.name()) }
            })
            .put(move |headers: HeaderMap, extensions: Extensions, body: Bytes| {
                let (lifecycle, node_id, access) = (lifecycle.clone(), node_id.clone(), access.clone());
                async move {
                    if secured && extensions.get::<InternalCaller>().is_none() {
                        let admin = match Requester::of(&headers, &extensions) {
                            Requester::User(user) => access.can_write_system_information(&user),
                            Requester::Node | Requester::Anonymous => false,
                        };
                        if !admin {
                            return crate::rest::proxy::text(StatusCode::FORBIDDEN, "Access Denied: Cannot write system information");
                        }
                    }
                    put_state(&lifecycle, &node_id, &body)
                }
            }),
        )
        .route(
            "/v1/info/coordinator",
            get(move || async move {
                let status = if is_coordinator { StatusCode::OK } else { StatusCode::NOT_FOUND };
                Response::from(status.into_response())
            }),
        )
}

/// `PUT /v1/info/state`: `"SHUTTING_DOWN"` starts a graceful shutdown (the process exits once the
/// node's work is done); anything else is refused with the reason.
fn put_state(lifecycle: &Lifecycle, node_id: &str, body: &[u8]) -> Response {
    match lifecycle::parse_state_request(body, lifecycle.state()) {
        Ok(StateRequest::Shutdown) => {
            if lifecycle.begin_shutdown() {
                tracing::info!(node = %node_id, "shutdown requested: finishing running work, taking none");
            }
            StatusCode::OK.into_response()
        }
        Ok(StateRequest::StayActive) => StatusCode::OK.into_response(),
        Err(message) => crate::rest::proxy::text(StatusCode::BAD_REQUEST, message),
    }
}

// Real tokio and loopback sockets: `run` as `fireball server` runs it.
#[cfg(all(test, not(madsim)))]
mod tests {
    use super::*;
    use crate::config::properties::Properties;
    use crate::runtime::http_client::{HttpClient, Request};
    use crate::runtime::sim_hooks::MessageKind;
    use crate::wire::{paths, TaskRequest};
    use tokio::time::{Duration, Instant};

    /// A worker on an ephemeral loopback port; its RM does not exist (it only fails to announce).
    fn worker(grace_period: &str) -> NodeContext {
        let text = format!(
            "node.environment=test\nnode.id=worker-1\nresource-manager-enabled=true\ncoordinator=false\n\
             discovery.uri=http://127.0.0.1:9\nhttp-server.http.port=0\nhttp-server.bind-address=127.0.0.1\n\
             internal-communication.request-timeout=1s\nshutdown.grace-period={grace_period}\n"
        );
        let properties = Properties::parse(&text, "config.properties").expect("properties parse");
        NodeContext::new(NodeConfig::from_properties(&properties).expect("valid config"), crate::runtime::Clock::new()).expect("no access rules")
    }

    /// Runs `context` in the background; returns where it listens and the task running it.
    async fn spawn_run(
        context: NodeContext,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> (String, tokio::task::JoinHandle<Result<(), String>>) {
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let running = tokio::spawn(run_with(context, shutdown, move |node| {
            let _ = started_tx.send(node.local_addr());
        }));
        let address = started_rx.await.expect("the node started");
        (format!("http://{address}"), running)
    }

    async fn put_state(http: &HttpClient, uri: &str) -> u16 {
        let request = Request::new(Method::PUT, format!("{uri}/v1/info/state"), MessageKind::Other).text("\"SHUTTING_DOWN\"");
        http.send(request).await.expect("the node answers").status
    }

    async fn create_task(http: &HttpClient, uri: &str, task_id: &str, run_time_ms: u64) -> u16 {
        let task = TaskRequest {
            query_id: "q1".into(),
            coordinator_id: "coordinator-1".into(),
            task_index: 0,
            run_time_ms,
            memory_bytes: 1 << 20,
            peak_memory_bytes: 0,
            first_row: 0,
            row_count: 1,
            fragment: None,
        };
        let request = Request::new(Method::POST, format!("{uri}{}/{task_id}", paths::TASK), MessageKind::TaskCreate).json(&task);
        http.send(request).await.expect("the worker answers").status
    }

    #[tokio::test]
    async fn the_shutdown_future_stops_the_node_and_frees_its_port() {
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (uri, running) = spawn_run(worker("2m"), async move {
            let _ = stop_rx.await;
        })
        .await;
        let http = HttpClient::new("test", 2_000, 0);
        let state = http.get_json::<String>(&format!("{uri}/v1/info/state"), MessageKind::Other, 2_000).await;
        assert_eq!(state.expect("serving"), "ACTIVE");
        let _ = stop_tx.send(());
        let stopped = tokio::time::timeout(Duration::from_secs(10), running).await.expect("run returns");
        assert_eq!(stopped.expect("run's task"), Ok(()));
        let after = http.get_json::<String>(&format!("{uri}/v1/info/state"), MessageKind::Other, 2_000).await;
        assert!(after.is_err(), "nothing listens once run returned: {after:?}");
    }

    /// Without any signal, `PUT /v1/info/state` stops the node; its running task is finished
    /// first (the drain waits for it) and no new task is taken meanwhile.
    #[tokio::test]
    async fn a_put_to_info_state_drains_the_running_task_then_stops_the_node() {
        let (uri, running) = spawn_run(worker("30s"), std::future::pending()).await;
        let http = HttpClient::new("test", 5_000, 0);
        assert_eq!(create_task(&http, &uri, "q1.0", 800).await, 200);
        let asked = Instant::now(); // determinism: ok (tokio::time::Instant, the runtime's own clock)
        assert_eq!(put_state(&http, &uri).await, 200);
        assert_eq!(create_task(&http, &uri, "q1.1", 10).await, 503, "a draining worker takes no new task");
        // Play the coordinator: wait for the task to finish, then let the worker forget it.
        let status_url = format!("{uri}{}/q1.0", paths::TASK);
        let finished = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let status = http.get_json::<serde_json::Value>(&status_url, MessageKind::TaskStatus, 2_000).await;
                if status.as_ref().is_ok_and(|status| status["state"] == "FINISHED") {
                    return;
                }
                assert!(!running.is_finished(), "run returned while its task was still running: {status:?}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        finished.await.expect("the task finishes");
        assert!(asked.elapsed() >= Duration::from_millis(600), "the task ran its course");
        let delete = Request::new(Method::DELETE, status_url, MessageKind::TaskCancel);
        assert_eq!(http.send(delete).await.expect("deleted").status, 204);
        let stopped = tokio::time::timeout(Duration::from_secs(10), running).await.expect("run returns once the task is gone");
        assert_eq!(stopped.expect("run's task"), Ok(()));
    }

    /// One grace policy: a task longer than `shutdown.grace-period` does not hold the node.
    #[tokio::test]
    async fn the_grace_period_bounds_the_drain() {
        let (uri, running) = spawn_run(worker("1s"), std::future::pending()).await;
        let http = HttpClient::new("test", 5_000, 0);
        assert_eq!(create_task(&http, &uri, "q1.0", 600_000).await, 200);
        let asked = Instant::now(); // determinism: ok (tokio::time::Instant, the runtime's own clock)
        assert_eq!(put_state(&http, &uri).await, 200);
        let stopped = tokio::time::timeout(Duration::from_secs(15), running).await.expect("run returns within the grace period");
        assert_eq!(stopped.expect("run's task"), Ok(()));
        let took = asked.elapsed();
        assert!(took >= Duration::from_millis(900), "it waited for the task first ({took:?})");
    }
}
