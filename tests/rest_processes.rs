//! The cluster REST API across real processes (`fireball server --etc DIR`: 2 RMs, 2 coordinators,
//! 2 workers on loopback), as an operator or the web console uses it:
//!
//! - a query running on coordinator-2 is visible from coordinator-1 and from an RM (proxied
//!   coordinator → RM → owner), and killed from coordinator-1;
//! - `/v1/cluster`, `/v1/node`, `/v1/cluster/memory` asked on a coordinator answer from an RM;
//! - `PUT /v1/info/state "SHUTTING_DOWN"` lets a coordinator's query finish, refuses new ones and
//!   ends the process with status 0; SIGTERM starts the same drain on a worker running a task, and
//!   a second SIGTERM ends the process at once;
//! - with every RM dead, a proxied request answers 503 promptly instead of hanging.
#![cfg(not(madsim))]

use std::time::Duration;

use fireball::protocol::client::StatementClient;
use fireball::runtime::http_client::{HttpClient, Request, Response};
use fireball::runtime::sim_hooks::MessageKind;
use hyper::Method;
use serde_json::Value;

#[path = "support/processes.rs"]
mod processes;

use processes::Cluster;

const NAMES: [&str; 6] = ["rm-1", "rm-2", "coordinator-1", "coordinator-2", "worker-1", "worker-2"];

fn start_cluster() -> Cluster {
    Cluster::start("fireball-rest", &NAMES, "")
}

/// The REST calls of these tests speak for alice, whose query they look at and kill.
const USER: &str = "alice";

async fn send(http: &HttpClient, method: Method, url: String, body: &str) -> Response {
    send_as(http, method, url, body, USER).await
}

async fn send_as(http: &HttpClient, method: Method, url: String, body: &str, user: &str) -> Response {
    let request =
        Request::new(method, url.clone(), MessageKind::Other).text(body.to_string()).header("X-Presto-User", user).timeout_ms(10_000).retries(0);
    http.send(request).await.unwrap_or_else(|error| panic!("{url}: {error}"))
}

fn json(response: &Response) -> Value {
    serde_json::from_slice(&response.body).unwrap_or_else(|error| panic!("not JSON ({error}): {}", String::from_utf8_lossy(&response.body)))
}

/// GETs `url` until `accept` likes the JSON answer (bounded). A node still starting may refuse
/// the connection: that is retried like any other unwanted answer.
async fn eventually(http: &HttpClient, url: String, what: &str, accept: impl Fn(&Value) -> bool) -> Value {
    let deadline = processes::wall_now() + Duration::from_secs(30);
    loop {
        let request = Request::new(Method::GET, url.clone(), MessageKind::Other).header("X-Presto-User", USER).timeout_ms(10_000).retries(0);
        let last = match http.send(request).await {
            Ok(answer) if answer.status == 200 => {
                let value = json(&answer);
                if accept(&value) {
                    return value;
                }
                format!("200 {value}")
            }
            Ok(answer) => format!("{} {}", answer.status, String::from_utf8_lossy(&answer.body)),
            Err(error) => error.to_string(),
        };
        assert!(processes::wall_now() < deadline, "{what}: last answer from {url} was {last}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_endpoints_proxy_kill_and_shut_down_across_processes() {
    let mut cluster = start_cluster();
    let http = HttpClient::new("test", 10_000, 0);
    let (c1, c2) = (cluster.uri("coordinator-1"), cluster.uri("coordinator-2"));
    for rm in ["rm-1", "rm-2"] {
        let url = format!("{}/v1/cluster", cluster.uri(rm));
        eventually(&http, url, "workers known", |stats| stats["activeWorkers"] == 2).await;
    }

    // A long query on coordinator-2, followed by its client.
    let client = StatementClient::new("test-client", "alice");
    let sql = "SELECT * FROM synthetic(run_time => '30s', memory => '64MB', tasks => 2, rows => 10)";
    let first = client.submit(&c2, sql).await.expect("submitted");
    let query_id = first["id"].as_str().expect("query id").to_string();
    let follower = tokio::spawn(async move { client.follow(first).await });

    // Seen from coordinator-1 and from both RMs, answered by its owner.
    for via in [c1.clone(), cluster.uri("rm-1"), cluster.uri("rm-2")] {
        let info = eventually(&http, format!("{via}/v1/query/{query_id}"), "query visible", |info| info["state"] == "RUNNING").await;
        assert_eq!(info["queryId"], query_id.as_str());
        assert_eq!(info["coordinatorId"], "coordinator-2", "{info}");
        assert_eq!(info["self"], format!("{c2}/v1/query/{query_id}"));
        assert_eq!(info["resourceGroupId"], serde_json::json!(["global"]), "the legacy single group");
    }
    let unknown = send(&http, Method::GET, format!("{c1}/v1/query/20200101_000000_00000_zzzzz"), "").await;
    assert_eq!(unknown.status, 404, "unknown query: {}", String::from_utf8_lossy(&unknown.body));

    // Cluster views asked on a coordinator come from an RM.
    // (A query's owner answers for it at once; the RM lists it after the owner's next heartbeat.)
    let listed = eventually(&http, format!("{c1}/v1/query?state=RUNNING&limit=10"), "query listed", |list| {
        list.as_array().is_some_and(|queries| !queries.is_empty())
    })
    .await;
    let ids: Vec<&str> = listed.as_array().expect("list").iter().filter_map(|query| query["queryId"].as_str()).collect();
    assert_eq!(ids, vec![query_id.as_str()]);
    let bad = send(&http, Method::GET, format!("{c1}/v1/query?state=SLEEPING"), "").await;
    assert_eq!(bad.status, 400);
    assert!(String::from_utf8_lossy(&bad.body).contains("SLEEPING"));
    let stats = json(&send(&http, Method::GET, format!("{c1}/v1/cluster"), "").await);
    assert_eq!((stats["runningQueries"].as_u64(), stats["activeWorkers"].as_u64()), (Some(1), Some(2)), "{stats}");
    for key in ["blockedQueries", "queuedQueries", "runningDrivers", "runningTasks", "reservedMemory", "totalInputRows", "totalInputBytes", "totalCpuTimeSecs", "adjustedQueueSize"] {
        assert!(stats.get(key).is_some(), "/v1/cluster lacks {key}: {stats}");
    }
    // Discovery is replicated between RMs within a replication interval: wait for it to settle.
    let nodes = eventually(&http, format!("{c1}/v1/node"), "every node discovered", |nodes| {
        nodes.as_array().is_some_and(|nodes| nodes.len() == NAMES.len())
    })
    .await;
    let mut seen: Vec<(String, String)> = nodes
        .as_array()
        .expect("node list")
        .iter()
        .map(|node| (node["nodeId"].as_str().unwrap_or("?").to_string(), node["role"].as_str().unwrap_or("?").to_string()))
        .collect();
    seen.sort();
    let expected: Vec<(String, String)> = vec![
        ("coordinator-1", "coordinator"),
        ("coordinator-2", "coordinator"),
        ("rm-1", "resource_manager"),
        ("rm-2", "resource_manager"),
        ("worker-1", "worker"),
        ("worker-2", "worker"),
    ]
    .into_iter()
    .map(|(id, role)| (id.to_string(), role.to_string()))
    .collect();
    assert_eq!(seen, expected);
    for key in ["uri", "age", "recentRequests", "recentFailures", "recentSuccesses", "recentFailureRatio", "lastRequestTime", "lastResponseTime", "recentFailuresByType", "state"] {
        assert!(nodes[0].get(key).is_some(), "/v1/node entry lacks {key}: {}", nodes[0]);
    }
    let memory = eventually(&http, format!("{c1}/v1/cluster/memory"), "memory reserved", |memory| {
        memory["general"]["memoryPoolInfo"]["queryMemoryReservations"][query_id.as_str()].as_u64() == Some(128 * 1024 * 1024)
    })
    .await;
    let general = &memory["general"];
    assert_eq!(general["totalDistributedBytes"], 2u64 << 30, "{memory}");
    assert_eq!(general["reservedDistributedBytes"], 128u64 << 20);
    assert_eq!(general["blockedNodes"], 0);
    assert_eq!(general["assignedQueries"], 1);
    assert_eq!(general["largestMemoryQuery"], query_id.as_str());
    assert_eq!(general["runningQueries"], serde_json::json!([query_id.as_str()]));
    for key in ["maxBytes", "reservedBytes", "reservedRevocableBytes", "queryMemoryAllocations", "queryMemoryRevocableReservations"] {
        assert!(general["memoryPoolInfo"].get(key).is_some(), "memoryPoolInfo lacks {key}: {memory}");
    }
    let workers = json(&send(&http, Method::GET, format!("{c1}/v1/cluster/workerMemory"), "").await);
    assert_eq!(workers.as_object().expect("map").len(), 2, "{workers}");

    // Another user (no access rules configured) neither sees alice's query nor kills it, on the
    // owner or through the proxies.
    for via in [&c1, &c2] {
        let peek = send_as(&http, Method::GET, format!("{via}/v1/query/{query_id}"), "", "mallory").await;
        assert_eq!(peek.status, 403, "{}", String::from_utf8_lossy(&peek.body));
        let kill = send_as(&http, Method::PUT, format!("{via}/v1/query/{query_id}/killed"), "pwned", "mallory").await;
        assert_eq!(kill.status, 403, "{}", String::from_utf8_lossy(&kill.body));
        assert!(String::from_utf8_lossy(&kill.body).contains("Access Denied: Cannot kill query owned by alice"));
        let cancel = send_as(&http, Method::DELETE, format!("{via}/v1/query/{query_id}"), "", "mallory").await;
        assert_eq!(cancel.status, 403);
        let listed = json(&send_as(&http, Method::GET, format!("{via}/v1/query"), "", "mallory").await);
        assert_eq!(listed, serde_json::json!([]), "mallory sees no one else's query");
    }
    // Killed from coordinator-1: the client sees ADMINISTRATIVELY_KILLED.
    let killed = send(&http, Method::PUT, format!("{c1}/v1/query/{query_id}/killed"), "").await;
    assert_eq!(killed.status, 200, "{}", String::from_utf8_lossy(&killed.body));
    let outcome = tokio::time::timeout(Duration::from_secs(20), follower).await.expect("client ends").expect("client task");
    assert_eq!((outcome.state.as_str(), outcome.error_name.as_deref()), ("FAILED", Some("ADMINISTRATIVELY_KILLED")), "{outcome:?}");
    let info = json(&send(&http, Method::GET, format!("{c1}/v1/query/{query_id}"), "").await);
    assert_eq!(info["errorCode"]["code"], 38, "{info}");
    assert_eq!(info["failureInfo"]["message"], format!("Query killed via PUT /v1/query/{query_id}/killed"));
    let again = send(&http, Method::PUT, format!("{c1}/v1/query/{query_id}/killed"), "").await;
    assert_eq!(again.status, 409, "a finished query cannot be killed again");

    // Both hops were timed: coordinator-1 → an RM, and an RM → coordinator-2 (the owner).
    let proxied_to = |text: &str, role: &str| {
        let series = format!("fireball_proxy_request_duration_seconds_count{{target_role=\"{role}\",status_class=\"2xx\"}} ");
        text.lines().find_map(|line| line.strip_prefix(series.as_str())).and_then(|count| count.parse::<u64>().ok()).unwrap_or(0)
    };
    let c1_metrics = String::from_utf8_lossy(&send(&http, Method::GET, format!("{c1}/metrics"), "").await.body).to_string();
    assert!(proxied_to(&c1_metrics, "resource_manager") >= 3, "coordinator-1 proxied to an RM:\n{c1_metrics}");
    let mut rm_hops = 0;
    for rm in ["rm-1", "rm-2"] {
        let rm_metrics = String::from_utf8_lossy(&send(&http, Method::GET, format!("{}/metrics", cluster.uri(rm)), "").await.body).to_string();
        rm_hops += proxied_to(&rm_metrics, "coordinator");
    }
    assert!(rm_hops >= 3, "the RMs proxied to the owner at least for the GETs and the kills ({rm_hops})");

    // Graceful shutdown of coordinator-1 while it runs a query.
    let client = StatementClient::new("test-client", "bob");
    let sql = "SELECT * FROM synthetic(run_time => '4s', memory => '10MB', tasks => 2, rows => 6)";
    let first = client.submit(&c1, sql).await.expect("submitted");
    let running = tokio::spawn(async move { client.follow(first).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Stopping a node is an internal request: an unsigned one is refused, the operator's
    // (signed with the shared secret) is taken.
    let unsigned = send(&http, Method::PUT, format!("{c1}/v1/info/state"), "\"SHUTTING_DOWN\"").await;
    assert_eq!(unsigned.status, 401);
    let operator = processes::internal_client("operator", 10_000);
    let wrong = send(&operator, Method::PUT, format!("{c1}/v1/info/state"), "\"SLEEP\"").await;
    assert_eq!(wrong.status, 400);
    assert!(String::from_utf8_lossy(&wrong.body).contains("SLEEP"));
    let started = send(&operator, Method::PUT, format!("{c1}/v1/info/state"), "\"SHUTTING_DOWN\"").await;
    assert_eq!(started.status, 200);
    assert_eq!(json(&send(&http, Method::GET, format!("{c1}/v1/info/state"), "").await), "SHUTTING_DOWN");
    let back = send(&operator, Method::PUT, format!("{c1}/v1/info/state"), "\"ACTIVE\"").await;
    assert_eq!(back.status, 400, "no way back from SHUTTING_DOWN");
    let refused = StatementClient::new("test-client", "carol").run(&c1, "SELECT 1").await;
    assert_eq!(refused.error_name.as_deref(), Some("SERVER_SHUTTING_DOWN"), "{refused:?}");
    let outcome = tokio::time::timeout(Duration::from_secs(30), running).await.expect("query ends").expect("client task");
    assert_eq!(outcome.state, "FINISHED", "the running query finishes: {outcome:?}");
    assert_eq!(outcome.rows.len(), 6);
    let status = cluster.exit_status("coordinator-1", Duration::from_secs(20)).await;
    assert!(status.success(), "coordinator-1 exited with {status}");

    // SIGTERM drains like the PUT: a worker running a task stays up, SHUTTING_DOWN; a second
    // SIGTERM ends it at once (exit status 1), and its log says why.
    let client = StatementClient::new("test-client", "dave");
    let sql = "SELECT * FROM synthetic(run_time => '60s', tasks => 2, rows => 2)";
    let _long = client.submit(&c2, sql).await.expect("submitted");
    let w1 = cluster.uri("worker-1");
    // Two tasks over two workers: one lands on worker-1 once the query is scheduled.
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.signal("worker-1");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(json(&send(&http, Method::GET, format!("{w1}/v1/info/state"), "").await), "SHUTTING_DOWN", "draining, not gone");
    cluster.signal("worker-1");
    let status = cluster.exit_status("worker-1", Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(1), "a second signal exits at once, without a clean drain");
    let log = std::fs::read_to_string(cluster.logs.join("worker-1.log")).expect("worker-1's log");
    assert!(log.contains("second signal"), "the log says why it stopped at once:\n{log}");

    // Without any RM, a proxied request is answered 503 promptly.
    cluster.kill("rm-1");
    cluster.kill("rm-2");
    let asked = processes::wall_now();
    let unavailable = send(&http, Method::GET, format!("{c2}/v1/cluster"), "").await;
    let took = asked.elapsed();
    assert_eq!(unavailable.status, 503, "{}", String::from_utf8_lossy(&unavailable.body));
    assert!(String::from_utf8_lossy(&unavailable.body).contains("No resource manager answered"));
    assert!(took < Duration::from_secs(4), "503 took {took:?}");
}
