//! Starting one node of any role from its [`NodeConfig`]. `fireball server`, `fireball local` and
//! the simulator all start nodes through [`start`], so simulation exercises the production path.

pub mod lifecycle;

use axum::body::Bytes;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use std::net::SocketAddr;

use crate::config::{NodeConfig, Role};
use crate::coordinator::Coordinator;
use crate::discovery::announcer::{run_announcer, ResourceManagers};
use crate::metrics::ScrapeLevels;
use crate::resource_manager::ResourceManager;
use crate::context::NodeContext;
use crate::runtime::http_server::{self, ServerHandle};
use crate::runtime::Clock;
use crate::wire::Announcement;
use crate::worker::Worker;
use lifecycle::{Lifecycle, StateRequest};

pub use crate::config::VERSION;

/// A started node. Dropping it leaves it running; call [`RunningNode::shutdown`] to stop it.
pub struct RunningNode {
    pub node_id: String,
    pub role: Role,
    pub uri: String,
    server: ServerHandle,
    background: Vec<tokio::task::JoinHandle<()>>,
    coordinator: Option<Coordinator>,
    worker: Option<Worker>,
    lifecycle: Lifecycle,
}

/// How often a draining node looks whether its work is done.
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

    /// Graceful stop: a coordinator first finishes what it runs and a worker its tasks (bounded
    /// by `grace_ms`); an RM just stops.
    pub async fn shutdown(self, grace_ms: u64) {
        self.lifecycle.begin_shutdown();
        if let Some(coordinator) = &self.coordinator {
            if crate::runtime::timeout_ms(grace_ms, coordinator.drain()).await.is_none() {
                tracing::warn!(node = %self.node_id, "queries still running at shutdown");
            }
        }
        if let Some(worker) = &self.worker {
            let drained = crate::runtime::timeout_ms(grace_ms, async {
                while worker.unfinished_tasks() > 0 {
                    crate::runtime::sleep_ms(DRAIN_POLL_MS).await;
                }
            });
            if drained.await.is_none() {
                tracing::warn!(node = %self.node_id, tasks = worker.unfinished_tasks(), "tasks still running at shutdown");
            }
        }
        for task in &self.background {
            task.abort();
        }
        self.server.shutdown().await;
    }
}

/// Binds the node's port, starts its role, its announcer and its background loops.
pub async fn start(config: NodeConfig, clock: Clock) -> Result<RunningNode, String> {
    let bind: SocketAddr = format!("{}:{}", config.bind_address, config.http_port)
        .parse()
        .map_err(|_| format!("http-server.bind-address {:?} is not an IP address", config.bind_address))?;
    let listener = http_server::bind(bind).await.map_err(|error| format!("cannot listen on {bind}: {error}"))?;
    let context = NodeContext::new(config.clone(), clock.clone());
    let (client, metrics) = (context.client.clone(), context.metrics.clone());
    let mut background = Vec::new();
    let mut coordinator = None;
    let mut resource_manager = None;
    let mut worker = None;
    let lifecycle = Lifecycle::new();
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
    let router = role_router.merge(info_router(&config, clock.clone(), lifecycle.clone())).merge(crate::metrics::http::router(metrics.clone(), scrape_levels));
    let router = if config.role == Role::Worker { router } else { router.merge(crate::console::router()) };
    let server = http_server::serve(listener, crate::metrics::http::measure_requests(router, &metrics)).map_err(|error| format!("cannot serve on {bind}: {error}"))?;
    tracing::info!(node = %config.node_id, role = config.role.name(), uri = %config.self_uri(), "node started");
    Ok(RunningNode {
        node_id: config.node_id.clone(),
        role: config.role,
        uri: config.self_uri(),
        server,
        background,
        coordinator,
        worker,
        lifecycle,
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
fn info_router(config: &NodeConfig, clock: Clock, lifecycle: Lifecycle) -> Router {
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
            .put(move |body: Bytes| {
                let (lifecycle, node_id) = (lifecycle.clone(), node_id.clone());
                async move { put_state(&lifecycle, &node_id, &body) }
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
