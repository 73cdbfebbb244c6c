//! The coordinator: accepts SQL over the Presto client protocol, admits it against the
//! cluster-wide limit using its own counts merged with the RM view, schedules tasks on workers,
//! returns results, and tells every RM about its queries.
//!
//! Layout:
//! - admission is [`crate::resource_groups::ResourceGroupManager`] (pure): Presto's resource
//!   groups merged with the RM's counts of every other coordinator, and the freshness gate;
//! - [`query`]: one query's lifecycle and result pages (pure);
//! - [`scheduler`]: which workers get a query's tasks (pure);
//! - [`execution`]: the async driver that runs a started query's tasks on workers;
//! - [`rm_sync`]: batched query heartbeats to every RM and polling one RM for the cluster view;
//! - [`statement_api`]: the HTTP handlers of the client protocol;
//! - [`query_api`]: `/v1/query/{id}`, `/v1/queryState` and the cluster REST a coordinator proxies.

mod execution;
pub mod query;
mod query_api;
mod rm_sync;
pub mod scheduler;
mod statement_api;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use query::{NewQuery, Query};

use crate::config::NodeConfig;
use crate::discovery::announcer::ResourceManagers;
use crate::protocol::errors::{self, QUERY_QUEUE_FULL, USER_CANCELED};
use crate::resource_groups::{AdmissionPolicy, ResourceGroupManager, SelectionContext, SubmitOutcome};
use crate::protocol::{QueryFailure, QueryResults, SessionContext};
use crate::runtime::http_client::HttpClient;
use crate::runtime::rng::NodeRng;
use crate::runtime::sim_hooks::{self, Event};
use crate::runtime::Clock;
use crate::wire::ClusterView;

/// Queries a coordinator holds at most (queued + running + history); beyond it new queries are
/// refused with QUERY_QUEUE_FULL rather than growing without bound.
const QUERIES_HELD_MAX: usize = 100_000;
/// How often a draining coordinator looks whether its queries are done.
const DRAIN_POLL_MS: u64 = 100;
/// After its queries ended, how long a draining coordinator waits for their clients to read the
/// last page (a client polls at least every few seconds; one that went away must not hold it).
const DRAIN_LAST_PAGE_WAIT_MS: u64 = 30_000;

#[derive(Clone)]
pub struct Coordinator {
    inner: Arc<Inner>,
}

struct Inner {
    config: NodeConfig,
    clock: Clock,
    rng: NodeRng,
    client: HttpClient,
    resource_managers: ResourceManagers,
    self_uri: String,
    /// Five base-32 characters ending every query id this coordinator makes.
    id_suffix: String,
    state: Mutex<State>,
    /// Woken when a query changed state, so the heartbeat goes out promptly (coalesced).
    heartbeat_due: tokio::sync::Notify,
    shutting_down: AtomicBool,
    metrics: crate::metrics::Metrics,
}

struct State {
    queries: BTreeMap<String, Query>,
    admission: ResourceGroupManager,
    view: Option<ClusterView>,
    killer: crate::memory::killer::LowMemoryKiller,
    next_query_number: u64,
    heartbeat_sequence: u64,
    schedule_cursor: u64,
}

impl Coordinator {
    /// Fails when the resource-groups file is invalid: a node never runs on a half-read file.
    pub fn new(context: crate::context::NodeContext, resource_managers: ResourceManagers) -> Result<Self, String> {
        let crate::context::NodeContext { config, clock, client, metrics, rng } = context;
        let now_ms = clock.now_ms();
        let policy = match config.admission_policy {
            crate::config::AdmissionPolicyName::Presto => AdmissionPolicy::Presto,
            crate::config::AdmissionPolicyName::Naive => AdmissionPolicy::Naive,
        };
        let seed = rng.next_u64();
        let threshold = config.concurrency_threshold;
        let admission = match &config.resource_groups {
            Some(source) => {
                let spec = crate::resource_groups::parse_resource_groups(&source.json, &source.origin)?;
                ResourceGroupManager::new(spec, policy, threshold, seed, now_ms)
            }
            None => ResourceGroupManager::legacy(config.max_concurrent_queries, config.max_queued_queries, policy, threshold, seed, now_ms),
        };
        let self_uri = config.self_uri();
        let id_suffix = id_suffix(&config.node_id);
        let state = State {
            queries: BTreeMap::new(),
            admission,
            view: None,
            killer: crate::memory::killer::LowMemoryKiller::new(config.low_memory_killer, now_ms),
            next_query_number: 0,
            heartbeat_sequence: 0,
            schedule_cursor: 0,
        };
        Ok(Coordinator {
            inner: Arc::new(Inner {
                config,
                clock,
                rng,
                client,
                resource_managers,
                self_uri,
                id_suffix,
                state: Mutex::new(state),
                heartbeat_due: tokio::sync::Notify::new(),
                shutting_down: AtomicBool::new(false),
                metrics,
            }),
        })
    }

    /// Starts the background loops: RM heartbeats, RM polling and housekeeping.
    pub fn spawn_background(&self) -> Vec<tokio::task::JoinHandle<()>> {
        vec![
            crate::runtime::spawn(rm_sync::run_query_heartbeats(self.clone())),
            crate::runtime::spawn(rm_sync::run_view_poller(self.clone())),
            crate::runtime::spawn(run_housekeeping(self.clone())),
        ]
    }

    pub fn router(&self) -> axum::Router {
        statement_api::router(self.clone()).merge(query_api::router(self.clone()))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        crate::runtime::lock(&self.inner.state)
    }

    fn config(&self) -> &NodeConfig {
        &self.inner.config
    }

    fn now_ms(&self) -> u64 {
        self.inner.clock.now_ms()
    }

    pub fn self_uri(&self) -> &str {
        &self.inner.self_uri
    }

    pub fn node_id(&self) -> &str {
        &self.inner.config.node_id
    }

    /// Creates a query from `POST /v1/statement` and returns the first page.
    fn submit(&self, session: SessionContext, sql: String) -> QueryResults {
        let now_ms = self.now_ms();
        let wall_ms = self.inner.clock.wall_ms();
        let parsed = crate::sql::parse(&sql);
        let mut state = self.lock();
        state.next_query_number += 1;
        let query_id = format!(
            "{}_{:05}_{}",
            crate::runtime::clock::format_query_id_prefix(wall_ms),
            state.next_query_number % 100_000,
            self.inner.id_suffix
        );
        // Every log line about this query, here and in what it calls, carries its id.
        let _span = query_span(&query_id).entered();
        let slug = format!("x{:016x}{:016x}", self.inner.rng.next_u64(), self.inner.rng.next_u64());
        let (query_type, plan, parse_failure) = match parsed {
            Ok(parsed) => (parsed.query_type, parsed.plan, None),
            Err(failure) => (None, crate::sql::Plan::Constant { columns: vec![], row: vec![] }, Some(failure)),
        };
        let selection = SelectionContext {
            user: session.user.clone(),
            source: session.source.clone(),
            client_tags: session.client_tags.clone(),
            query_type,
        };
        let priority = session.properties.get("query_priority").and_then(|value| value.parse::<i32>().ok()).unwrap_or(1);
        let selected = state.admission.select(&selection);
        let mut query = Query::new(NewQuery {
            id: query_id.clone(),
            slug,
            session,
            sql,
            query_type,
            plan,
            group: selected.clone().unwrap_or_default(),
            now_ms,
            wall_ms,
        });
        let refusal = if let Some(failure) = parse_failure {
            Some(failure)
        } else if self.inner.shutting_down.load(Ordering::Relaxed) {
            Some(QueryFailure::new(errors::SERVER_SHUTTING_DOWN, "Server is shutting down"))
        } else if state.queries.len() >= QUERIES_HELD_MAX {
            Some(QueryFailure::new(QUERY_QUEUE_FULL, format!("Too many queries held by this coordinator ({QUERIES_HELD_MAX})")))
        } else if let Err(message) = &selected {
            Some(QueryFailure::new(errors::QUERY_REJECTED, message.clone()))
        } else if let Some(failure) = exceeds_memory_limit(&state.admission, &query) {
            Some(failure)
        } else {
            match state.admission.submit(&query_id, &query.group, priority, now_ms) {
                SubmitOutcome::Started => {
                    self.record_created(&state.admission, &query, true);
                    self.start_query(&mut state.admission, &mut query, now_ms);
                    None
                }
                SubmitOutcome::Queued => {
                    self.record_created(&state.admission, &query, true);
                    None
                }
                SubmitOutcome::QueueFull(message) => Some(QueryFailure::new(QUERY_QUEUE_FULL, message)),
                SubmitOutcome::Invalid(message) => Some(QueryFailure::new(errors::INVALID_RESOURCE_GROUP, message)),
            }
        };
        if let Some(failure) = refusal {
            tracing::info!(user = %query.session.user, error = %failure, "query refused");
            // Refused before admission: the client still got an id, so the oracle hears of it.
            self.record_created(&state.admission, &query, false);
            query.fail(failure, now_ms);
            self.record_finished(&query);
        }
        let page = query.queued_page(0, &self.inner.self_uri, now_ms).unwrap_or_else(|_| unreachable_page(&query_id));
        state.queries.insert(query_id, query);
        drop(state);
        self.inner.heartbeat_due.notify_one();
        page
    }

    /// Tells the oracle a client got this id. `admitted_to_queue` is false for refusals, which
    /// never sat in any queue (so they carry no queue bounds).
    fn record_created(&self, admission: &ResourceGroupManager, query: &Query, admitted_to_queue: bool) {
        sim_hooks::record(|| Event::QueryCreated {
            query_id: query.id.clone(),
            coordinator: self.node_id().to_string(),
            user: query.session.user.clone(),
            group: query.group.clone(),
            queue_limits: if admitted_to_queue {
                admission.limits_to_root(&query.group).into_iter().map(|(group, _, queued)| (group, queued)).collect()
            } else {
                Vec::new()
            },
        });
    }

    /// Marks `query` running and hands it to the execution driver. Caller holds the state lock.
    fn start_query(&self, admission: &mut ResourceGroupManager, query: &mut Query, now_ms: u64) {
        query.mark_running(now_ms);
        self.inner.metrics.query_admitted(&query.group);
        admission.set_query_memory_bytes(&query.id, query.memory_bytes);
        sim_hooks::record(|| Event::QueryStarted {
            query_id: query.id.clone(),
            coordinator: self.node_id().to_string(),
            group: query.group.clone(),
            limits: admission.limits_to_root(&query.group).into_iter().map(|(group, hard, _)| (group, hard)).collect(),
        });
        let span = query_span(&query.id);
        span.in_scope(|| tracing::info!(user = %query.session.user, group = %query.group, "query started"));
        // Other coordinators must learn of the start promptly: it is what keeps their view of
        // this group's running count fresh (a start left to the next interval is invisible for
        // up to a second, and every coordinator then admits into the same slots).
        self.inner.heartbeat_due.notify_one();
        crate::runtime::spawn(tracing::Instrument::instrument(execution::execute(self.clone(), query.id.clone()), span));
    }

    /// A worker reported what one of the query's tasks holds. Enforces `query.max-memory` and
    /// `query.max-total-memory` on the query's total (Presto's distributed limits): the error
    /// returned fails the query, and its task drivers then cancel every task.
    fn task_memory_changed(&self, query_id: &str, task_index: u32, bytes: u64) -> Result<(), QueryFailure> {
        let mut state = self.lock();
        let Some(query) = state.queries.get_mut(query_id) else { return Ok(()) };
        let total_bytes = query.set_task_reserved_bytes(task_index, bytes);
        let config = self.config();
        let (kind, limit_bytes) = if config.query_max_memory_bytes <= config.query_max_total_memory_bytes {
            ("user", config.query_max_memory_bytes)
        } else {
            ("total", config.query_max_total_memory_bytes)
        };
        if total_bytes > limit_bytes {
            let message = format!("Query exceeded distributed {kind} memory limit of {}", crate::config::format_data_size(limit_bytes));
            return Err(QueryFailure::new(errors::EXCEEDED_GLOBAL_MEMORY_LIMIT, message));
        }
        Ok(())
    }

    /// Starts whatever the admission policy now allows.
    fn dispatch(&self) {
        let now_ms = self.now_ms();
        let mut guard = self.lock();
        let state = &mut *guard;
        let started = state.admission.start_eligible(now_ms);
        for (query_id, _group) in started {
            match state.queries.get_mut(&query_id) {
                Some(query) => self.start_query(&mut state.admission, query, now_ms),
                None => {
                    // Admission and the query map are updated together under one lock.
                    debug_assert!(false, "admitted query {query_id} is not held");
                    state.admission.remove(&query_id);
                }
            }
        }
    }

    /// Ends a query with `failure` (no-op if it already ended) and frees its slot.
    fn fail_query(&self, query_id: &str, failure: QueryFailure) -> bool {
        let now_ms = self.now_ms();
        let mut state = self.lock();
        let Some(query) = state.queries.get_mut(query_id) else { return false };
        if !query.fail(failure, now_ms) {
            return true;
        }
        let _span = query_span(query_id).entered();
        tracing::info!(error = %query.failure.as_ref().map(|f| f.to_string()).unwrap_or_default(), "query failed");
        self.record_finished(query);
        state.admission.remove(query_id);
        drop(state);
        self.after_query_ended();
        true
    }

    fn finish_query(&self, query_id: &str) {
        let now_ms = self.now_ms();
        let mut state = self.lock();
        let Some(query) = state.queries.get_mut(query_id) else { return };
        if query.is_done() {
            return;
        }
        query.finish(now_ms);
        let _span = query_span(query_id).entered();
        tracing::info!(rows = query.rows_produced, "query finished");
        self.record_finished(query);
        let (group, cpu_ms) = (query.group.clone(), query.cpu_ms());
        state.admission.remove(query_id);
        // CPU quotas are charged for queries that succeed (Presto charges successes and user errors).
        state.admission.charge_cpu_ms(&group, cpu_ms, now_ms);
        drop(state);
        self.after_query_ended();
    }

    fn after_query_ended(&self) {
        self.inner.heartbeat_due.notify_one();
        self.dispatch();
    }

    fn record_finished(&self, query: &Query) {
        self.inner.metrics.query_ended(&query.group, query.failure.as_ref().map(|failure| failure.code.name));
        sim_hooks::record(|| Event::QueryFinished {
            query_id: query.id.clone(),
            coordinator: self.node_id().to_string(),
            state: query.state.name().to_string(),
            error_name: query.failure.as_ref().map(|failure| failure.code.name.to_string()),
        });
    }

    pub fn cancel(&self, query_id: &str) -> bool {
        self.fail_query(query_id, QueryFailure::new(USER_CANCELED, "Query was canceled"))
    }

    /// A fresh cluster view from an RM (with workers and memory when `with_nodes`; otherwise
    /// those keep their last value).
    fn apply_view(&self, mut view: ClusterView, with_nodes: bool) {
        let now_ms = self.now_ms();
        self.inner.resource_managers.learn(&view.resource_managers);
        let mut state = self.lock();
        state.admission.refresh(&view.groups, now_ms);
        if with_nodes {
            state.admission.set_cluster_memory_bytes(view.memory.total_bytes);
            state.admission.set_active_workers(view.workers.len() as u32);
        } else if let Some(previous) = state.view.take() {
            view.workers = previous.workers;
            view.memory = previous.memory;
        }
        state.killer.on_pending_kills(now_ms, &view.pending_memory_kills);
        let victim = if with_nodes {
            let own_running = state
                .queries
                .values()
                .filter(|query| query.state == crate::wire::QueryState::Running)
                .map(|query| query.id.clone())
                .collect();
            state.killer.on_view(now_ms, &view.workers, &own_running)
        } else {
            None
        };
        state.view = Some(view);
        drop(state);
        self.inner.metrics.cluster_view_applied();
        if let Some(query_id) = victim {
            tracing::warn!(%query_id, "low-memory killer: the cluster is out of memory, killing the query");
            let message = "Query killed because the cluster is out of memory. Please try again in a few minutes.";
            self.fail_query(&query_id, QueryFailure::new(errors::CLUSTER_OUT_OF_MEMORY, message));
        }
        self.dispatch();
    }

    /// Fails queries whose client stopped polling and forgets old finished ones (bounded history).
    fn housekeeping(&self) {
        let now_ms = self.now_ms();
        let client_timeout_ms = self.config().query_client_timeout_ms;
        let abandoned: Vec<(String, u64)> = self
            .lock()
            .queries
            .values()
            .filter(|query| !query.is_done() && now_ms.saturating_sub(query.last_client_access_ms) > client_timeout_ms)
            .map(|query| (query.id.clone(), query.last_client_access_ms))
            .collect();
        let overdue: Vec<(String, u64)> = {
            let state = self.lock();
            state
                .queries
                .values()
                .filter(|query| !query.is_done())
                .filter_map(|query| {
                    let limit_ms = state.admission.per_query_limits(&query.group).execution_time_limit_ms?;
                    let started_ms = query.started_ms?;
                    (now_ms.saturating_sub(started_ms) > limit_ms).then(|| (query.id.clone(), limit_ms))
                })
                .collect()
        };
        for (query_id, limit_ms) in overdue {
            let message = format!("Query exceeded the maximum execution time limit of {}", crate::config::format_duration(limit_ms));
            self.fail_query(&query_id, QueryFailure::new(errors::EXCEEDED_TIME_LIMIT, message));
        }
        for (query_id, last_access_ms) in abandoned {
            let message = format!(
                "Query {query_id} has not been accessed since {}: currentTime {}",
                crate::runtime::clock::format_iso8601(last_access_ms),
                crate::runtime::clock::format_iso8601(now_ms)
            );
            self.fail_query(&query_id, QueryFailure::new(crate::protocol::errors::ABANDONED_QUERY, message));
        }
        let mut state = self.lock();
        let history_max = self.config().query_max_history as usize;
        let min_age_ms = self.config().query_min_expire_age_ms;
        let mut done: Vec<(u64, String)> = state
            .queries
            .values()
            .filter_map(|query| Some((query.ended_ms?, query.id.clone())))
            .collect();
        done.sort();
        let excess = done.len().saturating_sub(history_max);
        for (ended_ms, query_id) in done.into_iter().take(excess) {
            if now_ms.saturating_sub(ended_ms) >= min_age_ms {
                state.queries.remove(&query_id);
            }
        }
    }

    /// From now on new queries are refused with SERVER_SHUTTING_DOWN; admitted ones carry on.
    pub fn begin_shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::Relaxed);
    }

    /// Stops accepting queries; returns once running and queued ones are done and their clients
    /// have read their last page (bounded by the caller; the last step also by
    /// `DRAIN_LAST_PAGE_WAIT_MS`, so a client that went away cannot hold the node).
    pub async fn drain(&self) {
        self.begin_shutdown();
        let pending: Vec<String> =
            self.lock().queries.values().filter(|query| !query.is_done()).map(|query| query.id.clone()).collect();
        loop {
            let active = self.lock().queries.values().filter(|query| !query.is_done()).count();
            if active == 0 {
                break;
            }
            crate::runtime::sleep_ms(DRAIN_POLL_MS).await;
        }
        let unread = || {
            let state = self.lock();
            // A client that cancelled or abandoned its query will not come back for the last page.
            let gone = |query: &Query| {
                query.failure.as_ref().is_some_and(|failure| failure.code == USER_CANCELED || failure.code == errors::ABANDONED_QUERY)
            };
            pending.iter().filter(|id| state.queries.get(*id).is_some_and(|query| !query.final_page_served && !gone(query))).count()
        };
        let read = crate::runtime::timeout_ms(DRAIN_LAST_PAGE_WAIT_MS, async {
            while unread() > 0 {
                crate::runtime::sleep_ms(DRAIN_POLL_MS).await;
            }
        });
        if read.await.is_none() {
            tracing::warn!(queries = unread(), "clients did not read their queries' last pages before shutdown");
        }
    }

    /// This coordinator's own per-group counts.
    pub fn local_counts(&self) -> Vec<crate::wire::GroupCounts> {
        self.lock().admission.local_counts()
    }

    /// Presto's `ResourceGroupInfo` for `group_id`: this coordinator's numbers, or merged with the
    /// RM's view of the others.
    pub fn resource_group_info(&self, group_id: &str, include_remote: bool) -> Option<serde_json::Value> {
        self.lock().admission.group_info(group_id, include_remote)
    }
}

async fn run_housekeeping(coordinator: Coordinator) {
    loop {
        crate::runtime::sleep_ms(1_000).await;
        coordinator.housekeeping();
    }
}

/// The span all of one query's work runs in: log lines inside carry `query_id`. It is a root span:
/// one query's work may start another (a query ending dispatches the next), and that one's lines
/// must carry only its own id.
fn query_span(query_id: &str) -> tracing::Span {
    tracing::info_span!(parent: None, "query", query_id = %query_id)
}

/// Five base-32 characters derived from the node id (FNV-1a), like Presto's coordinator id part.
pub fn id_suffix(node_id: &str) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in node_id.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (0..5).map(|index| ALPHABET[((hash >> (index * 5)) & 31) as usize] as char).collect()
}

/// `perQueryLimits.totalMemoryLimit` is known before the query runs: its tasks say what they take.
fn exceeds_memory_limit(admission: &ResourceGroupManager, query: &Query) -> Option<QueryFailure> {
    let limit_bytes = admission.per_query_limits(&query.group).total_memory_limit_bytes?;
    (query.memory_bytes > limit_bytes).then(|| {
        QueryFailure::new(
            errors::EXCEEDED_GLOBAL_MEMORY_LIMIT,
            format!("Query exceeded distributed user memory limit of {}", crate::config::format_data_size(limit_bytes)),
        )
    })
}

fn unreachable_page(query_id: &str) -> QueryResults {
    // queued_page(0) on a fresh query cannot fail; answer something well-formed regardless.
    QueryResults {
        id: query_id.to_string(),
        info_uri: String::new(),
        next_uri: None,
        columns: None,
        data: None,
        stats: Default::default(),
        error: None,
        warnings: vec![],
        update_type: None,
    }
}
