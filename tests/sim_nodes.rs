//! Node behaviours under simulation: discovery replication and RM catch-up, batched query
//! heartbeats, abandoned-task cleanup, and message-level fault injection.
#![cfg(madsim)]

use std::time::Duration;

use fireball::local::ClusterLayout;
use fireball::protocol::client::StatementClient;
use fireball::runtime::http_client::{HttpClient, Request};
use hyper::Method;
use fireball::runtime::sim_hooks::{Event, MessageKind};
use fireball_sim::cluster::SimCluster;
use fireball_sim::faults::{Action, Glob, Rule};
use fireball_sim::trace::Trace;
use serde_json::Value;

fn layout(resource_managers: u32, coordinators: u32, workers: u32, extra: &[(&str, &str)]) -> ClusterLayout {
    let mut layout = ClusterLayout::new(resource_managers, coordinators, workers);
    layout.properties.push(("memory.pool-size".into(), "1GB".into()));
    layout.properties.push(("internal-communication.request-timeout".into(), "2s".into()));
    for (key, value) in extra {
        layout.properties.push((key.to_string(), value.to_string()));
    }
    layout
}

fn glob(pattern: &str) -> Glob {
    Glob(pattern.to_string())
}

async fn sleep_s(seconds: u64) {
    madsim::time::sleep(Duration::from_secs(seconds)).await;
}

/// Node ids an RM's discovery lists for `role`, asked from a client host.
async fn discovered(cluster: &mut SimCluster, rm: &str, role: &str) -> Vec<String> {
    let url = format!("{}/v1/service/{role}", cluster.node(rm).uri);
    let answer = cluster
        .client_node()
        .spawn(async move {
            let http = HttpClient::new("probe", 2_000, 0);
            http.get_json::<Value>(&url, MessageKind::Other, 2_000).await.ok()
        })
        .await
        .expect("probe ran");
    let mut ids: Vec<String> = answer
        .and_then(|answer| answer["services"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|service| service["node_id"].as_str().map(String::from))
        .collect();
    ids.sort();
    ids
}

#[madsim::test]
async fn discovery_replicates_and_a_restarted_rm_catches_up() {
    let cluster_layout = layout(2, 2, 3, &[]);
    let mut cluster = SimCluster::start(cluster_layout).expect("layout");
    // rm-2 never hears an announcement directly: whatever it knows came from rm-1.
    let faults = cluster.install_message_faults();
    faults.add(Rule { from: glob("*"), to: glob("rm-2"), kind: Some(MessageKind::Announce), action: Action::Drop { probability: 1.0 } });
    sleep_s(4).await;
    let workers = vec!["worker-1".to_string(), "worker-2".to_string(), "worker-3".to_string()];
    assert_eq!(discovered(&mut cluster, "rm-1", "worker").await, workers);
    assert_eq!(discovered(&mut cluster, "rm-2", "worker").await, workers, "replicated within seconds");
    assert_eq!(discovered(&mut cluster, "rm-2", "coordinator").await.len(), 2);

    // A restarted RM starts empty and catches up from its peer's periodic push (every 2 s; the
    // first push after the restart may be lost on a connection to the old incarnation and time
    // out after 2 s, so allow two intervals and a timeout).
    cluster.restart("rm-2");
    sleep_s(1).await;
    let right_after = discovered(&mut cluster, "rm-2", "worker").await;
    sleep_s(6).await;
    assert_eq!(discovered(&mut cluster, "rm-2", "worker").await, workers, "caught up (right after restart: {right_after:?})");
}

#[madsim::test]
async fn query_heartbeats_are_one_per_rm_per_interval_whatever_the_query_count() {
    let _trace = Trace::install();
    let mut cluster = SimCluster::start(layout(2, 2, 2, &[])).expect("layout");
    let faults = cluster.install_message_faults();
    sleep_s(4).await;
    let (one, many) = (cluster.node("coordinator-1").uri.clone(), cluster.node("coordinator-2").uri.clone());
    let rm_1 = cluster.node("rm-1").uri.clone();
    let long_query = "SELECT * FROM synthetic(run_time => '60s', memory => '1MB', tasks => 1)";
    let known_promptly = cluster
        .client_node()
        .spawn(async move {
            let client = StatementClient::new("client-1", "alice");
            client.submit(&one, long_query).await.expect("submitted");
            for _ in 0..30 {
                client.submit(&many, long_query).await.expect("submitted");
            }
            // A state change is pushed to the RMs at once, not at the next 1 s heartbeat.
            let last = client.submit(&many, long_query).await.expect("submitted");
            madsim::time::sleep(Duration::from_millis(150)).await;
            let http = HttpClient::new("probe", 2_000, 0);
            // As alice: a user sees his own queries (and only those, without access rules).
            let request = Request::new(Method::GET, format!("{rm_1}/v1/query"), MessageKind::Other).header("X-Presto-User", "alice");
            let listed: Value = http.send_json(request).await.expect("list");
            let id = last["id"].as_str().expect("id").to_string();
            listed.as_array().expect("array").iter().any(|query| query["queryId"] == id)
        })
        .await
        .expect("client ran");
    assert!(known_promptly, "rm-1 must know a new query within 150 ms");
    sleep_s(3).await; // every query has started; no state changes from here on
    let count = |coordinator: &str| faults.tally(&glob(coordinator), &glob("rm-1"), MessageKind::QueryHeartbeat).delivered;
    let (one_before, many_before) = (count("coordinator-1"), count("coordinator-2"));
    sleep_s(10).await;
    let (one_sent, many_sent) = (count("coordinator-1") - one_before, count("coordinator-2") - many_before);
    // 10 s at a 1 s interval: about 10 messages to each RM, with 1 query or with 31.
    assert!((9..=11).contains(&one_sent), "1 query: {one_sent} heartbeats in 10 s");
    assert!((9..=11).contains(&many_sent), "31 queries: {many_sent} heartbeats in 10 s");
}

#[madsim::test]
async fn workers_cancel_tasks_their_coordinator_stopped_polling() {
    let trace = Trace::install();
    let mut cluster = SimCluster::start(layout(2, 2, 3, &[("task.client.timeout", "5s")])).expect("layout");
    sleep_s(4).await;
    let coordinator = cluster.node("coordinator-1").uri.clone();
    let query_id = cluster
        .client_node()
        .spawn(async move {
            let client = StatementClient::new("client-1", "alice");
            let page = client
                .submit(&coordinator, "SELECT * FROM synthetic(run_time => '10m', memory => '100MB', tasks => 3)")
                .await
                .expect("submitted");
            page["id"].as_str().expect("id").to_string()
        })
        .await
        .expect("client ran");
    sleep_s(3).await;
    cluster.kill("coordinator-1");
    sleep_s(10).await;
    let abandoned: Vec<String> = trace
        .events()
        .into_iter()
        .filter_map(|(_, event)| match event {
            Event::TaskEnded { query_id: owner, state, task_id, .. } if owner == query_id && state == "ABANDONED" => Some(task_id),
            _ => None,
        })
        .collect();
    assert_eq!(abandoned.len(), 3, "every task of the dead coordinator's query is cancelled: {abandoned:?}");
}

#[madsim::test]
async fn the_fault_filter_drops_and_delays_by_sender_receiver_and_kind() {
    let trace = Trace::install();
    let mut cluster = SimCluster::start(layout(2, 2, 3, &[])).expect("layout");
    let faults = cluster.install_message_faults();
    // Coordinators can never poll rm-1 (they must fail over), and task polls crawl.
    faults.add(Rule {
        from: glob("coordinator-*"),
        to: glob("rm-1"),
        kind: Some(MessageKind::ClusterView),
        action: Action::Drop { probability: 1.0 },
    });
    faults.add(Rule { from: glob("*"), to: glob("worker-*"), kind: Some(MessageKind::TaskStatus), action: Action::Delay { min_ms: 200, max_ms: 400 } });
    sleep_s(4).await;
    let coordinators = cluster.coordinator_uris();
    let outcomes = cluster
        .client_node()
        .spawn(async move {
            let client = StatementClient::new("client-1", "alice");
            let mut outcomes = Vec::new();
            for index in 0..6 {
                let sql = "SELECT * FROM synthetic(run_time => '1s', memory => '10MB', tasks => 2, rows => 4)";
                outcomes.push(client.run(&coordinators[index % 2], sql).await);
            }
            outcomes
        })
        .await
        .expect("client ran");
    assert!(outcomes.iter().all(|outcome| outcome.state == "FINISHED" && outcome.rows.len() == 4), "{outcomes:?}");
    let polls = faults.tally(&glob("coordinator-*"), &glob("rm-1"), MessageKind::ClusterView);
    assert!(polls.dropped > 0 && polls.delivered == 0, "{polls:?}");
    assert!(faults.tally(&glob("coordinator-*"), &glob("rm-2"), MessageKind::ClusterView).delivered > 0);
    assert!(faults.tally(&glob("*"), &glob("worker-*"), MessageKind::TaskStatus).delayed > 0);
    // Other kinds to rm-1 were untouched.
    assert!(faults.tally(&glob("coordinator-*"), &glob("rm-1"), MessageKind::QueryHeartbeat).dropped == 0);
    assert!(trace.unfinished_queries().is_empty());
}

/// `/metrics` text of a node, asked from a client host.
async fn scrape(cluster: &mut SimCluster, node: &str) -> String {
    let uri = cluster.node(node).uri.clone();
    cluster
        .client_node()
        .spawn(async move {
            let http = HttpClient::new("probe", 2_000, 0);
            let text = fireball::metrics::http::scrape(&http, &uri, 2_000).await.expect("scraped");
            text
        })
        .await
        .expect("probe ran")
}

fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[madsim::test]
async fn metrics_are_per_node_and_show_heartbeat_lag() {
    let mut cluster = SimCluster::start(layout(2, 2, 2, &[])).expect("layout");
    let faults = cluster.install_message_faults();
    sleep_s(4).await;
    let coordinator = cluster.node("coordinator-1").uri.clone();
    cluster
        .client_node()
        .spawn(async move {
            let client = StatementClient::new("client-1", "alice");
            for _ in 0..3 {
                let first = client.submit(&coordinator, "SELECT * FROM synthetic(run_time => '1s', memory => '1MB', tasks => 1)").await.expect("submitted");
                assert_eq!(client.follow(first).await.state, "FINISHED");
            }
        })
        .await
        .expect("client ran");
    // Many nodes share this process, yet each has its own registry.
    let admitted = "fireball_queries_admitted_total{group=\"global\"}";
    let text = scrape(&mut cluster, "coordinator-1").await;
    assert_eq!(sample(&text, admitted), Some(3.0), "{text}");
    assert_eq!(sample(&scrape(&mut cluster, "coordinator-2").await, admitted), None);

    // rm-1 stops hearing worker-1: its age of worker-1's newest heartbeat grows, rm-2's does not.
    faults.add(Rule { from: glob("worker-1"), to: glob("rm-1"), kind: Some(MessageKind::NodeHeartbeat), action: Action::Drop { probability: 1.0 } });
    sleep_s(6).await;
    let age = "fireball_heartbeat_age_seconds{kind=\"node_heartbeat\",node_id=\"worker-1\"}";
    let lagging = sample(&scrape(&mut cluster, "rm-1").await, age).expect("rm-1 age");
    let fresh = sample(&scrape(&mut cluster, "rm-2").await, age).expect("rm-2 age");
    assert!(lagging >= 5.0 && fresh < 2.0, "rm-1 {lagging} s, rm-2 {fresh} s");
}

/// A signal (madsim's ctrl-c, what SIGTERM is to `fireball server`) shuts a coordinator down
/// gracefully through `node::run`: new queries are refused, the running one finishes, then the
/// node exits and the harness ends its process; a restart brings it back.
#[madsim::test]
async fn a_signalled_coordinator_drains_exits_and_comes_back_on_restart() {
    let mut cluster = SimCluster::start(layout(1, 1, 2, &[("shutdown.grace-period", "1m")])).expect("layout");
    sleep_s(3).await;
    let coordinator = cluster.node("coordinator-1").uri.clone();
    let run = |uri: String, user: &'static str, sql: &'static str| async move { StatementClient::new("client", user).run(&uri, sql).await };
    let long = "SELECT * FROM synthetic(run_time => '6s', tasks => 2, rows => 2)";
    let running = cluster.client_node().spawn(run(coordinator.clone(), "alice", long));
    sleep_s(1).await;
    cluster.signal("coordinator-1");
    sleep_s(1).await;
    let refused = cluster.client_node().spawn(run(coordinator.clone(), "bob", "SELECT 1")).await.expect("client ran");
    assert_eq!(refused.error_name.as_deref(), Some("SERVER_SHUTTING_DOWN"), "{refused:?}");
    assert!(!cluster.has_exited("coordinator-1"), "still draining its running query");
    let finished = running.await.expect("client ran");
    assert_eq!((finished.state.as_str(), finished.rows.len()), ("FINISHED", 2), "{finished:?}");
    let mut waited_s = 0;
    while !cluster.has_exited("coordinator-1") {
        assert!(waited_s < 20, "coordinator-1 did not exit after its query finished");
        sleep_s(1).await;
        waited_s += 1;
    }
    cluster.restart("coordinator-1");
    sleep_s(3).await;
    assert!(!cluster.has_exited("coordinator-1"));
    let again = cluster.client_node().spawn(run(coordinator, "carol", "SELECT 1")).await.expect("client ran");
    assert_eq!(again.state, "FINISHED", "the restarted coordinator serves: {again:?}");
}
