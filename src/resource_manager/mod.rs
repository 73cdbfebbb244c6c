//! The resource manager: not on any query's critical path. It aggregates coordinators' query
//! heartbeats and workers' node heartbeats into the cluster view coordinators poll, runs the
//! discovery store, and replicates discovery to its peer RMs (multi-primary: any RM accepts any
//! write, and RMs push what they learn to each other).
//!
//! Replication: a new announcement is pushed to every peer at once (best effort), and every
//! `discovery-server.replication-interval` each RM pushes its whole store to every peer. The
//! periodic push is what lets a restarted RM, or one that was partitioned, catch up.

pub mod cluster_state;
mod rest;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{Path, Query as UrlQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde_json::json;

use cluster_state::{ClusterState, ClusterStateConfig, HeartbeatOutcome};

use crate::config::{NodeConfig, Role};
use crate::discovery::store::Change;
use crate::discovery::DiscoveryStore;
use crate::metrics::HeartbeatReceipt;
use crate::security::internal::{speaks_for, InternalCaller};
use crate::snapshot_sender::SnapshotSender;
use crate::runtime::http_client::HttpClient;
use crate::runtime::sim_hooks::MessageKind;
use crate::runtime::Clock;
use crate::wire::{
    paths, AnnounceResponse, Announcement, ClusterView, NodeHeartbeat, NodeRef, QueryHeartbeat,
    ReplicatedEntry, ReplicationBatch,
};

/// Presto purges expired RM state every 100 ms.
const EXPIRY_INTERVAL_MS: u64 = 100;

#[derive(Clone)]
pub struct ResourceManager {
    inner: Arc<Inner>,
}

struct Inner {
    config: NodeConfig,
    clock: Clock,
    client: HttpClient,
    discovery: Mutex<DiscoveryStore>,
    cluster: Mutex<ClusterState>,
    metrics: crate::metrics::Metrics,
    /// What `/v1/node` and `/v1/node/failed` answer, refreshed from discovery on every expiry tick.
    nodes: Mutex<crate::rest::nodes::NodeTracker>,
    /// Whose queries a requester may see in the cluster-wide lists.
    access: Arc<crate::security::access::AccessControl>,
}

impl ResourceManager {
    pub fn new(context: crate::context::NodeContext) -> Self {
        let crate::context::NodeContext { config, clock, client, metrics, access, .. } = context;
        let cluster = ClusterState::new(ClusterStateConfig {
            query_expiration_timeout_ms: config.query_expiration_timeout_ms,
            node_status_timeout_ms: config.node_status_timeout_ms,
            completed_query_expiration_ms: config.completed_query_expiration_ms,
            max_completed_queries: config.max_completed_queries as usize,
        });
        ResourceManager {
            inner: Arc::new(Inner {
                config,
                clock,
                client,
                discovery: Mutex::new(DiscoveryStore::new()),
                cluster: Mutex::new(cluster),
                metrics,
                nodes: Mutex::new(crate::rest::nodes::NodeTracker::new()),
                access,
            }),
        }
    }

    fn discovery(&self) -> MutexGuard<'_, DiscoveryStore> {
        crate::runtime::lock(&self.inner.discovery)
    }

    fn cluster(&self) -> MutexGuard<'_, ClusterState> {
        crate::runtime::lock(&self.inner.cluster)
    }

    fn now_ms(&self) -> u64 {
        self.inner.clock.now_ms()
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route(&format!("{}/{{node_id}}", paths::ANNOUNCE), post(announce))
            .route(paths::REPLICATE, post(replicate))
            .route(&format!("{}/{{role}}", paths::SERVICE), get(service))
            .route(paths::NODE_HEARTBEAT, post(node_heartbeat))
            .route(paths::QUERY_HEARTBEAT, post(query_heartbeat))
            .route(paths::CLUSTER_VIEW, get(cluster_view))
            .route("/v1/resourceGroupState/{*group}", get(resource_group_state))
            .merge(rest::router())
            .with_state(self.clone())
    }

    pub fn spawn_background(&self) -> Vec<tokio::task::JoinHandle<()>> {
        vec![
            crate::runtime::spawn(run_expiry(self.clone())),
            crate::runtime::spawn(run_self_announcer(self.clone())),
            crate::runtime::spawn(run_replication(self.clone())),
        ]
    }

    fn self_announcement(&self) -> Announcement {
        Announcement {
            node_id: self.inner.config.node_id.clone(),
            role: Role::ResourceManager,
            uri: self.inner.config.self_uri(),
            environment: self.inner.config.environment.clone(),
            state: Default::default(),
        }
    }

    /// Stores an announcement; a new one is pushed to every peer right away.
    fn store_announcement(&self, announcement: Announcement) {
        let now_ms = self.now_ms();
        let max_age_ms = self.inner.config.discovery_max_age_ms;
        let change = self.discovery().announce(announcement.clone(), now_ms, max_age_ms);
        if change == Change::New {
            let entry = ReplicatedEntry { announcement, remaining_ms: max_age_ms };
            self.push_to_peers(vec![entry]);
        }
    }

    fn push_to_peers(&self, entries: Vec<ReplicatedEntry>) {
        let batch = ReplicationBatch { from_node_id: self.inner.config.node_id.clone(), entries };
        for peer in self.peers() {
            let client = self.inner.client.clone();
            let batch = batch.clone();
            let timeout_ms = self.inner.config.request_timeout_ms;
            crate::runtime::spawn(async move {
                let url = format!("{peer}{}", paths::REPLICATE);
                let result: Result<serde_json::Value, _> =
                    client.post_json(&url, MessageKind::DiscoveryReplication, &batch, timeout_ms).await;
                if let Err(error) = result {
                    tracing::debug!(%error, %peer, "discovery replication failed");
                }
            });
        }
    }

    /// Whether `uri` is a resource manager of this cluster: this one or a configured peer.
    fn is_member(&self, uri: &str) -> bool {
        let uri = uri.trim_end_matches('/');
        uri == self.inner.config.self_uri() || self.inner.config.discovery_peers.iter().any(|peer| peer == uri)
    }

    fn peers(&self) -> Vec<String> {
        let own = self.inner.config.self_uri();
        self.inner.config.discovery_peers.iter().filter(|peer| **peer != own).cloned().collect()
    }

    fn node_refs(&self, role: Role) -> Vec<NodeRef> {
        self.discovery()
            .by_role(role, self.now_ms())
            .into_iter()
            .map(|announcement| NodeRef { node_id: announcement.node_id, uri: announcement.uri })
            .collect()
    }

    /// The view one coordinator admits and schedules on (workers and memory only `with_nodes`).
    pub fn cluster_view(&self, excluding: Option<&str>, with_nodes: bool) -> ClusterView {
        let now_ms = self.now_ms();
        let resource_managers = self.node_refs(Role::ResourceManager);
        let coordinators = self.node_refs(Role::Coordinator);
        // A worker that is shutting down finishes its tasks but takes no new ones: coordinators
        // must not schedule on it.
        let draining: std::collections::BTreeSet<String> = self
            .discovery()
            .by_role(Role::Worker, now_ms)
            .into_iter()
            .filter(|worker| worker.state == crate::wire::NodeState::ShuttingDown)
            .map(|worker| worker.node_id)
            .collect();
        let cluster = self.cluster();
        let mut workers = if with_nodes { cluster.workers(now_ms) } else { Vec::new() };
        workers.retain(|worker| !draining.contains(&worker.node_id));
        ClusterView {
            resource_manager_id: self.inner.config.node_id.clone(),
            resource_managers,
            coordinators,
            groups: cluster.group_counts(excluding),
            workers,
            memory: if with_nodes { cluster.memory(now_ms) } else { Default::default() },
            pending_memory_kills: cluster.pending_memory_kills(now_ms),
        }
    }
}

async fn announce(
    State(rm): State<ResourceManager>,
    Path(node_id): Path<String>,
    caller: Option<Extension<InternalCaller>>,
    Json(announcement): Json<Announcement>,
) -> Response {
    if announcement.node_id != node_id {
        return (StatusCode::BAD_REQUEST, format!("announcement for {:?} posted to {node_id:?}", announcement.node_id)).into_response();
    }
    if let Err(message) = speaks_for(caller.as_deref(), &node_id) {
        return (StatusCode::FORBIDDEN, message).into_response();
    }
    // RM membership is configuration, not something a node can announce: an RM receives every
    // heartbeat (and the SQL in them), so a stranger must not become one.
    if announcement.role == Role::ResourceManager && !rm.is_member(&announcement.uri) {
        return (
            StatusCode::FORBIDDEN,
            format!("{} is not in discovery-server.peers: resource managers are configured, not announced", announcement.uri),
        )
            .into_response();
    }
    if announcement.environment != rm.inner.config.environment {
        return (
            StatusCode::BAD_REQUEST,
            format!(
                "node {node_id} is in environment {:?}, this resource manager in {:?}",
                announcement.environment, rm.inner.config.environment
            ),
        )
            .into_response();
    }
    rm.store_announcement(announcement);
    Json(AnnounceResponse { resource_managers: rm.node_refs(Role::ResourceManager) }).into_response()
}

async fn replicate(State(rm): State<ResourceManager>, Json(batch): Json<ReplicationBatch>) -> Response {
    let now_ms = rm.now_ms();
    let environment = rm.inner.config.environment.clone();
    let entries: Vec<ReplicatedEntry> = batch
        .entries
        .into_iter()
        .filter(|entry| entry.announcement.environment == environment)
        .filter(|entry| entry.announcement.role != Role::ResourceManager || rm.is_member(&entry.announcement.uri))
        .collect();
    let merged = rm.discovery().merge(entries, now_ms, rm.inner.config.discovery_max_age_ms);
    Json(json!({ "merged": merged })).into_response()
}

async fn service(State(rm): State<ResourceManager>, Path(role): Path<String>) -> Response {
    let role = match role.as_str() {
        "resource_manager" | "presto-resource-manager" => Role::ResourceManager,
        "coordinator" => Role::Coordinator,
        "worker" => Role::Worker,
        other => return (StatusCode::NOT_FOUND, format!("unknown service type {other:?}")).into_response(),
    };
    let services = rm.discovery().by_role(role, rm.now_ms());
    Json(json!({ "environment": rm.inner.config.environment, "services": services })).into_response()
}

async fn node_heartbeat(State(rm): State<ResourceManager>, caller: Option<Extension<InternalCaller>>, Json(heartbeat): Json<NodeHeartbeat>) -> Response {
    let sender = heartbeat.node_id.clone();
    if let Err(message) = speaks_for(caller.as_deref(), &sender) {
        return (StatusCode::FORBIDDEN, message).into_response();
    }
    let outcome = rm.cluster().apply_node_heartbeat(heartbeat, rm.now_ms());
    rm.inner.metrics.heartbeat_received(MessageKind::NodeHeartbeat, &sender, receipt(&outcome));
    heartbeat_response(outcome)
}

async fn query_heartbeat(State(rm): State<ResourceManager>, caller: Option<Extension<InternalCaller>>, Json(heartbeat): Json<QueryHeartbeat>) -> Response {
    let sender = heartbeat.coordinator_id.clone();
    if let Err(message) = speaks_for(caller.as_deref(), &sender) {
        return (StatusCode::FORBIDDEN, message).into_response();
    }
    let outcome = rm.cluster().apply_query_heartbeat(heartbeat, rm.now_ms());
    rm.inner.metrics.heartbeat_received(MessageKind::QueryHeartbeat, &sender, receipt(&outcome));
    heartbeat_response(outcome)
}

fn heartbeat_response(outcome: HeartbeatOutcome) -> Response {
    match outcome {
        HeartbeatOutcome::Applied => Json(json!({ "outcome": "applied" })).into_response(),
        HeartbeatOutcome::Stale => Json(json!({ "outcome": "stale" })).into_response(),
        HeartbeatOutcome::Refused(reason) => (StatusCode::TOO_MANY_REQUESTS, reason).into_response(),
    }
}

/// How the heartbeat counts in the node's metrics.
fn receipt(outcome: &HeartbeatOutcome) -> HeartbeatReceipt {
    match outcome {
        HeartbeatOutcome::Applied => HeartbeatReceipt::Applied,
        HeartbeatOutcome::Stale => HeartbeatReceipt::Stale,
        HeartbeatOutcome::Refused(_) => HeartbeatReceipt::Refused,
    }
}

async fn cluster_view(State(rm): State<ResourceManager>, UrlQuery(params): UrlQuery<BTreeMap<String, String>>) -> Response {
    let with_nodes = params.get("nodes").is_none_or(|value| value != "false");
    Json(rm.cluster_view(params.get("excluding").map(String::as_str), with_nodes)).into_response()
}

async fn run_expiry(rm: ResourceManager) {
    loop {
        crate::runtime::sleep_ms(EXPIRY_INTERVAL_MS).await;
        let now_ms = rm.now_ms();
        rm.cluster().expire(now_ms);
        rm.discovery().expire(now_ms);
        rm.track_nodes(now_ms);
    }
}

/// RMs are discoverable too: each one announces itself into its own store (and so to its peers).
async fn run_self_announcer(rm: ResourceManager) {
    loop {
        rm.store_announcement(rm.self_announcement());
        crate::runtime::sleep_ms(rm.inner.config.announce_interval_ms).await;
    }
}

async fn run_replication(rm: ResourceManager) {
    let interval_ms = rm.inner.config.discovery_replication_interval_ms;
    let timeout_ms = rm.inner.config.request_timeout_ms.min(interval_ms.max(1_000));
    let mut fan_out = SnapshotSender::new(paths::REPLICATE, MessageKind::DiscoveryReplication).with_metrics(&rm.inner.metrics);
    loop {
        crate::runtime::sleep_ms(interval_ms).await;
        let batch = Arc::new(ReplicationBatch {
            from_node_id: rm.inner.config.node_id.clone(),
            entries: rm.discovery().snapshot(rm.now_ms()),
        });
        fan_out.send(&rm.inner.client, rm.peers(), batch, timeout_ms);
    }
}

/// Cluster-wide `ResourceGroupInfo`: asks every coordinator discovery knows for its local numbers
/// (`includeLocalInfoOnly=true`, concurrently but at most [`crate::rest::gather::CONCURRENCY_MAX`]
/// at once, each bounded by the request timeout), ignores the ones that do not know the group or
/// do not answer, and merges the rest.
async fn resource_group_state(State(rm): State<ResourceManager>, Path(group): Path<String>) -> Response {
    let urls = rm
        .node_refs(Role::Coordinator)
        .into_iter()
        .map(|coordinator| format!("{}/v1/resourceGroupState/{}?includeLocalInfoOnly=true", coordinator.uri, group.trim_start_matches('/')))
        .collect();
    // The shared gathering, with its concurrency limit: a cluster of many coordinators does not
    // open one connection per coordinator at once for every request to this page.
    let answers = crate::rest::gather::get_all(&rm.inner.client, urls, rm.inner.config.request_timeout_ms).await;
    let infos: Vec<serde_json::Value> = answers.into_iter().filter_map(Result::ok).collect();
    match crate::protocol::resource_group_info::merge(&infos) {
        Some(merged) => Json(merged).into_response(),
        None => (StatusCode::NOT_FOUND, format!("Resource group {} not found on any coordinator", group.replace('/', "."))).into_response(),
    }
}
