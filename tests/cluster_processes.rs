//! Production mode, as an operator runs it: separate `fireball server --etc DIR` processes
//! (2 RMs, 2 coordinators, 3 workers) talking real HTTP on loopback.
//!
//! Checks that queries submitted to both coordinators return the right rows, that the
//! cluster-wide concurrency limit holds across coordinators, and that after one RM process is
//! killed no query is lost and admission carries on through the other RM. Scrapes `/metrics` of a
//! coordinator, an RM and a worker on the way (valid text; admissions, heartbeats, view age).
#![cfg(not(madsim))]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use fireball::protocol::client::{QueryOutcome, StatementClient};
use fireball::runtime::http_client::HttpClient;
use fireball::runtime::sim_hooks::MessageKind;
use serde_json::Value;

const CONCURRENCY_LIMIT: usize = 3;
const ROWS: u64 = 6;

// Each process test uses only part of the shared harness (this one never calls `uri` or
// `exit_status`), so unused items there are expected, not dead code to remove.
#[allow(dead_code)]
#[path = "support/processes.rs"]
mod processes;

use processes::Cluster;

const NAMES: [&str; 7] = ["rm-1", "rm-2", "coordinator-1", "coordinator-2", "worker-1", "worker-2", "worker-3"];

fn start_cluster() -> Cluster {
    let extra_config = format!(
        "query.max-concurrent-queries={CONCURRENCY_LIMIT}\nconcurrency-threshold-to-enable-resource-group-refresh=0\n"
    );
    Cluster::start("fireball-processes", &NAMES, &extra_config)
}

/// Waits (bounded) until an RM's view lists all three workers.
async fn wait_for_workers(http: &HttpClient, rm_uri: &str) {
    let deadline = processes::wall_now() + Duration::from_secs(30);
    loop {
        let view: Result<Value, _> =
            http.get_json(&format!("{rm_uri}/v1/resourcemanager/clusterView"), MessageKind::Other, 2_000).await;
        let workers = view.ok().and_then(|view| view["workers"].as_array().map(Vec::len)).unwrap_or(0);
        if workers == 3 {
            return;
        }
        assert!(processes::wall_now() < deadline, "workers did not appear at {rm_uri} within 30 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Submits `count` queries alternating between the coordinators while a sampler records how many
/// are RUNNING cluster-wide (each owner answers for its own queries, exactly).
async fn run_batch(coordinators: &[String], count: usize, label: &str) -> (Vec<QueryOutcome>, usize, bool) {
    let submitted: Arc<Mutex<Vec<(String, String)>>> = Arc::new(Mutex::new(Vec::new()));
    let mut handles = Vec::new();
    for index in 0..count {
        let coordinator = coordinators[index % coordinators.len()].clone();
        let submitted = submitted.clone();
        let user = format!("{label}{index}");
        handles.push(tokio::spawn(async move {
            let client = StatementClient::new("test-client", &user);
            let sql = format!("SELECT * FROM synthetic(run_time => '1500ms', memory => '64MB', tasks => 3, rows => {ROWS})");
            let first = client.submit(&coordinator, &sql).await.expect("submit");
            let query_id = first["id"].as_str().expect("query id").to_string();
            submitted.lock().expect("lock").push((coordinator, query_id));
            client.follow(first).await
        }));
    }
    let sampler = {
        let submitted = submitted.clone();
        tokio::spawn(async move {
            // Signed: a node's own request may see every user's queries (an anonymous one none).
            let http = processes::internal_client("test-sampler", 2_000);
            let (mut max_running, mut saw_queued) = (0, false);
            for _ in 0..600 {
                let queries = submitted.lock().expect("lock").clone();
                let mut running = 0;
                let mut open = 0;
                for (coordinator, query_id) in &queries {
                    let info: Result<Value, _> =
                        http.get_json(&format!("{coordinator}/v1/query/{query_id}"), MessageKind::Other, 2_000).await;
                    match info.ok().as_ref().and_then(|info| info["state"].as_str().map(String::from)).as_deref() {
                        Some("RUNNING") => {
                            running += 1;
                            open += 1;
                        }
                        Some("QUEUED") => {
                            saw_queued = true;
                            open += 1;
                        }
                        _ => {}
                    }
                }
                max_running = max_running.max(running);
                if queries.len() == count && open == 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (max_running, saw_queued)
        })
    };
    let mut outcomes = Vec::new();
    for handle in handles {
        outcomes.push(tokio::time::timeout(Duration::from_secs(120), handle).await.expect("query finishes").expect("task"));
    }
    let (max_running, saw_queued) = sampler.await.expect("sampler");
    (outcomes, max_running, saw_queued)
}

fn assert_all_finished(outcomes: &[QueryOutcome]) {
    for outcome in outcomes {
        assert_eq!(outcome.state, "FINISHED", "{outcome:?}");
        let mut rows: Vec<u64> = outcome.rows.iter().map(|row| row[1].as_u64().expect("row number")).collect();
        rows.sort();
        assert_eq!(rows, (0..ROWS).collect::<Vec<_>>(), "{outcome:?}");
        let workers: std::collections::BTreeSet<&str> = outcome.rows.iter().filter_map(|row| row[2].as_str()).collect();
        assert!(workers.iter().all(|worker| worker.starts_with("worker-")), "{workers:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_share_the_limit_and_survive_losing_an_rm() {
    let mut cluster = start_cluster();
    scenario(&mut cluster).await;
}

/// Garbage from a peer or a client gets a clear 4xx and changes nothing.
async fn misbehaving_peers_get_clear_errors(unsigned: &HttpClient, cluster: &Cluster) {
    use fireball::runtime::http_client::Request;
    use hyper::Method;
    let rm = &cluster.uris["rm-1"];
    // Unsigned, a heartbeat is not even read: 401 (the cluster has a shared secret).
    let answer = unsigned.send(Request::new(Method::POST, format!("{rm}/v1/resourcemanager/queryHeartbeat"), MessageKind::Other).text("{}")).await;
    assert_eq!(answer.expect("the RM answers").status, 401);
    // Signed but malformed: a clear 4xx.
    let http = &processes::internal_client("coordinator-1", 5_000);
    let send = |method: Method, url: String, body: &str, headers: &[(&str, &str)]| {
        let mut request = Request::new(method, url, MessageKind::Other).text(body.to_string()).timeout_ms(5_000);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let http = http.clone();
        async move { http.send(request).await.expect("the node answers") }
    };
    let json = [("content-type", "application/json")];
    let answer = send(Method::POST, format!("{rm}/v1/resourcemanager/queryHeartbeat"), "{\"nonsense\": 1}", &json).await;
    assert!((400..500).contains(&answer.status), "bad heartbeat: {}", answer.status);
    let answer = send(Method::POST, format!("{rm}/v1/resourcemanager/nodeHeartbeat"), "not json at all", &json).await;
    assert!((400..500).contains(&answer.status), "garbage heartbeat: {}", answer.status);
    let worker = &cluster.uris["worker-1"];
    let answer = send(Method::POST, format!("{worker}/v1/task/t1"), "[1, 2, 3]", &json).await;
    assert!((400..500).contains(&answer.status), "bad task: {}", answer.status);
    let coordinator = &cluster.uris["coordinator-1"];
    let answer = send(Method::POST, format!("{coordinator}/v1/statement"), "SELECT 1", &[]).await;
    assert_eq!((answer.status, String::from_utf8_lossy(&answer.body).to_string()), (400, "User must be set".to_string()));
    let answer = send(Method::GET, format!("{coordinator}/v1/statement/executing/nope/0?slug=x"), "", &[]).await;
    assert_eq!(answer.status, 404);
    let answer = send(Method::POST, format!("{coordinator}/v1/statement"), "SELECT 1", &[("X-Presto-User", "a"), ("X-Presto-Session", "broken")]).await;
    assert_eq!(answer.status, 400, "malformed session header");
}

/// The value of the sample `series` (`name{labels}` exactly as written) in a scrape.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// `/metrics` of a node: 200, Prometheus' content type, and text Prometheus' own parser accepts.
async fn scrape(http: &HttpClient, uri: &str) -> String {
    use fireball::runtime::http_client::Request;
    let answer = http.send(Request::new(hyper::Method::GET, format!("{uri}/metrics"), MessageKind::Other).timeout_ms(5_000)).await.expect("scrape");
    assert_eq!(answer.status, 200, "{uri}/metrics");
    assert_eq!(answer.header("content-type"), Some("text/plain; version=0.0.4"), "{uri}/metrics");
    let text = String::from_utf8(answer.body.to_vec()).expect("utf-8");
    promtool_check_metrics(uri, &text);
    text
}

/// Pipes a scrape through `promtool check metrics` (Debian's `prometheus` package): an independent
/// parser and linter, so fireball's writer is not checked against a reader of its own making.
/// `ci/test` installs promtool and sets `FIREBALL_PROMTOOL`, which makes it required; without
/// either that or a `promtool` on PATH the check is skipped, loudly.
fn promtool_check_metrics(uri: &str, text: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let required = std::env::var_os("FIREBALL_PROMTOOL");
    let program = required.clone().unwrap_or_else(|| "promtool".into());
    let child = Command::new(&program).args(["check", "metrics"]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(error) if required.is_none() && error.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("SKIPPED: promtool is not installed; {uri}/metrics was not checked by Prometheus' parser");
            return;
        }
        Err(error) => panic!("cannot run {program:?} check metrics: {error}"),
    };
    child.stdin.take().expect("piped stdin").write_all(text.as_bytes()).expect("write to promtool");
    let output = child.wait_with_output().expect("promtool ran");
    assert!(
        output.status.success(),
        "promtool check metrics rejects {uri}/metrics ({}):\n{}{}\n{text}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// After `queries` finished queries in the legacy `global` group: what an operator watches is there.
async fn metrics_after_queries(http: &HttpClient, cluster: &Cluster, queries: usize) {
    let (rm, worker) = (&cluster.uris["rm-1"], &cluster.uris["worker-1"]);
    // An unknown path is labelled `unmatched`, never by its raw path (bounded label values).
    let _: Result<Value, _> = http.get_json(&format!("{}/no/such/path/42", cluster.uris["coordinator-1"]), MessageKind::Other, 2_000).await;
    let (mut admitted, mut finished) = (0.0, 0.0);
    for name in ["coordinator-1", "coordinator-2"] {
        let text = scrape(http, &cluster.uris[name]).await;
        admitted += sample(&text, "fireball_queries_admitted_total{group=\"global\"}").unwrap_or(0.0);
        finished += sample(&text, "fireball_queries_finished_total{group=\"global\",state=\"FINISHED\"}").unwrap_or(0.0);
        let view_age = sample(&text, "fireball_cluster_view_age_seconds").expect("view age");
        assert!(view_age < 5.0, "{name} admits on a view {view_age} s old");
        assert_eq!(sample(&text, "fireball_resource_group_running_queries{group=\"global\"}"), Some(0.0), "{name}");
        assert_eq!(sample(&text, "fireball_resource_group_queued_queries{group=\"global\"}"), Some(0.0), "{name}");
        let sent = format!("fireball_heartbeats_sent_total{{kind=\"query_heartbeat\",target=\"{rm}\",outcome=\"success\"}}");
        assert!(sample(&text, &sent).unwrap_or(0.0) >= 1.0, "{name}: no {sent}");
        let statements = "fireball_http_request_duration_seconds_count{method=\"POST\",route=\"/v1/statement\",status_class=\"2xx\"}";
        assert!(sample(&text, statements).unwrap_or(0.0) >= 1.0, "{name}: no {statements}");
        if name == "coordinator-1" {
            let unmatched = "fireball_http_request_duration_seconds_count{method=\"GET\",route=\"unmatched\",status_class=\"4xx\"}";
            assert!(sample(&text, unmatched).unwrap_or(0.0) >= 1.0, "no {unmatched}");
            assert!(!text.contains("/no/such/path"), "a raw path became a label value");
        }
    }
    assert_eq!((admitted, finished), (queries as f64, queries as f64), "admissions and finishes over both coordinators");

    let text = scrape(http, rm).await;
    for kind in ["node_heartbeat", "query_heartbeat"] {
        let received = format!("fireball_heartbeats_received_total{{kind=\"{kind}\",outcome=\"applied\"}}");
        assert!(sample(&text, &received).unwrap_or(0.0) >= 1.0, "rm-1: no {received}");
    }
    let age = sample(&text, "fireball_heartbeat_age_seconds{kind=\"node_heartbeat\",node_id=\"worker-1\"}").expect("worker-1 heartbeat age");
    assert!(age < 5.0, "rm-1 last heard from worker-1 {age} s ago");
    assert!(sample(&text, "fireball_heartbeat_gap_seconds_count{kind=\"node_heartbeat\"}").unwrap_or(0.0) >= 1.0);
    assert_eq!(sample(&text, "fireball_cluster_active_workers"), Some(3.0));

    let text = scrape(http, worker).await;
    let sent = format!("fireball_heartbeats_sent_total{{kind=\"node_heartbeat\",target=\"{rm}\",outcome=\"success\"}}");
    assert!(sample(&text, &sent).unwrap_or(0.0) >= 1.0, "worker-1: no {sent}");
}

async fn scenario(cluster: &mut Cluster) {
    let http = HttpClient::new("test", 2_000, 0);
    let internal = processes::internal_client("test", 2_000);
    wait_for_workers(&internal, &cluster.uris["rm-1"]).await;
    wait_for_workers(&internal, &cluster.uris["rm-2"]).await;
    misbehaving_peers_get_clear_errors(&http, cluster).await;
    let coordinators = vec![cluster.uris["coordinator-1"].clone(), cluster.uris["coordinator-2"].clone()];

    // Both coordinators answer, with the right rows.
    let (outcomes, max_running, saw_queued) = run_batch(&coordinators, 8, "healthy").await;
    assert_all_finished(&outcomes);
    // 8 queries of 1.5 s against a limit of 3: without the cluster-wide limit all 8 would run at
    // once. Presto's policy at threshold 0 lets each coordinator start one query per fresh view,
    // so the true count may briefly exceed the limit by one per *other* coordinator (here 1).
    assert!(saw_queued, "queries must have waited for the cluster-wide limit");
    assert!(max_running <= CONCURRENCY_LIMIT + 1, "running {max_running} > limit {CONCURRENCY_LIMIT} + 1");
    assert!(max_running >= 2, "queries should have run concurrently (max {max_running})");
    metrics_after_queries(&http, cluster, 8).await;

    // Kill rm-1 while a batch is queued and running: nothing is lost, admission carries on.
    let cluster_coordinators = coordinators.clone();
    let batch = tokio::spawn(async move { run_batch(&cluster_coordinators, 8, "failover").await });
    tokio::time::sleep(Duration::from_millis(800)).await;
    cluster.kill("rm-1");
    let (outcomes, max_running, saw_queued) = batch.await.expect("batch");
    assert_all_finished(&outcomes);
    assert!(saw_queued, "the limit must still queue queries after rm-1 died");
    assert!(max_running <= CONCURRENCY_LIMIT + 1, "running {max_running} > limit {CONCURRENCY_LIMIT} + 1 after rm-1 died");

    // And new queries are still admitted through rm-2 alone.
    let (outcomes, _, _) = run_batch(&coordinators, 4, "after").await;
    assert_all_finished(&outcomes);
}
