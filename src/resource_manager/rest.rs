//! The RM's cluster REST endpoints (Presto's `Distributed*Resource`s): cluster-wide views built
//! from heartbeats, and one query's requests proxied to the coordinator that owns it.

use std::collections::BTreeMap;

use axum::extract::{Path, Query as UrlQuery, Request, State};
use axum::http::{Extensions, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde_json::Value;

use super::ResourceManager;
use crate::config::Role;
use crate::query_id::{self, CoordinatorSuffix};
use crate::rest::cluster_json::{self, OwnedQuery, RmSummary};
use crate::rest::gather;
use crate::rest::identity::Requester;
use crate::security::access::QueryAccess;
use crate::rest::proxy::{self, Forward};
use crate::wire::QueryState;

pub fn router() -> Router<ResourceManager> {
    Router::new()
        .route("/v1/query", get(list_queries))
        .route("/v1/query/{query_id}", get(query_at_owner).delete(query_at_owner))
        .route("/v1/query/{query_id}/killed", put(query_at_owner))
        .route("/v1/query/{query_id}/preempted", put(query_at_owner))
        .route("/v1/queryState", get(query_state))
        .route("/v1/cluster", get(cluster_stats))
        .route("/v1/cluster/memory", get(cluster_memory))
        .route("/v1/cluster/workerMemory", get(worker_memory))
        .route("/v1/cluster/resourceGroups", get(resource_groups))
        .route("/v1/cluster/resourceManagers", get(resource_managers))
        .route("/v1/resourcemanager/summary", get(summary))
        .route("/v1/node", get(nodes))
        .route("/v1/node/failed", get(failed_nodes))
}

impl ResourceManager {
    /// Every query the RM holds, with its owner's id.
    fn owned_queries(&self) -> Vec<OwnedQuery> {
        let cluster = self.cluster();
        let ids: BTreeMap<String, String> = cluster.coordinators().into_iter().map(|(id, uri)| (uri, id)).collect();
        cluster
            .queries()
            .into_iter()
            .map(|(uri, summary)| OwnedQuery {
                coordinator_id: ids.get(&uri).cloned().unwrap_or_default(),
                coordinator_uri: uri,
                summary,
            })
            .collect()
    }

    /// The coordinator whose id suffix ends `query_id`: a query created moments ago may not have
    /// reached this RM in a heartbeat yet, but its id already names its owner.
    fn owner_by_query_id_suffix(&self, query_id: &str) -> Option<(String, String)> {
        self.node_refs(Role::Coordinator)
            .into_iter()
            .find(|coordinator| query_id::created_by(query_id, &CoordinatorSuffix::of_node(&coordinator.node_id)))
            .map(|coordinator| (coordinator.node_id, coordinator.uri))
    }

    /// Refreshes what `/v1/node` answers from the discovery store.
    pub(super) fn track_nodes(&self, now_ms: u64) {
        let max_age_ms = self.inner.config.discovery_max_age_ms;
        let live = self
            .discovery()
            .snapshot(now_ms)
            .into_iter()
            .map(|entry| {
                let since_ms = max_age_ms.saturating_sub(entry.remaining_ms);
                (entry.announcement, now_ms.saturating_sub(since_ms))
            })
            .collect();
        crate::runtime::lock(&self.inner.nodes).observe(live, now_ms);
    }

    fn own_summary(&self) -> RmSummary {
        let now_ms = self.now_ms();
        let coordinators = self.node_refs(Role::Coordinator).len();
        let cluster = self.cluster();
        let memory = cluster.memory(now_ms);
        let queries = cluster.queries();
        let count = |state: QueryState| queries.iter().filter(|(_, query)| query.state == state).count();
        RmSummary {
            node_id: self.inner.config.node_id.clone(),
            uri: self.inner.config.self_uri(),
            coordinators,
            workers: cluster.workers(now_ms).len(),
            running_queries: count(QueryState::Running),
            queued_queries: count(QueryState::Queued),
            reserved_memory_bytes: memory.reserved_bytes,
            total_memory_bytes: memory.total_bytes,
            blocked_nodes: memory.blocked_nodes,
        }
    }

    /// Timeout of a request the RM makes while a proxying coordinator waits for it: half the
    /// request timeout, so the RM answers (with an error if need be) before the coordinator
    /// gives up on it.
    fn second_hop_timeout_ms(&self) -> u64 {
        (self.inner.config.request_timeout_ms / 2).max(1)
    }
}

fn bad_request(message: String) -> Response {
    proxy::text(StatusCode::BAD_REQUEST, message)
}

/// `GET /v1/query`: every query of the cluster the requester may see.
async fn list_queries(
    State(rm): State<ResourceManager>,
    UrlQuery(params): UrlQuery<BTreeMap<String, String>>,
    headers: HeaderMap,
    extensions: Extensions,
) -> Response {
    let filter = match cluster_json::parse_query_filter(&params) {
        Ok(filter) => filter,
        Err(message) => return bad_request(message),
    };
    let requester = Requester::of(&headers, &extensions);
    let mut queries = rm.owned_queries();
    queries.retain(|query| requester.may(&rm.inner.access, QueryAccess::View, &query.summary.user));
    let wall_now_ms = rm.inner.clock.wall_ms();
    Json(cluster_json::query_list(&queries, &filter, wall_now_ms)).into_response()
}

/// `GET|DELETE /v1/query/{id}`, `PUT /v1/query/{id}/killed|preempted`: answered by the owner.
async fn query_at_owner(State(rm): State<ResourceManager>, Path(query_id): Path<String>, request: Request) -> Response {
    // The owner's URI comes from discovery, never from a heartbeat's body: the RM only ever
    // sends a request to a coordinator that announced itself (authenticated, with a secret).
    let announced = rm.node_refs(Role::Coordinator);
    let owner = rm
        .owned_queries()
        .into_iter()
        .find(|query| query.summary.query_id == query_id)
        .and_then(|query| announced.iter().find(|coordinator| coordinator.node_id == query.coordinator_id))
        .map(|coordinator| (coordinator.node_id.clone(), coordinator.uri.clone()))
        .or_else(|| rm.owner_by_query_id_suffix(&query_id));
    let Some((owner_id, owner_uri)) = owner else {
        return proxy::text(StatusCode::NOT_FOUND, format!("Query {query_id} not found"));
    };
    if !proxy::may_forward(request.headers()) {
        return proxy::text(StatusCode::NOT_FOUND, format!("Query {query_id} not found (request already proxied {} times)", proxy::HOPS_MAX));
    }
    let forward = match Forward::read(request, &rm.inner.config.node_id).await {
        Ok(forward) => forward,
        Err(response) => return response,
    };
    let hop = proxy::Hop { client: &rm.inner.client, metrics: &rm.inner.metrics, target_role: Role::Coordinator };
    match proxy::send(&hop, &owner_uri, &forward, rm.second_hop_timeout_ms()).await {
        Ok(response) => response,
        Err(error) => {
            tracing::info!(%query_id, coordinator = %owner_id, %error, "owner of a query did not answer a proxied request");
            proxy::text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("Coordinator {owner_id} ({owner_uri}) that owns query {query_id} did not answer: {error}"),
            )
        }
    }
}

/// `GET /v1/queryState`: every coordinator's own list, concatenated (Presto's
/// `DistributedQueryInfoResource`), asked as this node and then cut to the queries the
/// requester may see. Coordinators that do not answer are left out.
async fn query_state(
    State(rm): State<ResourceManager>,
    UrlQuery(params): UrlQuery<BTreeMap<String, String>>,
    headers: HeaderMap,
    extensions: Extensions,
) -> Response {
    let requester = Requester::of(&headers, &extensions);
    let mut passed: Vec<String> = params
        .iter()
        .filter(|(name, _)| name.as_str() != "includeLocalQueryOnly")
        .map(|(name, value)| format!("{}={}", encode(name), encode(value)))
        .collect();
    passed.push("includeLocalQueryOnly=true".into());
    let query = passed.join("&");
    let urls = rm.node_refs(Role::Coordinator).into_iter().map(|coordinator| format!("{}/v1/queryState?{query}", coordinator.uri)).collect();
    let mut states = Vec::new();
    for answer in gather::get_all(&rm.inner.client, urls, rm.second_hop_timeout_ms()).await {
        match answer {
            Ok(Value::Array(list)) => states.extend(list.into_iter().filter(|state| {
                let owner = state.get("user").and_then(Value::as_str).unwrap_or_default();
                requester.may(&rm.inner.access, QueryAccess::View, owner)
            })),
            Ok(_) => tracing::debug!("a coordinator answered /v1/queryState with something else than a list"),
            Err(error) => tracing::debug!(%error, "a coordinator did not answer /v1/queryState"),
        }
    }
    Json(states).into_response()
}

/// Percent-encodes a query-string component (what is not unreserved in RFC 3986).
fn encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

async fn cluster_stats(State(rm): State<ResourceManager>) -> Response {
    let now_ms = rm.now_ms();
    let queries = rm.owned_queries();
    let cluster = rm.cluster();
    Json(cluster_json::cluster_stats(&queries, &cluster.workers(now_ms), &cluster.memory(now_ms))).into_response()
}

async fn cluster_memory(State(rm): State<ResourceManager>) -> Response {
    let now_ms = rm.now_ms();
    Json(cluster_json::cluster_memory(&rm.cluster().memory(now_ms))).into_response()
}

async fn worker_memory(State(rm): State<ResourceManager>) -> Response {
    let now_ms = rm.now_ms();
    Json(cluster_json::worker_memory(&rm.cluster().workers(now_ms))).into_response()
}

async fn resource_groups(State(rm): State<ResourceManager>) -> Response {
    let queries = rm.owned_queries();
    let coordinators = rm.cluster().coordinators();
    Json(cluster_json::resource_groups(&coordinators, &queries)).into_response()
}

async fn summary(State(rm): State<ResourceManager>) -> Response {
    Json(cluster_json::rm_summary(&rm.own_summary())).into_response()
}

/// `GET /v1/cluster/resourceManagers`: every RM's own summary, this one's without a request.
async fn resource_managers(State(rm): State<ResourceManager>) -> Response {
    let own_uri = rm.inner.config.self_uri();
    // Every RM discovery knows, and the configured peers (a dead peer may be gone from discovery).
    let mut known: BTreeMap<String, String> = rm.peers().into_iter().map(|uri| (uri, String::new())).collect();
    for node in rm.node_refs(Role::ResourceManager) {
        known.insert(node.uri, node.node_id);
    }
    known.remove(&own_uri);
    let urls = known.keys().map(|uri| format!("{uri}/v1/resourcemanager/summary")).collect();
    let answers = gather::get_all(&rm.inner.client, urls, rm.second_hop_timeout_ms()).await;
    let mut listed = vec![cluster_json::rm_summary(&rm.own_summary())];
    for ((uri, node_id), answer) in known.into_iter().zip(answers) {
        listed.push(match answer {
            Ok(summary) if summary.is_object() => summary,
            Ok(other) => cluster_json::rm_unreachable(&node_id, &uri, &format!("unexpected answer {other}")),
            Err(error) => cluster_json::rm_unreachable(&node_id, &uri, &error),
        });
    }
    listed.sort_by(|a, b| a["nodeId"].as_str().cmp(&b["nodeId"].as_str()).then(a["uri"].as_str().cmp(&b["uri"].as_str())));
    Json(listed).into_response()
}

async fn nodes(State(rm): State<ResourceManager>) -> Response {
    let (now_ms, wall_now_ms) = (rm.now_ms(), rm.inner.clock.wall_ms());
    rm.track_nodes(now_ms);
    let listed = crate::runtime::lock(&rm.inner.nodes).live_json(now_ms, wall_now_ms);
    Json(listed).into_response()
}

async fn failed_nodes(State(rm): State<ResourceManager>) -> Response {
    let (now_ms, wall_now_ms) = (rm.now_ms(), rm.inner.clock.wall_ms());
    let listed = crate::runtime::lock(&rm.inner.nodes).failed_json(now_ms, wall_now_ms);
    Json(listed).into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn query_string_components_are_encoded() {
        assert_eq!(super::encode("alice smith&x=1"), "alice%20smith%26x%3D1");
        assert_eq!(super::encode("a-b_c.d~"), "a-b_c.d~");
    }
}
