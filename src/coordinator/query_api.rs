//! The coordinator's REST endpoints beyond the client protocol (Presto's `QueryResource`,
//! `QueryStateInfoResource`, and the cluster resources a coordinator proxies in disaggregated mode):
//!
//! - `GET|DELETE /v1/query/{id}`, `PUT /v1/query/{id}/killed|preempted`: answered here when this
//!   coordinator owns the query, otherwise proxied to an RM, which proxies to the owner.
//! - `GET /v1/queryState?includeLocalQueryOnly=true`: this coordinator's queries; without it the
//!   cluster-wide list from an RM.
//! - `GET /v1/resourceGroupState/...?includeLocalInfoOnly=true`: this coordinator's numbers;
//!   without it the RM's cluster-wide merge.
//! - `/v1/query`, `/v1/cluster*`, `/v1/node*`: always an RM's answer.

use std::collections::BTreeMap;

use axum::extract::{Path, Query as UrlQuery, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::manager::{KillOutcome, QueryManager};
use super::query::Query;
use super::Coordinator;
use crate::protocol::errors::{self, ErrorCode};
use crate::protocol::QueryFailure;
use crate::rest::cluster_json::{self, OwnedQuery};
use crate::rest::identity::Requester;
use crate::security::access::{AccessControl, QueryAccess};
use crate::rest::proxy::{self, Forward};
use crate::wire::QueryState;

/// Paths only an RM can answer; a coordinator forwards them as they are.
const RESOURCE_MANAGER_PATHS: [&str; 8] = [
    "/v1/query",
    "/v1/cluster",
    "/v1/cluster/memory",
    "/v1/cluster/workerMemory",
    "/v1/cluster/resourceGroups",
    "/v1/cluster/resourceManagers",
    "/v1/node",
    "/v1/node/failed",
];

pub fn router(coordinator: Coordinator) -> Router {
    let mut router = Router::new()
        .route("/v1/query/{query_id}", get(get_query).delete(delete_query))
        .route("/v1/query/{query_id}/killed", put(kill_query))
        .route("/v1/query/{query_id}/preempted", put(preempt_query))
        .route("/v1/queryState", get(query_state))
        .route("/v1/resourceGroupState/{*group}", get(resource_group_state));
    for path in RESOURCE_MANAGER_PATHS {
        router = router.route(path, get(to_resource_manager));
    }
    router.with_state(coordinator)
}

/// `GET /v1/query/{id}` as the owner answers it.
fn query_info(coordinator: &Coordinator, query_id: &str) -> Option<Value> {
    let now_ms = coordinator.now_ms();
    coordinator.with_manager(|manager| {
        let query = manager.query(query_id)?;
        let owned = OwnedQuery {
            coordinator_id: coordinator.node_id().to_string(),
            coordinator_uri: coordinator.self_uri().to_string(),
            summary: query.summary(),
        };
        let elapsed_ms = query.ended_ms.unwrap_or(now_ms).saturating_sub(query.created_ms);
        let message = query.failure.as_ref().map(|failure| failure.message.as_str());
        let mut info = cluster_json::query_info(&owned, Some(elapsed_ms), message);
        info["queryStats"]["totalTasks"] = json!(query.tasks_total);
        info["queryStats"]["completedTasks"] = json!(query.tasks_done);
        info["queryStats"]["outputPositions"] = json!(query.rows_produced);
        if matches!(query.plan, crate::sql::Plan::Sql(_)) {
            // Stage 0, the output stage, runs on this coordinator; stage 1 is the leaf scans.
            let tasks: Vec<Value> = query
                .leaf_tasks
                .iter()
                .map(|(task_id, (node_id, done))| json!({ "taskId": task_id, "nodeId": node_id, "state": if *done { "FINISHED" } else { "RUNNING" } }))
                .collect();
            info["outputStage"] = json!({
                "stageId": format!("{query_id}.0"),
                "nodeId": coordinator.node_id(),
                "subStages": [{ "stageId": format!("{query_id}.1"), "tasks": tasks }],
            });
        }
        Some(info)
    })
}

/// The user who runs `query_id`, when this coordinator holds it.
fn owner_of(coordinator: &Coordinator, query_id: &str) -> Option<String> {
    coordinator.with_manager(|manager| manager.query(query_id).map(|query| query.session.user.clone()))
}

/// The 403 to answer unless the requester may do `what` to a query `owner` runs
/// (`security::access`).
fn refusal(coordinator: &Coordinator, request: &Request, what: QueryAccess, owner: &str) -> Option<Response> {
    let requester = Requester::of(request.headers(), request.extensions());
    if requester.may(&coordinator.context().access, what, owner) {
        return None;
    }
    Some(proxy::text(StatusCode::FORBIDDEN, AccessControl::denied_message(what, owner)))
}

/// Forwards the request to an RM (503 when none answers within the request timeout).
async fn to_resource_manager(State(coordinator): State<Coordinator>, request: Request) -> Response {
    if !proxy::may_forward(request.headers()) {
        return proxy::text(StatusCode::LOOP_DETECTED, format!("{} was already proxied {} times", request.uri().path(), proxy::HOPS_MAX));
    }
    let forward = match Forward::read(request, coordinator.node_id()).await {
        Ok(forward) => forward,
        Err(response) => return response,
    };
    let context = coordinator.context();
    let hop = proxy::Hop { client: &context.client, metrics: &context.metrics, target_role: crate::config::Role::ResourceManager };
    proxy::to_resource_manager(&hop, &coordinator.inner.resource_managers, &context.clock, &forward, context.config.request_timeout_ms).await
}

/// For a query this coordinator does not hold: ask the RM (which knows every owner), unless the
/// request came through proxies already, in which case `not_found` is the answer.
async fn not_owned(coordinator: Coordinator, request: Request, not_found: StatusCode) -> Response {
    if proxy::may_forward(request.headers()) {
        to_resource_manager(State(coordinator), request).await
    } else {
        proxy::text(not_found, "Query not found")
    }
}

async fn get_query(State(coordinator): State<Coordinator>, Path(query_id): Path<String>, request: Request) -> Response {
    if let Some(owner) = owner_of(&coordinator, &query_id) {
        if let Some(denied) = refusal(&coordinator, &request, QueryAccess::View, &owner) {
            return denied;
        }
    }
    match query_info(&coordinator, &query_id) {
        Some(info) => Json(info).into_response(),
        // Presto's owner answers 410 for a query it no longer holds.
        None => not_owned(coordinator, request, StatusCode::GONE).await,
    }
}

async fn delete_query(State(coordinator): State<Coordinator>, Path(query_id): Path<String>, request: Request) -> Response {
    if let Some(owner) = owner_of(&coordinator, &query_id) {
        if let Some(denied) = refusal(&coordinator, &request, QueryAccess::Kill, &owner) {
            return denied;
        }
        coordinator.cancel(&query_id);
        return StatusCode::NO_CONTENT.into_response();
    }
    not_owned(coordinator, request, StatusCode::NOT_FOUND).await
}

async fn kill_query(State(coordinator): State<Coordinator>, Path(query_id): Path<String>, request: Request) -> Response {
    let default = format!("Query killed via PUT /v1/query/{query_id}/killed");
    kill_or_forward(coordinator, query_id, request, errors::ADMINISTRATIVELY_KILLED, default).await
}

async fn preempt_query(State(coordinator): State<Coordinator>, Path(query_id): Path<String>, request: Request) -> Response {
    let default = format!("Query preempted via PUT /v1/query/{query_id}/preempted");
    kill_or_forward(coordinator, query_id, request, errors::ADMINISTRATIVELY_PREEMPTED, default).await
}

async fn kill_or_forward(coordinator: Coordinator, query_id: String, request: Request, code: ErrorCode, default: String) -> Response {
    let Some(owner) = owner_of(&coordinator, &query_id) else {
        return not_owned(coordinator, request, StatusCode::GONE).await;
    };
    if let Some(denied) = refusal(&coordinator, &request, QueryAccess::Kill, &owner) {
        return denied;
    }
    let body = match axum::body::to_bytes(request.into_body(), proxy::BODY_BYTES_MAX).await {
        Ok(body) => body,
        Err(_) => return proxy::text(StatusCode::PAYLOAD_TOO_LARGE, "kill message too large"),
    };
    let message = kill_message(&body).unwrap_or(default);
    match coordinator.kill_query(&query_id, QueryFailure::new(code, message)) {
        KillOutcome::Killed => StatusCode::OK.into_response(),
        KillOutcome::AlreadyDone => proxy::text(StatusCode::CONFLICT, format!("Query {query_id} already finished")),
        KillOutcome::NotFound => proxy::text(StatusCode::GONE, "Query not found"),
    }
}

/// The message of a kill: the body, as a JSON string or as plain text; `None` when empty.
pub fn kill_message(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let message = match serde_json::from_str::<Value>(text) {
        Ok(Value::String(message)) => message,
        _ => text.to_string(),
    };
    let message: String = message.trim().chars().take(1_000).collect();
    (!message.is_empty()).then_some(message)
}

/// `GET /v1/queryState`: Presto's `QueryStateInfo` list.
async fn query_state(
    State(coordinator): State<Coordinator>,
    UrlQuery(params): UrlQuery<BTreeMap<String, String>>,
    request: Request,
) -> Response {
    if params.get("includeLocalQueryOnly").is_some_and(|value| value == "true") || !proxy::may_forward(request.headers()) {
        let include_all = params.get("includeAllQueries").is_some_and(|value| value == "true");
        let user = params.get("user").filter(|user| !user.is_empty());
        let now_ms = coordinator.now_ms();
        let requester = Requester::of(request.headers(), request.extensions());
        let access = &coordinator.context().access;
        let visible = |owner: &str| requester.may(access, QueryAccess::View, owner);
        let listed = coordinator.with_manager(|manager| query_states(manager, now_ms, include_all, user.map(String::as_str), &visible));
        return Json(listed).into_response();
    }
    to_resource_manager(State(coordinator), request).await
}

/// This coordinator's queries as Presto's `QueryStateInfo` (done ones only with `include_all`).
/// Only queries `visible` allows (the requester's view rights) are listed.
fn query_states(manager: &QueryManager, now_ms: u64, include_all: bool, user: Option<&str>, visible: &dyn Fn(&str) -> bool) -> Vec<Value> {
        let mut listed = Vec::new();
        for query in manager.queries() {
            if (!include_all && query.is_done()) || user.is_some_and(|user| user != query.session.user) || !visible(&query.session.user) {
                continue;
            }
            let mut info = json!({
                "queryId": query.id,
                "queryState": query.state.name(),
                "resourceGroupId": query.group.split('.').collect::<Vec<_>>(),
                "query": query.sql,
                "queryTextTruncated": false,
                "createTime": crate::runtime::clock::format_iso8601(query.created_wall_ms),
                "user": query.session.user,
                "authenticated": false,
            });
            for (key, value) in [("source", &query.session.source), ("catalog", &query.session.catalog), ("schema", &query.session.schema)] {
                if let Some(value) = value {
                    info[key] = json!(value);
                }
            }
            match query.state {
                // Presto explains a queued query with the groups it waits in, leaf first.
                QueryState::Queued => info["pathToRoot"] = json!(path_to_root(manager.admission(), &query.group)),
                QueryState::Running => info["progress"] = progress(query, now_ms),
                QueryState::Finished | QueryState::Failed => {}
            }
            listed.push(info);
        }
        listed
}

fn path_to_root(admission: &crate::resource_groups::ResourceGroupManager, group: &str) -> Vec<Value> {
    let mut path = Vec::new();
    let mut group_id = group;
    loop {
        if let Some(mut info) = admission.group_info(group_id, true) {
            if let Some(object) = info.as_object_mut() {
                object.remove("subGroups");
                object.remove("runningQueries");
            }
            path.push(info);
        }
        match group_id.rsplit_once('.') {
            Some((parent, _)) => group_id = parent,
            None => return path,
        }
    }
}

/// Presto's `QueryProgressStats` for a running query.
fn progress(query: &Query, now_ms: u64) -> Value {
    let started_ms = query.started_ms.unwrap_or(now_ms);
    let percentage = if query.tasks_total == 0 { 0.0 } else { 100.0 * f64::from(query.tasks_done) / f64::from(query.tasks_total) };
    json!({
        "elapsedTimeMillis": now_ms.saturating_sub(query.created_ms),
        "queuedTimeMillis": started_ms.saturating_sub(query.created_ms),
        "executionTimeMillis": now_ms.saturating_sub(started_ms),
        "cpuTimeMillis": 0,
        "scheduledTimeMillis": now_ms.saturating_sub(started_ms),
        "currentMemoryBytes": query.memory_bytes,
        "peakMemoryBytes": query.memory_bytes,
        "peakTotalMemoryBytes": query.memory_bytes,
        "peakTaskTotalMemoryBytes": query.memory_bytes / u64::from(query.tasks_total.max(1)),
        "cumulativeUserMemory": 0.0,
        "inputRows": 0,
        "inputBytes": 0,
        "blocked": false,
        "queuedDrivers": 0,
        "runningDrivers": query.tasks_total.saturating_sub(query.tasks_done),
        "completedDrivers": query.tasks_done,
        "progressPercentage": percentage,
    })
}

/// `GET /v1/resourceGroupState/{segment/segment…}`: Presto's `ResourceGroupInfo`. With
/// `includeLocalInfoOnly=true` only this coordinator's queries count; otherwise the RM merges
/// every coordinator's. A request that already came through proxies gets this coordinator's
/// merged view (its own numbers plus its last RM view of the others) rather than a loop.
async fn resource_group_state(
    State(coordinator): State<Coordinator>,
    Path(group): Path<String>,
    UrlQuery(params): UrlQuery<BTreeMap<String, String>>,
    request: Request,
) -> Response {
    let local_only = params.get("includeLocalInfoOnly").is_some_and(|value| value == "true");
    if !local_only && proxy::may_forward(request.headers()) {
        return to_resource_manager(State(coordinator), request).await;
    }
    let group_id = group_id_from_path(&group);
    match coordinator.resource_group_info(&group_id, !local_only) {
        Some(info) => Json(info).into_response(),
        None => proxy::text(StatusCode::NOT_FOUND, format!("Resource group {group_id} not found")),
    }
}

/// `adhoc/bi-tool` (URL-decoded by the router) is the group `adhoc.bi-tool`.
pub fn group_id_from_path(path: &str) -> String {
    path.split('/').filter(|segment| !segment.is_empty()).collect::<Vec<_>>().join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kill_messages_come_from_json_strings_or_text() {
        assert_eq!(kill_message(b""), None);
        assert_eq!(kill_message(b"  \n"), None);
        assert_eq!(kill_message(b"\"too big\""), Some("too big".into()));
        assert_eq!(kill_message(b"runaway query"), Some("runaway query".into()));
        assert_eq!(kill_message(b"\"\""), None);
        assert_eq!(kill_message(&[b'x'; 5_000]).unwrap().len(), 1_000);
    }

    #[test]
    fn group_paths_become_dotted_ids() {
        assert_eq!(group_id_from_path("global/alice"), "global.alice");
        assert_eq!(group_id_from_path("/global//alice/"), "global.alice");
    }
}
