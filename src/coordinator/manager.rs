//! The query manager: every decision a coordinator makes about its queries, as a pure state
//! machine in the style of quinn-proto and raft-rs. No async, no I/O, no clock: the shell
//! ([`super::Coordinator`]) feeds it [`Input`]s with the time they happen at and carries out the
//! [`Effect`]s it returns *after* releasing the lock (spawning execution, waking the heartbeat
//! sender, counting metrics).
//!
//! What it decides:
//! - **submission**: the refusal ladder (parse error, shutting down, too many queries held, no
//!   selector matched, the group's `perQueryLimits.totalMemoryLimit`), then admission by the
//!   resource groups (start, queue, or refuse with Presto's error);
//! - **start**: queries the admission policy lets go, after a query ended or a fresh RM view;
//! - **memory limits**: `query.max-memory` / `query.max-total-memory` on the sum of what the
//!   query's tasks hold, as workers report it;
//! - **the low-memory killer**, on each RM view with workers;
//! - **ending**: finish, fail, client cancel, administrative kill;
//! - **timers** ([`Input::Tick`]): `executionTimeLimit`, abandonment after `query.client.timeout`
//!   without a client poll, and expiry of finished queries beyond `query.max-history`;
//! - **drain**: after [`Input::BeginShutdown`] new queries are refused with SERVER_SHUTTING_DOWN.
//!
//! The oracle's events (`QueryCreated`, `QueryStarted`, `QueryFinished`) are recorded here, at
//! the moment each fact becomes true, so their order in the trace is the order of decisions.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::query::{NewQuery, PageError, Query};
use crate::config::NodeConfig;
use crate::memory::killer::LowMemoryKiller;
use crate::protocol::errors::{self, QUERY_QUEUE_FULL, USER_CANCELED};
use crate::protocol::{QueryFailure, QueryResults};
use crate::query_id::{CoordinatorSuffix, QueryId};
use crate::resource_groups::{AdmissionPolicy, ResourceGroupManager, SelectionContext, SubmitOutcome};
use crate::runtime::sim_hooks::{self, Event};
use crate::sql::Plan;
use crate::wire::{ClusterView, GroupCounts, QueryHeartbeat, QueryState, WorkerView};

/// Queries a coordinator holds at most (queued + running + history); beyond it new queries are
/// refused with QUERY_QUEUE_FULL rather than growing without bound.
pub const QUERIES_HELD_MAX: usize = 100_000;
/// Finished queries ride along in heartbeats for this long, so every RM learns how they ended.
pub const FINISHED_REPORT_WINDOW_MS: u64 = 5_000;

/// Effects of one input, with the heartbeat request coalesced.
#[derive(Default)]
struct Effects {
    list: Vec<Effect>,
    heartbeat_due: bool,
}

impl Effects {
    fn push(&mut self, effect: Effect) {
        self.list.push(effect);
    }

    fn into_vec(mut self) -> Vec<Effect> {
        if self.heartbeat_due {
            self.list.push(Effect::HeartbeatDue);
        }
        self.list
    }
}

pub struct QueryManager {
    config: ManagerConfig,
    /// Five base-32 characters ending every query id this coordinator makes.
    id_suffix: CoordinatorSuffix,
    queries: BTreeMap<String, Query>,
    admission: ResourceGroupManager,
    view: Option<ClusterView>,
    killer: LowMemoryKiller,
    next_query_number: u64,
    heartbeat_sequence: u64,
    schedule_cursor: u64,
    shutting_down: bool,
    /// Queries open when the drain began (whose last page a drain waits to be read).
    drain_pending: Vec<String>,
}

impl QueryManager {
    /// Fails when the resource-groups file is invalid: a node never runs on a half-read file.
    pub fn new(node: &NodeConfig, seed: u64, now_ms: u64) -> Result<QueryManager, String> {
        let policy = match node.admission_policy {
            crate::config::AdmissionPolicyName::Presto => AdmissionPolicy::Presto,
            crate::config::AdmissionPolicyName::Naive => AdmissionPolicy::Naive,
        };
        let threshold = node.concurrency_threshold;
        let admission = match &node.resource_groups {
            Some(source) => {
                let spec = crate::resource_groups::parse_resource_groups(&source.json, &source.origin)?;
                ResourceGroupManager::new(spec, policy, threshold, seed, now_ms)
            }
            None => ResourceGroupManager::legacy(node.max_concurrent_queries, node.max_queued_queries, policy, threshold, seed, now_ms),
        };
        Ok(QueryManager::with_admission(ManagerConfig::from_node(node), admission, LowMemoryKiller::new(node.low_memory_killer, now_ms)))
    }

    fn with_admission(config: ManagerConfig, admission: ResourceGroupManager, killer: LowMemoryKiller) -> QueryManager {
        QueryManager {
            id_suffix: CoordinatorSuffix::of_node(&config.node_id),
            config,
            queries: BTreeMap::new(),
            admission,
            view: None,
            killer,
            next_query_number: 0,
            heartbeat_sequence: 0,
            schedule_cursor: 0,
            shutting_down: false,
            drain_pending: Vec::new(),
        }
    }

    /// Applies one input at `now_ms` and says what the shell must do.
    pub fn handle(&mut self, now_ms: u64, input: Input) -> Vec<Effect> {
        let mut effects = Effects::default();
        let is_tick = matches!(input, Input::Tick);
        let full_check = match input {
            Input::Submit(submission) => {
                self.submit(now_ms, submission, &mut effects);
                true
            }
            Input::TaskOutput { query_id, rows, task_done } => {
                if let Some(query) = self.queries.get_mut(&query_id).filter(|query| !query.is_done()) {
                    query.push_rows(rows);
                    if task_done {
                        query.task_done();
                    }
                }
                false
            }
            Input::LeafTask { query_id, task_id, node_id, done } => {
                if let Some(query) = self.queries.get_mut(&query_id).filter(|query| !query.is_done()) {
                    query.leaf_task(task_id, node_id, done);
                }
                false
            }
            Input::Columns { query_id, columns } => {
                if let Some(query) = self.queries.get_mut(&query_id).filter(|query| !query.is_done()) {
                    query.set_columns(columns);
                }
                false
            }
            Input::TaskMemory { query_id, task_index, bytes } => {
                self.task_memory(now_ms, &query_id, task_index, bytes, &mut effects);
                false
            }
            Input::ExecutionEnded { query_id, outcome: Ok(()) } => {
                self.finish(now_ms, &query_id, &mut effects);
                true
            }
            Input::ExecutionEnded { query_id, outcome: Err(failure) } => {
                self.end(now_ms, &query_id, failure, &mut effects);
                true
            }
            Input::Cancel { query_id } => {
                self.end(now_ms, &query_id, QueryFailure::new(USER_CANCELED, "Query was canceled"), &mut effects);
                true
            }
            Input::Kill { query_id, failure } => {
                let outcome = match self.queries.get(&query_id).map(Query::is_done) {
                    None => KillOutcome::NotFound,
                    Some(true) => KillOutcome::AlreadyDone,
                    Some(false) => {
                        let _span = super::query_span(&query_id).entered();
                        tracing::info!(error = %failure, "query killed by request");
                        self.end(now_ms, &query_id, failure, &mut effects);
                        KillOutcome::Killed
                    }
                };
                effects.push(Effect::KillResult(outcome));
                true
            }
            Input::ClusterView { view, with_nodes } => {
                self.apply_view(now_ms, view, with_nodes, &mut effects);
                true
            }
            Input::Tick => {
                self.housekeeping(now_ms, &mut effects);
                true
            }
            Input::BeginShutdown => {
                if !self.shutting_down {
                    self.shutting_down = true;
                    self.drain_pending = self.queries.values().filter(|query| !query.is_done()).map(|query| query.id.clone()).collect();
                }
                false
            }
        };
        // The full check is O(queries held); inputs on the data path (rows, memory) are frequent
        // and touch one query, so they are covered by the next full check. Release builds check
        // on the timer only.
        if is_tick || (full_check && cfg!(any(test, debug_assertions, madsim))) {
            sim_hooks::check_invariants("coordinator.queries", self.check_invariants());
        }
        effects.into_vec()
    }

    fn submit(&mut self, now_ms: u64, submission: Submission, effects: &mut Effects) {
        let Submission { session, sql, parsed, slug, wall_ms } = submission;
        self.next_query_number += 1;
        let query_id = QueryId::new(wall_ms, self.next_query_number, &self.id_suffix).into_string();
        // Every log line about this query, here and in what it calls, carries its id.
        let _span = super::query_span(&query_id).entered();
        let (query_type, plan, parse_failure) = match parsed {
            Ok(parsed) => (parsed.query_type, parsed.plan, None),
            Err(failure) => (None, Plan::Constant { columns: vec![], row: vec![] }, Some(failure)),
        };
        let selection = SelectionContext {
            user: session.user.clone(),
            source: session.source.clone(),
            client_tags: session.client_tags.clone(),
            query_type,
        };
        // Presto's default priority is 1; a value that is not an integer fails the query rather
        // than silently running it at the default.
        let priority = match session.properties.get("query_priority") {
            None => Ok(1),
            Some(value) => value.trim().parse::<i32>().map_err(|_| {
                QueryFailure::new(
                    errors::INVALID_SESSION_PROPERTY,
                    format!("Invalid value for session property query_priority: {value:?} is not an integer"),
                )
            }),
        };
        let selected = self.admission.select(&selection);
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
        } else if let Err(failure) = &priority {
            Some(failure.clone())
        } else if self.shutting_down {
            Some(QueryFailure::new(errors::SERVER_SHUTTING_DOWN, "Server is shutting down"))
        } else if self.queries.len() >= QUERIES_HELD_MAX {
            Some(QueryFailure::new(QUERY_QUEUE_FULL, format!("Too many queries held by this coordinator ({QUERIES_HELD_MAX})")))
        } else if let Err(message) = &selected {
            Some(QueryFailure::new(errors::QUERY_REJECTED, message.clone()))
        } else if let Some(failure) = exceeds_group_memory_limit(&self.admission, &query) {
            Some(failure)
        } else {
            match self.admission.submit(&query_id, &query.group, priority.unwrap_or(1), now_ms) {
                SubmitOutcome::Started => {
                    self.record_created(&query, true);
                    self.start(now_ms, &mut query, effects);
                    None
                }
                SubmitOutcome::Queued => {
                    self.record_created(&query, true);
                    None
                }
                SubmitOutcome::QueueFull(message) => Some(QueryFailure::new(QUERY_QUEUE_FULL, message)),
                SubmitOutcome::Invalid(message) => Some(QueryFailure::new(errors::INVALID_RESOURCE_GROUP, message)),
            }
        };
        if let Some(failure) = refusal {
            tracing::info!(user = %query.session.user, error = %failure, "query refused");
            // Refused before admission: the client still got an id, so the oracle hears of it.
            self.record_created(&query, false);
            query.fail(failure, now_ms);
            self.record_finished(&query, effects);
        }
        self.queries.insert(query_id.clone(), query);
        effects.push(Effect::Accepted { query_id });
        effects.heartbeat_due = true;
    }

    /// Tells the oracle a client got this id. `admitted_to_queue` is false for refusals, which
    /// never sat in any queue (so they carry no queue bounds).
    fn record_created(&self, query: &Query, admitted_to_queue: bool) {
        sim_hooks::record(|| Event::QueryCreated {
            query_id: query.id.clone(),
            coordinator: self.config.node_id.clone(),
            user: query.session.user.clone(),
            group: query.group.clone(),
            queue_limits: if admitted_to_queue {
                self.admission.limits_to_root(&query.group).into_iter().map(|(group, _, queued)| (group, queued)).collect()
            } else {
                Vec::new()
            },
        });
    }

    /// Marks `query` running and asks the shell to execute it.
    fn start(&mut self, now_ms: u64, query: &mut Query, effects: &mut Effects) {
        query.mark_running(now_ms);
        self.admission.set_query_memory_bytes(&query.id, query.memory_bytes);
        sim_hooks::record(|| Event::QueryStarted {
            query_id: query.id.clone(),
            coordinator: self.config.node_id.clone(),
            group: query.group.clone(),
            limits: self.admission.limits_to_root(&query.group).into_iter().map(|(group, hard, _)| (group, hard)).collect(),
        });
        let span = super::query_span(&query.id);
        span.in_scope(|| tracing::info!(user = %query.session.user, group = %query.group, "query started"));
        // Other coordinators must learn of the start promptly: it is what keeps their view of
        // this group's running count fresh (a start left to the next interval is invisible for
        // up to a second, and every coordinator then admits into the same slots).
        effects.heartbeat_due = true;
        effects.push(Effect::Execute { query_id: query.id.clone(), group: query.group.clone() });
    }

    /// Starts whatever the admission policy now allows.
    fn dispatch(&mut self, now_ms: u64, effects: &mut Effects) {
        for (query_id, _group) in self.admission.start_eligible(now_ms) {
            // Taken out and put back so that `start` may borrow the manager.
            match self.queries.remove(&query_id) {
                Some(mut query) => {
                    self.start(now_ms, &mut query, effects);
                    self.queries.insert(query_id, query);
                }
                None => {
                    // Admission and the query map change together, in this struct only.
                    debug_assert!(false, "admitted query {query_id} is not held");
                    self.admission.remove(&query_id);
                }
            }
        }
    }

    /// Enforces `query.max-memory` and `query.max-total-memory` on the query's total across its
    /// workers (Presto's distributed limits). A query over it fails, which stops its execution
    /// driver, which cancels every task.
    fn task_memory(&mut self, now_ms: u64, query_id: &str, task_index: u32, bytes: u64, effects: &mut Effects) {
        let Some(query) = self.queries.get_mut(query_id).filter(|query| !query.is_done()) else { return };
        let total_bytes = query.set_task_reserved_bytes(task_index, bytes);
        let (kind, limit_bytes) = if self.config.query_max_memory_bytes <= self.config.query_max_total_memory_bytes {
            ("user", self.config.query_max_memory_bytes)
        } else {
            ("total", self.config.query_max_total_memory_bytes)
        };
        if total_bytes > limit_bytes {
            let message = format!("Query exceeded distributed {kind} memory limit of {}", crate::config::format_data_size(limit_bytes));
            self.end(now_ms, query_id, QueryFailure::new(errors::EXCEEDED_GLOBAL_MEMORY_LIMIT, message), effects);
        }
    }

    /// Ends a query with `failure` (no-op if it already ended), frees its slot and starts what
    /// the slot lets in.
    fn end(&mut self, now_ms: u64, query_id: &str, failure: QueryFailure, effects: &mut Effects) {
        let Some(query) = self.queries.get_mut(query_id) else { return };
        if !query.fail(failure, now_ms) {
            return;
        }
        let _span = super::query_span(query_id).entered();
        tracing::info!(error = %query.failure.as_ref().map(|f| f.to_string()).unwrap_or_default(), "query failed");
        let query = &self.queries[query_id];
        self.record_finished(query, effects);
        self.admission.remove(query_id);
        effects.heartbeat_due = true;
        self.dispatch(now_ms, effects);
    }

    fn finish(&mut self, now_ms: u64, query_id: &str, effects: &mut Effects) {
        let Some(query) = self.queries.get_mut(query_id) else { return };
        if query.is_done() {
            return;
        }
        query.finish(now_ms);
        let _span = super::query_span(query_id).entered();
        tracing::info!(rows = query.rows_produced, "query finished");
        let (group, cpu_ms) = (query.group.clone(), query.cpu_ms());
        let query = &self.queries[query_id];
        self.record_finished(query, effects);
        self.admission.remove(query_id);
        // CPU quotas are charged for queries that succeed (Presto charges successes and user errors).
        self.admission.charge_cpu_ms(&group, cpu_ms, now_ms);
        effects.heartbeat_due = true;
        self.dispatch(now_ms, effects);
    }

    fn record_finished(&self, query: &Query, effects: &mut Effects) {
        let error_name = query.failure.as_ref().map(|failure| failure.code.name);
        effects.push(Effect::Ended { query_id: query.id.clone(), group: query.group.clone(), error_name });
        sim_hooks::record(|| Event::QueryFinished {
            query_id: query.id.clone(),
            coordinator: self.config.node_id.clone(),
            state: query.state.name().to_string(),
            error_name: error_name.map(str::to_string),
        });
    }

    fn apply_view(&mut self, now_ms: u64, mut view: ClusterView, with_nodes: bool, effects: &mut Effects) {
        self.admission.refresh(&view.groups, now_ms);
        if with_nodes {
            self.admission.set_cluster_memory_bytes(view.memory.total_bytes);
            self.admission.set_active_workers(view.workers.len() as u32);
        } else if let Some(previous) = self.view.take() {
            // A view without nodes leaves workers and memory at their last value.
            view.workers = previous.workers;
            view.memory = previous.memory;
        }
        self.killer.on_pending_kills(now_ms, &view.pending_memory_kills);
        let victim = if with_nodes {
            let own_running: BTreeSet<String> =
                self.queries.values().filter(|query| query.state == QueryState::Running).map(|query| query.id.clone()).collect();
            self.killer.on_view(now_ms, &view.workers, &own_running)
        } else {
            None
        };
        self.view = Some(view);
        if let Some(query_id) = victim {
            tracing::warn!(%query_id, "low-memory killer: the cluster is out of memory, killing the query");
            let message = "Query killed because the cluster is out of memory. Please try again in a few minutes.";
            self.end(now_ms, &query_id, QueryFailure::new(errors::CLUSTER_OUT_OF_MEMORY, message), effects);
        }
        self.dispatch(now_ms, effects);
    }

    /// Time limits, abandonment and bounded history.
    fn housekeeping(&mut self, now_ms: u64, effects: &mut Effects) {
        let client_timeout_ms = self.config.query_client_timeout_ms;
        let abandoned: Vec<(String, u64)> = self
            .queries
            .values()
            .filter(|query| !query.is_done() && now_ms.saturating_sub(query.last_client_access_ms) > client_timeout_ms)
            .map(|query| (query.id.clone(), query.last_client_access_ms))
            .collect();
        let overdue: Vec<(String, u64)> = self
            .queries
            .values()
            .filter(|query| !query.is_done())
            .filter_map(|query| {
                let limit_ms = self.admission.per_query_limits(&query.group).execution_time_limit_ms?;
                let started_ms = query.started_ms?;
                (now_ms.saturating_sub(started_ms) > limit_ms).then(|| (query.id.clone(), limit_ms))
            })
            .collect();
        for (query_id, limit_ms) in overdue {
            let message = format!("Query exceeded the maximum execution time limit of {}", crate::config::format_duration(limit_ms));
            self.end(now_ms, &query_id, QueryFailure::new(errors::EXCEEDED_TIME_LIMIT, message), effects);
        }
        let abandoned_results: Vec<(String, u64)> = self
            .queries
            .values()
            .filter(|query| query.is_done() && query.buffered_rows() > 0)
            .filter(|query| now_ms.saturating_sub(query.last_client_access_ms) > client_timeout_ms)
            .map(|query| (query.id.clone(), query.last_client_access_ms))
            .collect();
        let abandon_message = |query_id: &str, last_access_ms: u64| {
            format!(
                "Query {query_id} has not been accessed since {}: currentTime {}",
                crate::runtime::clock::format_iso8601(last_access_ms),
                crate::runtime::clock::format_iso8601(now_ms)
            )
        };
        for (query_id, last_access_ms) in abandoned {
            let message = abandon_message(&query_id, last_access_ms);
            self.end(now_ms, &query_id, QueryFailure::new(errors::ABANDONED_QUERY, message), effects);
        }
        // Finished, but its client never read the rest: the rows would otherwise stay buffered
        // until the query expires from history (the 2.1 GB of ten abandoned results).
        for (query_id, last_access_ms) in abandoned_results {
            let failure = QueryFailure::new(errors::ABANDONED_QUERY, abandon_message(&query_id, last_access_ms));
            if let Some(query) = self.queries.get_mut(&query_id) {
                if query.abandon_unread_results(failure) {
                    tracing::info!(%query_id, "the client stopped reading a finished query's results: dropped");
                    effects.heartbeat_due = true;
                }
            }
        }
        let mut done: Vec<(u64, String)> = self.queries.values().filter_map(|query| Some((query.ended_ms?, query.id.clone()))).collect();
        done.sort();
        let excess = done.len().saturating_sub(self.config.query_max_history);
        for (ended_ms, query_id) in done.into_iter().take(excess) {
            if now_ms.saturating_sub(ended_ms) >= self.config.query_min_expire_age_ms {
                self.queries.remove(&query_id);
            }
        }
    }

    /// What must always hold. O(queries held + groups).
    pub fn check_invariants(&self) -> Result<(), String> {
        if self.queries.len() > QUERIES_HELD_MAX + 1 {
            return Err(format!("{} queries held, over the bound {QUERIES_HELD_MAX}", self.queries.len()));
        }
        let (mut running, mut queued) = (0u64, 0u64);
        for (id, query) in &self.queries {
            if *id != query.id {
                return Err(format!("query {} is held under the id {id}", query.id));
            }
            match query.state {
                QueryState::Queued => {
                    queued += 1;
                    if query.started_ms.is_some() || query.ended_ms.is_some() {
                        return Err(format!("queued query {id} has a start or end time"));
                    }
                }
                QueryState::Running => {
                    running += 1;
                    if query.started_ms.is_none() || query.ended_ms.is_some() {
                        return Err(format!("running query {id} has no start time, or an end time"));
                    }
                }
                QueryState::Finished | QueryState::Failed => {
                    if query.ended_ms.is_none() {
                        return Err(format!("ended query {id} has no end time"));
                    }
                    if (query.state == QueryState::Failed) != query.failure.is_some() {
                        return Err(format!("query {id} is {} but its failure is {:?}", query.state.name(), query.failure));
                    }
                }
            }
        }
        // Admission counts exactly the queries held open here, and in their states.
        let roots = self.admission.local_counts().into_iter().filter(|counts| !counts.group.contains('.'));
        let (admitted_running, admitted_queued) = roots.fold((0u64, 0u64), |(running, queued), counts| {
            (running + u64::from(counts.running + counts.descendant_running), queued + u64::from(counts.queued + counts.descendant_queued))
        });
        if (admitted_running, admitted_queued) != (running, queued) {
            return Err(format!(
                "admission counts {admitted_running} running and {admitted_queued} queued, the manager holds {running} running and {queued} queued"
            ));
        }
        if !self.shutting_down && !self.drain_pending.is_empty() {
            return Err("drain bookkeeping without a drain".into());
        }
        Ok(())
    }

    // ---- Reads and the client's page protocol (no decisions) ----

    pub fn query(&self, query_id: &str) -> Option<&Query> {
        self.queries.get(query_id)
    }

    pub fn queries(&self) -> impl Iterator<Item = &Query> {
        self.queries.values()
    }

    pub fn admission(&self) -> &ResourceGroupManager {
        &self.admission
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down
    }

    /// `None` when the query is unknown or the slug is wrong (a 404 to the client).
    fn query_for_client(&self, query_id: &str, slug: &str) -> Option<&Query> {
        self.queries.get(query_id).filter(|query| query.slug == slug)
    }

    /// While a long-polling client should keep waiting: the handle that wakes it. `Ok(None)` when
    /// a page is due now.
    pub fn page_wait(&self, query_id: &str, slug: &str, path: PagePath) -> Result<Option<Arc<tokio::sync::Notify>>, PageError> {
        let query = self.query_for_client(query_id, slug).ok_or(PageError::NotFound)?;
        let worth_waiting = match path {
            PagePath::Queued => query.state == QueryState::Queued,
            PagePath::Executing => !query.has_news_for_executing(),
        };
        Ok(worth_waiting.then(|| query.changed.clone()))
    }

    /// The page for `token` on `path` (serving it counts as the client's access).
    pub fn page(&mut self, now_ms: u64, query_id: &str, slug: &str, path: PagePath, token: u64, base_uri: &str) -> Result<QueryResults, PageError> {
        let query = self.queries.get_mut(query_id).filter(|query| query.slug == slug).ok_or(PageError::NotFound)?;
        match path {
            PagePath::Queued => query.queued_page(token, base_uri, now_ms),
            PagePath::Executing => query.executing_page(token, base_uri, now_ms),
        }
    }

    pub fn drain_progress(&self) -> DrainProgress {
        let active = self.queries.values().filter(|query| !query.is_done()).count();
        // A client that cancelled or abandoned its query will not come back for the last page.
        let gone = |query: &Query| {
            query.failure.as_ref().is_some_and(|failure| failure.code == USER_CANCELED || failure.code == errors::ABANDONED_QUERY)
        };
        let unread = self
            .drain_pending
            .iter()
            .filter(|id| self.queries.get(*id).is_some_and(|query| !query.final_page_served && !gone(query)))
            .count();
        DrainProgress { active, unread }
    }

    /// Workers in the last RM view (empty until one listed any).
    pub fn workers(&self) -> Vec<WorkerView> {
        self.view.as_ref().map(|view| view.workers.clone()).unwrap_or_default()
    }

    /// Where the next query's tasks start in the round-robin over workers.
    pub fn advance_schedule_cursor(&mut self, tasks: u32) -> u64 {
        self.schedule_cursor = self.schedule_cursor.wrapping_add(u64::from(tasks));
        self.schedule_cursor
    }

    /// The next heartbeat's sequence will be above `sequence`.
    pub fn start_heartbeat_sequence_at(&mut self, sequence: u64) {
        self.heartbeat_sequence = self.heartbeat_sequence.max(sequence);
    }

    /// The batched query heartbeat: every open query and those that ended within
    /// [`FINISHED_REPORT_WINDOW_MS`], under a new sequence number.
    pub fn heartbeat(&mut self, now_ms: u64, coordinator_uri: &str) -> QueryHeartbeat {
        self.heartbeat_sequence = self.heartbeat_sequence.saturating_add(1);
        let queries = self
            .queries
            .values()
            .filter(|query| query.ended_ms.is_none_or(|ended_ms| now_ms.saturating_sub(ended_ms) <= FINISHED_REPORT_WINDOW_MS))
            .map(Query::summary)
            .collect();
        QueryHeartbeat {
            coordinator_id: self.config.node_id.clone(),
            coordinator_uri: coordinator_uri.to_string(),
            sequence: self.heartbeat_sequence,
            queries,
        }
    }

    /// This coordinator's own per-group counts.
    pub fn local_counts(&self) -> Vec<GroupCounts> {
        self.admission.local_counts()
    }

    /// Presto's `ResourceGroupInfo` for `group_id`: this coordinator's numbers, or merged with the
    /// RM's view of the others.
    pub fn resource_group_info(&self, group_id: &str, include_remote: bool) -> Option<serde_json::Value> {
        self.admission.group_info(group_id, include_remote)
    }
}

/// `perQueryLimits.totalMemoryLimit` is known before the query runs: its tasks say what they take.
fn exceeds_group_memory_limit(admission: &ResourceGroupManager, query: &Query) -> Option<QueryFailure> {
    let limit_bytes = admission.per_query_limits(&query.group).total_memory_limit_bytes?;
    (query.memory_bytes > limit_bytes).then(|| {
        QueryFailure::new(
            errors::EXCEEDED_GLOBAL_MEMORY_LIMIT,
            format!("Query exceeded distributed user memory limit of {}", crate::config::format_data_size(limit_bytes)),
        )
    })
}

mod inputs;
#[cfg(test)]
mod tests;

pub use inputs::{DrainProgress, Effect, Input, KillOutcome, ManagerConfig, PagePath, Submission};
