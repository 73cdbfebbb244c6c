//! Prometheus metrics at `GET /metrics` on every node (text exposition format 0.0.4).
//!
//! **Per node, not global.** Simulation runs many nodes in one process, so there is no static
//! registry: [`crate::context::NodeContext`] makes one [`Metrics`] per node and hands clones to its role,
//! its heartbeat fan-outs and its HTTP server. Every time in here comes from the node's
//! [`Clock`], never the wall clock, so a simulated run scrapes the same numbers for the same seed.
//!
//! **Two kinds of numbers.** Events (admissions, heartbeats, requests, failures) are counted where
//! they happen through the small methods below, each a one-line hook at its call site. Levels
//! that are derived from a role's state (queue lengths, cluster-view age, heartbeat ages) are
//! computed when `/metrics` is scraped (see [`http::router`]) instead of being kept in sync.
//!
//! **Bounded.** Every family holds at most [`registry::SERIES_PER_METRIC_MAX`] series; beyond it
//! new label sets fold into one series labelled `other`. Routes are labelled by their pattern
//! (`/v1/query/{query_id}`), never the raw path.
//!
//! # Metrics
//!
//! Every node:
//! - `fireball_node_info{node_id, role, version}` gauge, always 1.
//! - `fireball_http_request_duration_seconds{method, route, status_class}` histogram: every HTTP
//!   request this node served, from the request head to the response head, by matched route
//!   pattern (`unmatched` for 404s of unknown paths) and status class (`2xx` …). Millisecond
//!   resolution (the node's clock), so sub-millisecond answers land in the first bucket.
//! - `fireball_proxy_request_duration_seconds{target_role, status_class}` histogram: requests this
//!   node forwarded to another node (coordinator → RM → owning coordinator), observed by the proxy
//!   through [`Metrics::observe_proxy`]; `status_class` is `error` when no answer came back.
//! - `fireball_heartbeats_sent_total{kind, target, outcome}` counter: snapshots the heartbeat
//!   fan-out sent, by kind (`node_heartbeat` from workers, `query_heartbeat` from coordinators,
//!   `discovery_replication` between RMs), target RM URI and `success`/`failure`.
//! - `fireball_heartbeat_send_duration_seconds{kind, target}` histogram: how long each send took
//!   (retries included): the sender's side of heartbeat lag.
//! - `fireball_heartbeats_superseded_total{kind, target}` counter: snapshots replaced by a newer
//!   one while the previous send to that RM was still in flight (a slow or dead RM).
//! - `fireball_internal_auth_failures_total{reason}` counter: requests refused with 401 because
//!   they lacked a valid internal token (`missing`, `malformed`, `algorithm`, `signature`,
//!   `claims`, `expired`, `too_long`); only with `internal-communication.shared-secret` set.
//!
//! Resource managers:
//! - `fireball_heartbeats_received_total{kind, outcome}` counter: node and query heartbeats
//!   received, `applied`/`stale`/`refused`.
//! - `fireball_heartbeat_age_seconds{kind, node_id}` gauge: now minus the time the newest
//!   heartbeat from that node arrived (the receiver's side of heartbeat lag). A sender silent for
//!   [`HEARTBEAT_SENDER_FORGET_MS`] is dropped.
//! - `fireball_heartbeat_gap_seconds{kind}` histogram: time between consecutive heartbeats from one
//!   node; its tail shows heartbeats that were late or lost.
//! - `fireball_cluster_resource_group_running_queries{group}` and `…_queued_queries{group}`
//!   gauges: the counts this RM aggregated from every coordinator's query heartbeats (subtree
//!   counts, as on coordinators; groups holding no query are not listed).
//! - `fireball_cluster_active_workers`, `fireball_cluster_memory_total_bytes`,
//!   `fireball_cluster_memory_reserved_bytes` gauges: the RM's view of the worker pool.
//!
//! Coordinators:
//! - `fireball_queries_admitted_total{group}` counter: queries started (admitted to run).
//! - `fireball_queries_finished_total{group, state}` counter: queries that ended, `FINISHED` or
//!   `FAILED` (refusals at submission included, with `group=""` when no group was selected).
//! - `fireball_queries_failed_total{reason}` counter: failed queries by Presto error name
//!   (`USER_CANCELED`, `CLUSTER_OUT_OF_MEMORY`, `EXCEEDED_GLOBAL_MEMORY_LIMIT`,
//!   `QUERY_QUEUE_FULL`, `ADMINISTRATIVELY_KILLED`, `ABANDONED_QUERY` …).
//! - `fireball_resource_group_running_queries{group}` and `fireball_resource_group_queued_queries{group}`
//!   gauges: this coordinator's own queue lengths. Like Presto's per-group JMX numbers they count
//!   the group's whole subtree, so the root shows the coordinator's total (and `sum()` over all
//!   groups counts a query once per level: sum over leaves, or read the root). A group seen once
//!   keeps being reported, at 0 when empty.
//! - `fireball_cluster_view_age_seconds` gauge: now minus the time the last RM view was applied,
//!   i.e. how stale the numbers are that this coordinator admits on (`+Inf` before the first).
//! - `fireball_cluster_view_refreshes_total{outcome}` counter: view polls, `success`/`failure`
//!   (a failure means no RM answered in that round).

pub mod http;
pub mod registry;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::config::Role;
use crate::runtime::sim_hooks::MessageKind;
use crate::runtime::Clock;
use registry::{Kind, MetricDef, Registry, SERIES_PER_METRIC_MAX};

/// A heartbeat sender not heard from for this long is no longer reported by
/// `fireball_heartbeat_age_seconds` (a node that left the cluster for good).
pub const HEARTBEAT_SENDER_FORGET_MS: u64 = 10 * 60 * 1_000;

macro_rules! metric {
    ($ident:ident, $name:literal, $kind:ident, [$($label:literal),*], $help:literal) => {
        pub const $ident: MetricDef = MetricDef { name: $name, help: $help, kind: Kind::$kind, labels: &[$($label),*] };
    };
}

metric!(NODE_INFO, "fireball_node_info", Gauge, ["node_id", "role", "version"], "This node: always 1.");
metric!(HTTP_REQUEST_DURATION, "fireball_http_request_duration_seconds", Histogram, ["method", "route", "status_class"],
    "HTTP requests served by this node, by route pattern and status class: time from request head to response head.");
metric!(PROXY_REQUEST_DURATION, "fireball_proxy_request_duration_seconds", Histogram, ["target_role", "status_class"],
    "Requests this node forwarded to another node, by the role of the target and the answer's status class (error: no answer).");
metric!(HEARTBEATS_SENT, "fireball_heartbeats_sent_total", Counter, ["kind", "target", "outcome"],
    "Snapshots sent by the heartbeat fan-out, by kind, target RM and outcome.");
metric!(HEARTBEAT_SEND_DURATION, "fireball_heartbeat_send_duration_seconds", Histogram, ["kind", "target"],
    "Time one heartbeat fan-out send took, retries included.");
metric!(HEARTBEATS_SUPERSEDED, "fireball_heartbeats_superseded_total", Counter, ["kind", "target"],
    "Snapshots replaced by a newer one while the previous send to that target was still in flight.");
metric!(INTERNAL_AUTH_FAILURES, "fireball_internal_auth_failures_total", Counter, ["reason"],
    "Requests this node refused for want of a valid internal token, by reason (missing, signature, expired ...).");
metric!(CLIENT_AUTH_FAILURES, "fireball_client_auth_failures_total", Counter, ["reason"],
    "Client requests this node refused by PASSWORD authentication, by reason (missing, invalid_credentials, insecure_transport, impersonation ...).");
metric!(CLIENT_PASSWORD_CHECKS, "fireball_client_password_checks_total", Counter, ["source"],
    "Client passwords this node checked, by where the answer came from: cache (a recent success) or bcrypt.");
metric!(HEARTBEATS_RECEIVED, "fireball_heartbeats_received_total", Counter, ["kind", "outcome"],
    "Heartbeats this resource manager received, by kind and outcome.");
metric!(HEARTBEAT_AGE, "fireball_heartbeat_age_seconds", Gauge, ["kind", "node_id"],
    "Seconds since the newest heartbeat from a node arrived at this resource manager.");
metric!(HEARTBEAT_GAP, "fireball_heartbeat_gap_seconds", Histogram, ["kind"],
    "Seconds between consecutive heartbeats from one node, as this resource manager received them.");
metric!(CLUSTER_GROUP_RUNNING, "fireball_cluster_resource_group_running_queries", Gauge, ["group"],
    "Running queries per resource group across all coordinators, as this resource manager aggregated them.");
metric!(CLUSTER_GROUP_QUEUED, "fireball_cluster_resource_group_queued_queries", Gauge, ["group"],
    "Queued queries per resource group across all coordinators, as this resource manager aggregated them.");
metric!(CLUSTER_ACTIVE_WORKERS, "fireball_cluster_active_workers", Gauge, [],
    "Workers this resource manager currently considers active.");
metric!(CLUSTER_MEMORY_TOTAL, "fireball_cluster_memory_total_bytes", Gauge, [],
    "Memory of all active workers' pools, as this resource manager sees it.");
metric!(CLUSTER_MEMORY_RESERVED, "fireball_cluster_memory_reserved_bytes", Gauge, [],
    "Memory reserved in all active workers' pools, as this resource manager sees it.");
metric!(QUERIES_ADMITTED, "fireball_queries_admitted_total", Counter, ["group"],
    "Queries this coordinator started (admitted to run), by resource group.");
metric!(QUERIES_FINISHED, "fireball_queries_finished_total", Counter, ["group", "state"],
    "Queries of this coordinator that ended, by resource group and final state.");
metric!(QUERIES_FAILED, "fireball_queries_failed_total", Counter, ["reason"],
    "Queries of this coordinator that failed, by Presto error name.");
metric!(GROUP_RUNNING, "fireball_resource_group_running_queries", Gauge, ["group"],
    "Queries running in a resource group on this coordinator.");
metric!(GROUP_QUEUED, "fireball_resource_group_queued_queries", Gauge, ["group"],
    "Queries queued in a resource group on this coordinator.");
metric!(VIEW_AGE, "fireball_cluster_view_age_seconds", Gauge, [],
    "Seconds since this coordinator last applied a cluster view from a resource manager (+Inf before the first).");
metric!(VIEW_REFRESHES, "fireball_cluster_view_refreshes_total", Counter, ["outcome"],
    "Cluster view polls of this coordinator, by outcome (failure: no resource manager answered).");

/// Families every node shows (HELP/TYPE even before the first sample).
const COMMON: &[&MetricDef] = &[&NODE_INFO, &HTTP_REQUEST_DURATION, &PROXY_REQUEST_DURATION, &HEARTBEATS_SENT, &HEARTBEAT_SEND_DURATION, &HEARTBEATS_SUPERSEDED, &INTERNAL_AUTH_FAILURES, &CLIENT_AUTH_FAILURES, &CLIENT_PASSWORD_CHECKS];
const RESOURCE_MANAGER: &[&MetricDef] = &[
    &HEARTBEATS_RECEIVED,
    &HEARTBEAT_AGE,
    &HEARTBEAT_GAP,
    &CLUSTER_GROUP_RUNNING,
    &CLUSTER_GROUP_QUEUED,
    &CLUSTER_ACTIVE_WORKERS,
    &CLUSTER_MEMORY_TOTAL,
    &CLUSTER_MEMORY_RESERVED,
];
const COORDINATOR: &[&MetricDef] = &[&QUERIES_ADMITTED, &QUERIES_FINISHED, &QUERIES_FAILED, &GROUP_RUNNING, &GROUP_QUEUED, &VIEW_AGE, &VIEW_REFRESHES];

/// One node's metrics. Cheap to clone; all clones share one registry.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    clock: Clock,
    role: Role,
    state: Mutex<State>,
}

struct State {
    registry: Registry,
    /// (kind, sender node id) -> when its newest heartbeat arrived. At most
    /// `SERIES_PER_METRIC_MAX` senders are tracked; more are counted but not aged.
    heartbeat_last_ms: BTreeMap<(&'static str, String), u64>,
    /// When the coordinator last applied an RM view.
    view_applied_ms: Option<u64>,
    /// Groups this coordinator has held queries in, reported at 0 once empty (bounded).
    groups_seen: BTreeSet<String>,
}

/// `2xx`-style class of an HTTP status, the only status label fireball uses (bounded).
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "other",
    }
}

impl Metrics {
    pub fn new(node_id: &str, role: Role, clock: Clock) -> Self {
        let mut registry = Registry::new();
        let role_families = match role {
            Role::ResourceManager => RESOURCE_MANAGER,
            Role::Coordinator => COORDINATOR,
            Role::Worker => &[],
        };
        for def in COMMON.iter().chain(role_families) {
            registry.declare(def);
        }
        registry.gauge_set(&NODE_INFO, &[node_id, role.name(), crate::config::VERSION], 1.0);
        let state = State { registry, heartbeat_last_ms: BTreeMap::new(), view_applied_ms: None, groups_seen: BTreeSet::new() };
        Metrics { inner: Arc::new(Inner { clock, role, state: Mutex::new(state) }) }
    }

    /// The node's clock, for callers timing something they then observe here.
    pub fn now_ms(&self) -> u64 {
        self.inner.clock.now_ms()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        crate::runtime::lock(&self.inner.state)
    }

    /// One HTTP request served (called by the server middleware, [`http::measure_requests`]).
    pub fn observe_http(&self, method: &str, route: &str, status: u16, duration_ms: u64) {
        self.lock().registry.observe_ms(&HTTP_REQUEST_DURATION, &[method, route, status_class(status)], duration_ms);
    }

    /// One request forwarded to another node, for the proxy (coordinator → RM → owner).
    ///
    /// `target_role`: `"resource_manager"` or `"coordinator"` ([`Role::name`]); `status_class`:
    /// [`status_class`] of the answer, or `"error"` when none came back (timeout, refused);
    /// `duration_ms`: from before the forward to after the answer's head, by [`Metrics::now_ms`].
    pub fn observe_proxy(&self, target_role: &str, status_class: &str, duration_ms: u64) {
        self.lock().registry.observe_ms(&PROXY_REQUEST_DURATION, &[target_role, status_class], duration_ms);
    }

    /// A request was refused by internal authentication (`reason`: a bounded label).
    pub fn internal_auth_refused(&self, reason: &'static str) {
        self.lock().registry.counter_add(&INTERNAL_AUTH_FAILURES, &[reason], 1);
    }

    /// A client request was refused by PASSWORD authentication (`reason`: a bounded label).
    pub fn client_auth_refused(&self, reason: &'static str) {
        self.lock().registry.counter_add(&CLIENT_AUTH_FAILURES, &[reason], 1);
    }

    /// A client password was checked (`source`: `cache` or `bcrypt`).
    pub fn client_password_checked(&self, source: &'static str) {
        self.lock().registry.counter_add(&CLIENT_PASSWORD_CHECKS, &[source], 1);
    }

    /// One snapshot send ended (see [`crate::snapshot_sender`]).
    pub fn heartbeat_sent(&self, kind: MessageKind, target: &str, succeeded: bool, duration_ms: u64) {
        let outcome = if succeeded { "success" } else { "failure" };
        let mut state = self.lock();
        state.registry.counter_add(&HEARTBEATS_SENT, &[kind.name(), target, outcome], 1);
        state.registry.observe_ms(&HEARTBEAT_SEND_DURATION, &[kind.name(), target], duration_ms);
    }

    /// A waiting snapshot was replaced by a newer one before it could be sent.
    pub fn heartbeat_superseded(&self, kind: MessageKind, target: &str) {
        self.lock().registry.counter_add(&HEARTBEATS_SUPERSEDED, &[kind.name(), target], 1);
    }

    /// The RM received a heartbeat of `kind` from node `sender` and did `outcome` with it.
    pub fn heartbeat_received(&self, kind: MessageKind, sender: &str, outcome: HeartbeatReceipt) {
        let now_ms = self.now_ms();
        let outcome = outcome.label();
        let mut state = self.lock();
        state.registry.counter_add(&HEARTBEATS_RECEIVED, &[kind.name(), outcome], 1);
        let key = (kind.name(), sender.to_string());
        let tracked = state.heartbeat_last_ms.len();
        let previous_ms = match state.heartbeat_last_ms.get_mut(&key) {
            Some(last_ms) => Some(std::mem::replace(last_ms, now_ms)),
            None => {
                if tracked < SERIES_PER_METRIC_MAX {
                    state.heartbeat_last_ms.insert(key, now_ms);
                }
                None
            }
        };
        if let Some(previous_ms) = previous_ms {
            state.registry.observe_ms(&HEARTBEAT_GAP, &[kind.name()], now_ms.saturating_sub(previous_ms));
        }
    }

    /// The coordinator started a query in `group`.
    pub fn query_admitted(&self, group: &str) {
        let mut state = self.lock();
        state.registry.counter_add(&QUERIES_ADMITTED, &[group], 1);
        note_group(&mut state.groups_seen, group);
    }

    /// A coordinator's query ended: `failure` is the Presto error name if it failed.
    pub fn query_ended(&self, group: &str, failure: Option<&str>) {
        let mut state = self.lock();
        let final_state = if failure.is_some() { "FAILED" } else { "FINISHED" };
        state.registry.counter_add(&QUERIES_FINISHED, &[group, final_state], 1);
        if let Some(reason) = failure {
            state.registry.counter_add(&QUERIES_FAILED, &[reason], 1);
        }
    }

    /// The coordinator applied a fresh RM view now.
    pub fn cluster_view_applied(&self) {
        let now_ms = self.now_ms();
        self.lock().view_applied_ms = Some(now_ms);
    }

    /// One round of polling the RMs for the view ended.
    pub fn cluster_view_polled(&self, succeeded: bool) {
        self.lock().registry.counter_add(&VIEW_REFRESHES, &[if succeeded { "success" } else { "failure" }], 1);
    }

    /// The scrape: sets the scrape-time gauges from `levels` (read from the role beforehand, so
    /// no role lock is taken while this one is held) and renders everything.
    pub fn render(&self, levels: &ScrapeLevels) -> String {
        let now_ms = self.now_ms();
        let mut guard = self.lock();
        let state = &mut *guard;
        if self.inner.role == Role::Coordinator {
            let age = state.view_applied_ms.map_or(f64::INFINITY, |applied_ms| now_ms.saturating_sub(applied_ms) as f64 / 1_000.0);
            state.registry.gauge_set(&VIEW_AGE, &[], age);
            for counts in &levels.local_groups {
                note_group(&mut state.groups_seen, &counts.group);
            }
            state.registry.gauge_clear(&GROUP_RUNNING);
            state.registry.gauge_clear(&GROUP_QUEUED);
            let by_group: BTreeMap<&str, &crate::wire::GroupCounts> = levels.local_groups.iter().map(|counts| (counts.group.as_str(), counts)).collect();
            for group in &state.groups_seen {
                let (running, queued) = by_group.get(group.as_str()).map_or((0, 0), |counts| subtree_counts(counts));
                state.registry.gauge_set(&GROUP_RUNNING, &[group], f64::from(running));
                state.registry.gauge_set(&GROUP_QUEUED, &[group], f64::from(queued));
            }
        }
        if self.inner.role == Role::ResourceManager {
            state.heartbeat_last_ms.retain(|_, last_ms| now_ms.saturating_sub(*last_ms) < HEARTBEAT_SENDER_FORGET_MS);
            state.registry.gauge_clear(&HEARTBEAT_AGE);
            for ((kind, sender), last_ms) in &state.heartbeat_last_ms {
                state.registry.gauge_set(&HEARTBEAT_AGE, &[kind, sender], now_ms.saturating_sub(*last_ms) as f64 / 1_000.0);
            }
            if let Some(cluster) = &levels.cluster {
                state.registry.gauge_clear(&CLUSTER_GROUP_RUNNING);
                state.registry.gauge_clear(&CLUSTER_GROUP_QUEUED);
                for counts in &cluster.groups {
                    let (running, queued) = subtree_counts(counts);
                    state.registry.gauge_set(&CLUSTER_GROUP_RUNNING, &[&counts.group], f64::from(running));
                    state.registry.gauge_set(&CLUSTER_GROUP_QUEUED, &[&counts.group], f64::from(queued));
                }
                state.registry.gauge_set(&CLUSTER_ACTIVE_WORKERS, &[], cluster.workers.len() as f64);
                state.registry.gauge_set(&CLUSTER_MEMORY_TOTAL, &[], cluster.memory.total_bytes as f64);
                state.registry.gauge_set(&CLUSTER_MEMORY_RESERVED, &[], cluster.memory.reserved_bytes as f64);
            }
        }
        state.registry.render()
    }
}

/// What an RM did with a heartbeat, as `fireball_heartbeats_received_total{outcome}` labels it.
/// The RM maps its cluster state's answer onto this: metrics sit below every role, so they name
/// the outcomes themselves rather than import the RM's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeartbeatReceipt {
    Applied,
    /// Older than what the RM already had: ignored.
    Stale,
    /// Refused as a whole (too large).
    Refused,
}

impl HeartbeatReceipt {
    pub fn label(self) -> &'static str {
        match self {
            HeartbeatReceipt::Applied => "applied",
            HeartbeatReceipt::Stale => "stale",
            HeartbeatReceipt::Refused => "refused",
        }
    }
}

/// Levels read from the role at scrape time (see [`http::router`]).
#[derive(Default)]
pub struct ScrapeLevels {
    /// A coordinator's own per-group counts.
    pub local_groups: Vec<crate::wire::GroupCounts>,
    /// An RM's aggregated view of the whole cluster.
    pub cluster: Option<crate::wire::ClusterView>,
}

/// (running, queued) of a group's whole subtree, as Presto reports a group's numbers.
fn subtree_counts(counts: &crate::wire::GroupCounts) -> (u32, u32) {
    (counts.running.saturating_add(counts.descendant_running), counts.queued.saturating_add(counts.descendant_queued))
}

fn note_group(groups_seen: &mut BTreeSet<String>, group: &str) {
    if groups_seen.len() < SERIES_PER_METRIC_MAX && !group.is_empty() {
        groups_seen.insert(group.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coordinator_scrape_shows_admissions_failures_queues_and_view_age() {
        let metrics = Metrics::new("c1", Role::Coordinator, Clock::new());
        metrics.query_admitted("global.alice");
        metrics.query_ended("global.alice", None);
        metrics.query_ended("global.alice", Some("CLUSTER_OUT_OF_MEMORY"));
        metrics.cluster_view_polled(false);
        let before_view = metrics.render(&ScrapeLevels::default());
        assert!(before_view.contains("fireball_cluster_view_age_seconds +Inf\n"), "{before_view}");
        metrics.cluster_view_applied();
        let levels = ScrapeLevels {
            local_groups: vec![
                crate::wire::GroupCounts { group: "global".into(), descendant_running: 2, descendant_queued: 5, ..Default::default() },
                crate::wire::GroupCounts { group: "global.bob".into(), running: 2, queued: 5, ..Default::default() },
            ],
            cluster: None,
        };
        let text = metrics.render(&levels);
        for line in [
            "fireball_node_info{node_id=\"c1\",role=\"coordinator\",version=\"",
            "fireball_queries_admitted_total{group=\"global.alice\"} 1\n",
            "fireball_queries_finished_total{group=\"global.alice\",state=\"FAILED\"} 1\n",
            "fireball_queries_finished_total{group=\"global.alice\",state=\"FINISHED\"} 1\n",
            "fireball_queries_failed_total{reason=\"CLUSTER_OUT_OF_MEMORY\"} 1\n",
            "fireball_resource_group_running_queries{group=\"global.alice\"} 0\n",
            "fireball_resource_group_running_queries{group=\"global.bob\"} 2\n",
            "fireball_resource_group_queued_queries{group=\"global.bob\"} 5\n",
            "fireball_resource_group_running_queries{group=\"global\"} 2\n",
            "fireball_resource_group_queued_queries{group=\"global\"} 5\n",
            "fireball_cluster_view_refreshes_total{outcome=\"failure\"} 1\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(!text.contains("+Inf\n# HELP fireball_cluster_view_refreshes"), "view age is finite once applied:\n{text}");
        assert!(!text.contains("fireball_heartbeats_received_total"), "RM families stay off coordinators");
    }

    #[test]
    fn resource_manager_tracks_heartbeat_ages_and_gaps() {
        let clock = Clock::new();
        let metrics = Metrics::new("rm1", Role::ResourceManager, clock.clone());
        metrics.heartbeat_received(MessageKind::NodeHeartbeat, "w1", HeartbeatReceipt::Applied);
        clock.set_offset_ms(2_000);
        metrics.heartbeat_received(MessageKind::NodeHeartbeat, "w1", HeartbeatReceipt::Stale);
        clock.set_offset_ms(5_000);
        let text = metrics.render(&ScrapeLevels::default());
        assert!(text.contains("fireball_heartbeats_received_total{kind=\"node_heartbeat\",outcome=\"applied\"} 1\n"), "{text}");
        assert!(text.contains("fireball_heartbeat_gap_seconds_count{kind=\"node_heartbeat\"} 1\n"), "{text}");
        assert!(text.contains("fireball_heartbeat_gap_seconds_bucket{kind=\"node_heartbeat\",le=\"2.5\"} 1\n"), "{text}");
        let age_line = text.lines().find(|line| line.starts_with("fireball_heartbeat_age_seconds{kind=\"node_heartbeat\",node_id=\"w1\"} ")).expect("age");
        let age: f64 = age_line.rsplit(' ').next().and_then(|value| value.parse().ok()).expect("number");
        assert!((3.0..4.0).contains(&age), "{age_line}");
        clock.set_offset_ms(5_000 + HEARTBEAT_SENDER_FORGET_MS as i64);
        assert!(!metrics.render(&ScrapeLevels::default()).contains("node_id=\"w1\""), "silent senders are forgotten");
    }

    #[test]
    fn status_classes() {
        assert_eq!(status_class(200), "2xx");
        assert_eq!(status_class(404), "4xx");
        assert_eq!(status_class(503), "5xx");
        assert_eq!(status_class(42), "other");
    }
}
