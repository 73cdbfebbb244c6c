//! Starting one node of any role from its [`NodeConfig`]. `fireball server`, `fireball local` and
//! the simulator all start nodes through [`start`], so simulation exercises the production path.

pub mod fanout;

use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use std::net::SocketAddr;

use crate::config::{NodeConfig, Role};
use crate::coordinator::Coordinator;
use crate::discovery::announcer::{run_announcer, ResourceManagers};
use crate::resource_manager::ResourceManager;
use crate::runtime::http_client::HttpClient;
use crate::runtime::http_server::{self, ServerHandle};
use crate::runtime::rng::NodeRng;
use crate::runtime::Clock;
use crate::wire::Announcement;
use crate::worker::Worker;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A started node. Dropping it leaves it running; call [`RunningNode::shutdown`] to stop it.
pub struct RunningNode {
    pub node_id: String,
    pub role: Role,
    pub uri: String,
    server: ServerHandle,
    background: Vec<tokio::task::JoinHandle<()>>,
    coordinator: Option<Coordinator>,
}

impl RunningNode {
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    pub fn coordinator(&self) -> Option<&Coordinator> {
        self.coordinator.as_ref()
    }

    /// Graceful stop: a coordinator first finishes what it runs (bounded by `grace_ms`).
    pub async fn shutdown(self, grace_ms: u64) {
        if let Some(coordinator) = &self.coordinator {
            if crate::runtime::timeout_ms(grace_ms, coordinator.drain()).await.is_none() {
                tracing::warn!(node = %self.node_id, "queries still running at shutdown");
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
    let rng = NodeRng::from_entropy();
    let client = HttpClient::new(config.node_id.clone(), config.request_timeout_ms, config.request_retries_max);
    let metrics = crate::metrics::Metrics::new(&config.node_id, config.role, clock.clone());
    let mut background = Vec::new();
    let mut coordinator = None;
    let mut resource_manager = None;
    let role_router = match config.role {
        Role::ResourceManager => {
            let rm = ResourceManager::new(config.clone(), clock.clone(), client.clone(), metrics.clone());
            background.extend(rm.spawn_background());
            resource_manager = Some(rm.clone());
            rm.router()
        }
        Role::Coordinator | Role::Worker => {
            let resource_managers = ResourceManagers::new(config.discovery_uris.clone(), rng.clone());
            // Build the role first: a coordinator with an invalid resource-groups file must not
            // announce itself before refusing to start.
            let router = if config.role == Role::Coordinator {
                let node = Coordinator::new(config.clone(), clock.clone(), rng.clone(), client.clone(), resource_managers.clone(), metrics.clone())?;
                background.extend(node.spawn_background());
                let router = node.router();
                coordinator = Some(node);
                router
            } else {
                let node = Worker::new(config.clone(), clock.clone(), client.clone(), resource_managers.clone(), metrics.clone());
                background.extend(node.spawn_background());
                node.router()
            };
            let announcement = Announcement {
                node_id: config.node_id.clone(),
                role: config.role,
                uri: config.self_uri(),
                environment: config.environment.clone(),
            };
            background.push(crate::runtime::spawn(run_announcer(
                client.clone(),
                clock.clone(),
                resource_managers,
                announcement,
                config.announce_interval_ms,
                config.request_timeout_ms,
            )));
            router
        }
    };
    let router = role_router.merge(info_router(&config, clock.clone())).merge(crate::metrics::http::router(metrics.clone(), coordinator.clone(), resource_manager));
    let router = if config.role == Role::Worker { router } else { router.merge(crate::console::router()) };
    let server = http_server::serve(listener, crate::metrics::http::measure_requests(router, &metrics)).map_err(|error| format!("cannot serve on {bind}: {error}"))?;
    tracing::info!(node = %config.node_id, role = config.role.name(), uri = %config.self_uri(), "node started");
    Ok(RunningNode { node_id: config.node_id.clone(), role: config.role, uri: config.self_uri(), server, background, coordinator })
}

/// `/v1/info`, `/v1/info/state` and `/v1/info/coordinator`, on every node.
fn info_router(config: &NodeConfig, clock: Clock) -> Router {
    let is_coordinator = config.role == Role::Coordinator;
    let environment = config.environment.clone();
    let started_ms = clock.now_ms();
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
        .route("/v1/info/state", get(|| async { Json("ACTIVE") }))
        .route(
            "/v1/info/coordinator",
            get(move || async move {
                let status = if is_coordinator { axum::http::StatusCode::OK } else { axum::http::StatusCode::NOT_FOUND };
                Response::from(status.into_response())
            }),
        )
}
