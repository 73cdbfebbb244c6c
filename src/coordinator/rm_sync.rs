//! The coordinator's two conversations with the resource managers.
//!
//! **Query heartbeats.** One batched message per RM carries *all* of this coordinator's queries, so
//! the message count does not grow with the number of queries (Presto sends one heartbeat per query
//! per interval). It goes out every `resource-manager.query-heartbeat-interval`, and also promptly
//! after any query changes state, coalesced over `resource-manager.query-heartbeat-coalesce-interval`
//! so that a burst of changes costs one message. At most one send per RM is in flight; a slow or
//! dead RM never delays the others, and a newer batch supersedes an unsent one.
//!
//! **The cluster view.** Every `resource-group-runtimeinfo-refresh-interval` the coordinator polls
//! one RM, chosen at random among the healthy ones, failing over to the others within the same
//! round. A failed round changes nothing: the last view stays, and so does the time of the last
//! successful refresh, which is what holds queries at the limit in the queue while no RM answers.

use std::sync::Arc;

use super::Coordinator;
use crate::snapshot_sender::SnapshotSender;
use crate::runtime::sim_hooks::MessageKind;
use crate::wire::{paths, ClusterView};

/// Bound on how long one poll may take before the next RM is tried.
const POLL_TIMEOUT_MS_MIN: u64 = 500;

pub async fn run_query_heartbeats(coordinator: Coordinator) {
    let interval_ms = coordinator.config().query_heartbeat_interval_ms;
    let coalesce_ms = coordinator.config().query_heartbeat_coalesce_ms;
    let mut fan_out = SnapshotSender::new(paths::QUERY_HEARTBEAT, MessageKind::QueryHeartbeat).with_metrics(&coordinator.context().metrics);
    loop {
        tokio::select! {
            biased;
            _ = crate::runtime::sleep_ms(interval_ms) => {}
            _ = coordinator.inner.heartbeat_due.notified() => crate::runtime::sleep_ms(coalesce_ms).await,
        }
        let now_ms = coordinator.now_ms();
        let batch = Arc::new(coordinator.with_manager(|manager| manager.heartbeat(now_ms, coordinator.self_uri())));
        let timeout_ms = coordinator.config().request_timeout_ms.min(interval_ms.max(1_000));
        let uris = coordinator.inner.resource_managers.all();
        fan_out.send(&coordinator.context().client, uris, batch, timeout_ms);
    }
}

pub async fn run_view_poller(coordinator: Coordinator) {
    let interval_ms = coordinator.config().runtimeinfo_refresh_interval_ms;
    let nodes_interval_ms = coordinator.config().memory_pool_fetch_interval_ms;
    let timeout_ms = coordinator.config().request_timeout_ms.min((interval_ms * 5).max(POLL_TIMEOUT_MS_MIN));
    let mut nodes_fetched_ms: Option<u64> = None;
    loop {
        crate::runtime::sleep_ms(interval_ms).await;
        // Group counts every refresh interval; workers and memory every
        // `resource-manager.memory-pool-fetch-interval`, as Presto polls them separately.
        let now_ms = coordinator.now_ms();
        let with_nodes = nodes_fetched_ms.is_none_or(|at_ms| now_ms.saturating_sub(at_ms) >= nodes_interval_ms);
        if poll_once(&coordinator, timeout_ms, with_nodes).await && with_nodes {
            nodes_fetched_ms = Some(now_ms);
        }
    }
}

async fn poll_once(coordinator: &Coordinator, timeout_ms: u64, with_nodes: bool) -> bool {
    let resource_managers = &coordinator.inner.resource_managers;
    for uri in resource_managers.poll_order(coordinator.now_ms()) {
        let url = format!("{uri}{}?excluding={}&nodes={with_nodes}", paths::CLUSTER_VIEW, coordinator.node_id());
        let view: Result<ClusterView, _> = coordinator.context().client.get_json(&url, MessageKind::ClusterView, timeout_ms).await;
        match view {
            Ok(view) => {
                resource_managers.mark_ok(&uri);
                coordinator.apply_view(view, with_nodes);
                coordinator.context().metrics.cluster_view_polled(true);
                return true;
            }
            Err(error) => {
                tracing::debug!(%error, rm = %uri, "cluster view poll failed, trying the next RM");
                resource_managers.mark_failed(&uri, coordinator.now_ms());
            }
        }
    }
    coordinator.context().metrics.cluster_view_polled(false);
    false
}
