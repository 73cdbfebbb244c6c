//! Presto's cluster REST shapes, built from what an RM holds. Pure functions from plain data to
//! JSON, one per endpoint, so a change in what the RM aggregates touches one small function.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::config::format_data_size;
use crate::protocol::query_info::basic_query_info;
use crate::runtime::clock::format_iso8601;
use crate::wire::{ClusterMemory, QueryState, QuerySummary, WorkerView};

/// The only memory pool fireball has (Presto's `general` pool).
pub const GENERAL_POOL: &str = "general";
/// Most queries one `/v1/query` answer lists, whatever `limit` asks.
pub const QUERY_LIST_MAX: usize = 10_000;

/// One query as an RM knows it from its owner's heartbeats.
#[derive(Clone, Debug)]
pub struct OwnedQuery {
    pub coordinator_id: String,
    pub coordinator_uri: String,
    pub summary: QuerySummary,
}

/// Presto's `ClusterStats` (`GET /v1/cluster`).
pub fn cluster_stats(queries: &[OwnedQuery], workers: &[WorkerView], memory: &ClusterMemory) -> Value {
    let count = |state: QueryState| queries.iter().filter(|query| query.summary.state == state).count();
    json!({
        "runningQueries": count(QueryState::Running),
        "blockedQueries": 0,
        "queuedQueries": count(QueryState::Queued),
        "activeWorkers": workers.len(),
        "runningDrivers": 0,
        "runningTasks": workers.iter().map(|worker| u64::from(worker.cpu.running_tasks)).sum::<u64>(),
        "reservedMemory": memory.reserved_bytes as f64,
        "totalInputRows": 0,
        "totalInputBytes": 0,
        "totalCpuTimeSecs": 0,
        "adjustedQueueSize": 0,
    })
}

/// Presto's `MemoryPoolInfo` for one pool.
fn pool_info(max_bytes: u64, reserved_bytes: u64, reservations: &BTreeMap<String, u64>) -> Value {
    json!({
        "maxBytes": max_bytes,
        "reservedBytes": reserved_bytes,
        "reservedRevocableBytes": 0,
        "queryMemoryReservations": reservations,
        "queryMemoryAllocations": {},
        "queryMemoryRevocableReservations": {},
    })
}

/// Presto's `ClusterMemoryPoolInfo` per pool (`GET /v1/cluster/memory`), from the RM's cluster
/// pool (see `ClusterState::memory`).
pub fn cluster_memory(memory: &ClusterMemory) -> Value {
    let mut general = json!({
        "totalDistributedBytes": memory.total_bytes,
        "reservedDistributedBytes": memory.reserved_bytes,
        "blockedNodes": memory.blocked_nodes,
        "assignedQueries": memory.running_queries.len(),
        "runningQueries": memory.running_queries,
        "memoryPoolInfo": pool_info(memory.total_bytes, memory.reserved_bytes, &memory.query_reservations),
    });
    if let (Some(object), Some(query_id)) = (general.as_object_mut(), &memory.largest_query) {
        object.insert("largestMemoryQuery".into(), json!(query_id));
    }
    json!({ GENERAL_POOL: general })
}

/// Presto's per-worker `MemoryInfo`, keyed `"<nodeId> [<uri>]"` (`GET /v1/cluster/workerMemory`).
pub fn worker_memory(workers: &[WorkerView]) -> Value {
    let mut answer = Map::new();
    for worker in workers {
        let memory = &worker.memory;
        let reservations: BTreeMap<String, u64> = memory.query_reservations.clone().into_iter().collect();
        answer.insert(
            format!("{} [{}]", worker.node_id, worker.uri),
            json!({
                "totalNodeMemory": format_data_size(memory.pool_bytes),
                "pools": { GENERAL_POOL: pool_info(memory.pool_bytes, memory.reserved_bytes, &reservations) },
                "blocked": memory.blocked,
            }),
        );
    }
    Value::Object(answer)
}

/// `?state=RUNNING&limit=N` of `GET /v1/query`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct QueryFilter {
    pub state: Option<QueryState>,
    pub limit: usize,
}

/// Reads the filter; bad values are the caller's mistake, explained.
pub fn parse_query_filter(params: &BTreeMap<String, String>) -> Result<QueryFilter, String> {
    let state = match params.get("state").map(|state| state.trim().to_ascii_uppercase()) {
        None => None,
        Some(state) if state.is_empty() => None,
        Some(state) => Some(
            [QueryState::Queued, QueryState::Running, QueryState::Finished, QueryState::Failed]
                .into_iter()
                .find(|known| known.name() == state)
                .ok_or_else(|| format!("state={state:?} is not a query state (QUEUED, RUNNING, FINISHED, FAILED)"))?,
        ),
    };
    let limit = match params.get("limit") {
        None => QUERY_LIST_MAX,
        Some(text) => match text.trim().parse::<usize>() {
            Ok(limit) => limit.min(QUERY_LIST_MAX),
            Err(_) => return Err(format!("limit={text:?} is not a non-negative integer")),
        },
    };
    Ok(QueryFilter { state, limit })
}

/// `BasicQueryInfo` plus fireball's owner id and, when known, the elapsed time.
pub fn query_info(query: &OwnedQuery, elapsed_ms: Option<u64>, error_message: Option<&str>) -> Value {
    let mut info = basic_query_info(&query.summary, &query.coordinator_uri, error_message);
    info["coordinatorId"] = json!(query.coordinator_id);
    if let Some(elapsed_ms) = elapsed_ms {
        info["queryStats"]["elapsedTime"] = json!(crate::config::format_duration(elapsed_ms));
    }
    info
}

/// `GET /v1/query`: newest first, filtered, at most `limit`. The RM only knows when a query was
/// created, so the elapsed time is given for queries still queued or running (measured on this
/// node's wall clock, which may be skewed against the owner's by a little).
pub fn query_list(queries: &[OwnedQuery], filter: &QueryFilter, wall_now_ms: u64) -> Vec<Value> {
    let mut selected: Vec<&OwnedQuery> =
        queries.iter().filter(|query| filter.state.is_none_or(|state| query.summary.state == state)).collect();
    selected.sort_by(|a, b| {
        b.summary.created_wall_ms.cmp(&a.summary.created_wall_ms).then_with(|| b.summary.query_id.cmp(&a.summary.query_id))
    });
    selected
        .into_iter()
        .take(filter.limit)
        .map(|query| {
            let elapsed_ms = (!query.summary.state.is_done()).then(|| wall_now_ms.saturating_sub(query.summary.created_wall_ms));
            query_info(query, elapsed_ms, None)
        })
        .collect()
}

/// Counts of one group: its own queries and those of its subgroups.
#[derive(Default)]
struct Counts {
    running: u64,
    queued: u64,
    memory_bytes: u64,
}

/// Adds `query` to its group and every ancestor (`a` and `a.b` for `a.b.c`).
fn count_into(groups: &mut BTreeMap<String, Counts>, query: &QuerySummary) {
    let mut path = query.group.as_str();
    loop {
        let counts = groups.entry(path.to_string()).or_default();
        match query.state {
            QueryState::Running => counts.running += 1,
            QueryState::Queued => counts.queued += 1,
            QueryState::Finished | QueryState::Failed => {}
        }
        counts.memory_bytes = counts.memory_bytes.saturating_add(query.memory_bytes);
        match path.rsplit_once('.') {
            Some((parent, _)) => path = parent,
            None => break,
        }
    }
}

/// `GET /v1/cluster/resourceGroups` (fireball): what this RM holds per coordinator and in total.
/// A group's counts include its subgroups' (like Presto's aggregated counts), so `global` shows
/// everything admitted anywhere below it. `coordinators` lists (id, uri) of every coordinator
/// the RM hears from, including those with no queries.
pub fn resource_groups(coordinators: &[(String, String)], queries: &[OwnedQuery]) -> Value {
    let mut per_coordinator: BTreeMap<&str, BTreeMap<String, Counts>> =
        coordinators.iter().map(|(id, _)| (id.as_str(), BTreeMap::new())).collect();
    let mut total: BTreeMap<String, Counts> = BTreeMap::new();
    for query in queries.iter().filter(|query| !query.summary.state.is_done()) {
        count_into(per_coordinator.entry(query.coordinator_id.as_str()).or_default(), &query.summary);
        count_into(&mut total, &query.summary);
    }
    let uris: BTreeMap<&str, &str> = coordinators
        .iter()
        .map(|(id, uri)| (id.as_str(), uri.as_str()))
        .chain(queries.iter().map(|query| (query.coordinator_id.as_str(), query.coordinator_uri.as_str())))
        .collect();
    let coordinators: Vec<Value> = per_coordinator
        .into_iter()
        .map(|(id, groups)| {
            let groups: Vec<Value> = groups
                .into_iter()
                .map(|(group, counts)| json!({"id": group, "running": counts.running, "queued": counts.queued, "memoryBytes": counts.memory_bytes}))
                .collect();
            json!({"coordinatorId": id, "uri": uris.get(id).copied().unwrap_or_default(), "groups": groups})
        })
        .collect();
    let total: Vec<Value> = total
        .into_iter()
        .map(|(group, counts)| json!({"id": group, "running": counts.running, "queued": counts.queued, "memoryBytes": counts.memory_bytes}))
        .collect();
    json!({ "coordinators": coordinators, "total": total })
}

/// What one RM sees, for `GET /v1/resourcemanager/summary`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RmSummary {
    pub node_id: String,
    pub uri: String,
    pub coordinators: usize,
    pub workers: usize,
    pub running_queries: usize,
    pub queued_queries: usize,
    pub reserved_memory_bytes: u64,
    pub total_memory_bytes: u64,
    pub blocked_nodes: u32,
}

pub fn rm_summary(summary: &RmSummary) -> Value {
    json!({
        "nodeId": summary.node_id,
        "uri": summary.uri,
        "reachable": true,
        "coordinators": summary.coordinators,
        "workers": summary.workers,
        "runningQueries": summary.running_queries,
        "queuedQueries": summary.queued_queries,
        "reservedMemoryBytes": summary.reserved_memory_bytes,
        "totalMemoryBytes": summary.total_memory_bytes,
        "blockedNodes": summary.blocked_nodes,
    })
}

/// An RM that did not answer, in `GET /v1/cluster/resourceManagers`.
pub fn rm_unreachable(node_id: &str, uri: &str, error: &str) -> Value {
    json!({ "nodeId": node_id, "uri": uri, "reachable": false, "error": error })
}

/// `createTime` as Presto prints it.
pub fn create_time(summary: &QuerySummary) -> String {
    format_iso8601(summary.created_wall_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{CpuInfo, MemoryInfo};

    fn summary(id: &str, group: &str, state: QueryState, created_wall_ms: u64) -> QuerySummary {
        QuerySummary {
            query_id: id.into(),
            group: group.into(),
            state,
            user: "alice".into(),
            source: None,
            query: "SELECT 1".into(),
            memory_bytes: if state == QueryState::Running { 100 } else { 0 },
            created_wall_ms,
            error_name: None,
        }
    }

    fn owned(coordinator: &str, summary: QuerySummary) -> OwnedQuery {
        OwnedQuery { coordinator_id: coordinator.into(), coordinator_uri: format!("http://{coordinator}"), summary }
    }

    fn worker(id: &str, reserved: &[(&str, u64)], blocked: bool) -> WorkerView {
        WorkerView {
            node_id: id.into(),
            uri: format!("http://{id}"),
            memory: MemoryInfo::holding(1000, blocked, reserved),
            cpu: CpuInfo { processors: 2, running_tasks: reserved.len() as u32, blocked_tasks: 0 },
        }
    }

    #[test]
    fn cluster_memory_has_presto_shape() {
        let memory = ClusterMemory {
            total_bytes: 2000,
            reserved_bytes: 650,
            blocked_nodes: 1,
            nodes: 2,
            query_reservations: [("q1".to_string(), 300), ("q2".to_string(), 350)].into_iter().collect(),
            largest_query: Some("q2".into()),
            running_queries: vec!["q1".into(), "q2".into()],
        };
        let answer = cluster_memory(&memory);
        let general = &answer["general"];
        assert_eq!(general["totalDistributedBytes"], 2000);
        assert_eq!(general["reservedDistributedBytes"], 650);
        assert_eq!(general["blockedNodes"], 1);
        assert_eq!(general["assignedQueries"], 2);
        assert_eq!(general["largestMemoryQuery"], "q2");
        assert_eq!(general["runningQueries"], json!(["q1", "q2"]));
        assert_eq!(general["memoryPoolInfo"]["queryMemoryReservations"], json!({"q1": 300, "q2": 350}));
        assert_eq!(general["memoryPoolInfo"]["maxBytes"], 2000);
        assert_eq!(general["memoryPoolInfo"]["queryMemoryAllocations"], json!({}));
        let idle = cluster_memory(&ClusterMemory::default());
        assert!(idle["general"].get("largestMemoryQuery").is_none(), "absent, not null: {idle}");
    }

    #[test]
    fn worker_memory_is_keyed_by_node_and_uri() {
        let answer = worker_memory(&[worker("w1", &[("q1", 300)], true)]);
        let w1 = &answer["w1 [http://w1]"];
        assert_eq!(w1["totalNodeMemory"], "1000B");
        assert_eq!(w1["blocked"], true);
        assert_eq!(w1["pools"]["general"]["reservedBytes"], 300);
        assert_eq!(w1["pools"]["general"]["queryMemoryReservations"]["q1"], 300);
    }

    #[test]
    fn query_filters_are_checked() {
        let params = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert_eq!(parse_query_filter(&params(&[])).unwrap(), QueryFilter { state: None, limit: QUERY_LIST_MAX });
        assert_eq!(
            parse_query_filter(&params(&[("state", "running"), ("limit", "5")])).unwrap(),
            QueryFilter { state: Some(QueryState::Running), limit: 5 }
        );
        assert!(parse_query_filter(&params(&[("state", "DANCING")])).unwrap_err().contains("DANCING"));
        assert!(parse_query_filter(&params(&[("limit", "-1")])).unwrap_err().contains("limit"));
    }

    #[test]
    fn query_lists_are_newest_first_filtered_and_limited() {
        let queries = vec![
            owned("c1", summary("q1", "global.a", QueryState::Finished, 10)),
            owned("c2", summary("q2", "global.b", QueryState::Running, 20)),
            owned("c1", summary("q3", "global.a", QueryState::Running, 30)),
        ];
        let all = query_list(&queries, &QueryFilter { state: None, limit: 10 }, 1_030);
        let ids: Vec<&str> = all.iter().map(|info| info["queryId"].as_str().unwrap()).collect();
        assert_eq!(ids, vec!["q3", "q2", "q1"]);
        assert_eq!(all[1]["coordinatorId"], "c2");
        assert_eq!(all[1]["self"], "http://c2/v1/query/q2");
        assert_eq!(all[0]["queryStats"]["elapsedTime"], "1.00s");
        assert!(all[2]["queryStats"].get("elapsedTime").is_none());
        let running = query_list(&queries, &QueryFilter { state: Some(QueryState::Running), limit: 1 }, 0);
        assert_eq!(running.len(), 1);
        assert_eq!(running[0]["queryId"], "q3");
    }

    #[test]
    fn resource_groups_roll_up_per_coordinator_and_in_total() {
        let coordinators = vec![("c1".to_string(), "http://c1".to_string()), ("c3".to_string(), "http://c3".to_string())];
        let queries = vec![
            owned("c1", summary("q1", "global.a", QueryState::Running, 0)),
            owned("c1", summary("q2", "global.a", QueryState::Queued, 0)),
            owned("c2", summary("q3", "global.b", QueryState::Running, 0)),
            owned("c2", summary("q4", "global.b", QueryState::Finished, 0)),
        ];
        let answer = resource_groups(&coordinators, &queries);
        let listed: Vec<&str> = answer["coordinators"].as_array().unwrap().iter().map(|c| c["coordinatorId"].as_str().unwrap()).collect();
        assert_eq!(listed, vec!["c1", "c2", "c3"], "idle coordinators are listed too");
        let c1 = &answer["coordinators"][0];
        assert_eq!(c1["uri"], "http://c1");
        assert_eq!(c1["groups"], json!([
            {"id": "global", "running": 1, "queued": 1, "memoryBytes": 100},
            {"id": "global.a", "running": 1, "queued": 1, "memoryBytes": 100},
        ]));
        assert_eq!(answer["coordinators"][2]["groups"], json!([]));
        assert_eq!(answer["total"][0], json!({"id": "global", "running": 2, "queued": 1, "memoryBytes": 200}));
    }

    #[test]
    fn cluster_stats_count_states_and_tasks() {
        let queries = vec![owned("c1", summary("q1", "g", QueryState::Running, 0)), owned("c1", summary("q2", "g", QueryState::Queued, 0))];
        let workers = vec![worker("w1", &[("q1", 10)], false)];
        let stats = cluster_stats(&queries, &workers, &ClusterMemory { reserved_bytes: 10, ..Default::default() });
        assert_eq!((stats["runningQueries"].as_u64(), stats["queuedQueries"].as_u64()), (Some(1), Some(1)));
        assert_eq!(stats["activeWorkers"], 1);
        assert_eq!(stats["runningTasks"], 1);
        assert_eq!(stats["reservedMemory"], 10.0);
        assert_eq!(stats["adjustedQueueSize"], 0);
    }
}
