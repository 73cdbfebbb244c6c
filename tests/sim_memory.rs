//! Cluster memory in a simulated cluster, through the client protocol: Presto's per-node and
//! distributed per-query limits fail queries with Presto's errors, and the low-memory killer
//! resolves an out-of-memory deadlock by killing one query, whose memory then leaves every worker.
#![cfg(madsim)]

use std::time::Duration;

use fireball::local::ClusterLayout;
use fireball::protocol::client::{QueryOutcome, StatementClient};
use fireball_sim::cluster::SimCluster;
use fireball_sim::memory_oracle::MemoryTracker;
use fireball_sim::oracle::Entry;
use fireball_sim::trace::Trace;

fn cluster(coordinators: u32, workers: u32, properties: &[(&str, &str)]) -> SimCluster {
    let mut layout = ClusterLayout::new(2, coordinators, workers);
    for (name, value) in properties {
        layout.properties.push((name.to_string(), value.to_string()));
    }
    SimCluster::start(layout).expect("layout")
}

/// Runs each `(coordinator index, sql)` concurrently from the client host; outcomes in order.
async fn run_all(cluster: &mut SimCluster, queries: Vec<(usize, &'static str)>) -> Vec<QueryOutcome> {
    let coordinators = cluster.coordinator_uris();
    cluster
        .client_node()
        .spawn(async move {
            let mut running = Vec::new();
            for (index, (coordinator, sql)) in queries.into_iter().enumerate() {
                let uri = coordinators[coordinator].clone();
                running.push(madsim::task::spawn(async move {
                    StatementClient::new(&format!("client-{index}"), "alice").run(&uri, sql).await
                }));
            }
            let mut outcomes = Vec::new();
            for query in running {
                outcomes.push(query.await.expect("client task"));
            }
            outcomes
        })
        .await
        .expect("client ran")
}

#[madsim::test]
async fn per_node_and_distributed_limits_fail_with_presto_errors() {
    let _trace = Trace::install();
    let mut cluster = cluster(1, 2, &[("memory.pool-size", "4GB"), ("query.max-memory-per-node", "2GB"), ("query.max-memory", "3GB")]);
    madsim::time::sleep(Duration::from_secs(4)).await;
    let outcomes = run_all(
        &mut cluster,
        vec![
            // 3GB on one node at creation: over the per-node limit before it starts.
            (0, "SELECT * FROM synthetic(run_time => '2s', memory => '3GB')"),
            // Two tasks per worker growing to 900MB: 1.8GB per node is allowed, 3.6GB in all is not.
            (0, "SELECT * FROM synthetic(run_time => '5s', memory => '100MB', peak_memory => '900MB', tasks => 4)"),
            // Growing past the per-node limit on the way: fails while running.
            (0, "SELECT * FROM synthetic(run_time => '5s', memory => '100MB', peak_memory => '2500MB')"),
            (0, "SELECT * FROM synthetic(run_time => '2s', memory => '100MB', peak_memory => '1GB', tasks => 2)"),
        ],
    )
    .await;
    let errors: Vec<(Option<&str>, Option<&str>)> =
        outcomes.iter().map(|outcome| (outcome.error_name.as_deref(), outcome.error_message.as_deref())).collect();
    assert_eq!(errors[0].0, Some("EXCEEDED_LOCAL_MEMORY_LIMIT"), "{outcomes:?}");
    assert!(errors[0].1.is_some_and(|message| message.starts_with("Query exceeded per-node user memory limit of 2GB")), "{errors:?}");
    assert_eq!(errors[1], (Some("EXCEEDED_GLOBAL_MEMORY_LIMIT"), Some("Query exceeded distributed user memory limit of 3GB")));
    assert_eq!(errors[2].0, Some("EXCEEDED_LOCAL_MEMORY_LIMIT"), "{outcomes:?}");
    assert_eq!((outcomes[3].state.as_str(), outcomes[3].rows.len()), ("FINISHED", 1), "within every limit: {outcomes:?}");
}

#[madsim::test]
async fn the_killer_ends_a_deadlock_with_one_victim_and_frees_its_memory_everywhere() {
    let trace = Trace::install();
    let mut cluster = cluster(
        2,
        2,
        &[
            ("memory.pool-size", "1GB"),
            ("query.low-memory-killer.policy", "total-reservation"),
            ("query.low-memory-killer.delay", "3s"),
            ("query.low-memory-killer.scope", "cluster"),
        ],
    );
    madsim::time::sleep(Duration::from_secs(4)).await;
    // Each query puts a task on both workers, growing to 700MB: two of them cannot both fit in a
    // 1GB pool, and each waits for memory the other holds — only a kill can end it.
    let sql = "SELECT * FROM synthetic(run_time => '10s', memory => '100MB', peak_memory => '700MB', tasks => 2)";
    let outcomes = run_all(&mut cluster, vec![(0, sql), (1, sql)]).await;
    let mut states: Vec<(&str, Option<&str>)> = outcomes.iter().map(|outcome| (outcome.state.as_str(), outcome.error_name.as_deref())).collect();
    states.sort();
    assert_eq!(states, vec![("FAILED", Some("CLUSTER_OUT_OF_MEMORY")), ("FINISHED", None)], "{outcomes:?}");
    let killed = outcomes.iter().find(|outcome| outcome.state == "FAILED").expect("a victim");
    assert_eq!(
        killed.error_message.as_deref(),
        Some("Query killed because the cluster is out of memory. Please try again in a few minutes.")
    );
    madsim::time::sleep(Duration::from_secs(2)).await;
    let mut memory = MemoryTracker::default();
    let entries: Vec<(u64, Entry)> = trace.events().into_iter().map(|(at_ms, event)| (at_ms, Entry::Node(event))).collect();
    for (at_ms, entry) in &entries {
        memory.on_entry(*at_ms, entry);
    }
    let report = memory.finish(entries.last().map_or(0, |(at_ms, _)| *at_ms));
    assert!(report.oom_episodes >= 1 && report.kills == 1, "{report:?}");
    assert_eq!(report.overlapping_kills, 0);
    assert!(report.leaked.is_empty(), "the victim's memory must leave every worker: {:?}", report.leaked);
}
