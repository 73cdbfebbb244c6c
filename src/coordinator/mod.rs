//! The coordinator: accepts SQL over the Presto client protocol, admits it against the
//! cluster-wide limit using its own counts merged with the RM view, schedules tasks on workers,
//! returns results, and tells every RM about its queries.
//!
//! Layout:
//! - [`manager`]: every decision about this coordinator's queries, as a pure state machine
//!   (inputs in, effects out); admission inside it is
//!   [`crate::resource_groups::ResourceGroupManager`];
//! - [`query`]: one query's lifecycle and result pages (pure);
//! - [`scheduler`]: which workers get a query's tasks (pure);
//! - this module: the shell — it owns the manager behind a lock, feeds it inputs and carries out
//!   its effects once the lock is released;
//! - [`execution`]: the async driver that runs a started query's tasks on workers;
//! - [`rm_sync`]: batched query heartbeats to every RM and polling one RM for the cluster view;
//! - [`statement_api`]: the HTTP handlers of the client protocol;
//! - [`query_api`]: `/v1/query/{id}`, `/v1/queryState` and the cluster REST a coordinator proxies.

mod execution;
pub mod manager;
pub mod query;
mod query_api;
mod remote_task;
mod rm_sync;
mod sql_execution;
pub mod scheduler;
mod statement_api;

use std::sync::{Arc, Mutex};

use manager::{DrainProgress, Effect, Input, KillOutcome, QueryManager, Submission};

use crate::context::NodeContext;
use crate::discovery::announcer::ResourceManagers;
use crate::protocol::{errors, QueryFailure, QueryResults, SessionContext};
use crate::sql::ParsedStatement;
use crate::wire::ClusterView;

/// How often a draining coordinator looks whether its queries are done.
const DRAIN_POLL_MS: u64 = 100;
/// After its queries ended, how long a draining coordinator waits for their clients to read the
/// last page (a client polls at least every few seconds; one that went away must not hold it).
const DRAIN_LAST_PAGE_WAIT_MS: u64 = 30_000;
/// How often the manager's timers run (time limits, abandonment, history).
const HOUSEKEEPING_INTERVAL_MS: u64 = 1_000;

#[derive(Clone)]
pub struct Coordinator {
    inner: Arc<Inner>,
}

struct Inner {
    context: NodeContext,
    resource_managers: ResourceManagers,
    self_uri: String,
    manager: Mutex<QueryManager>,
    /// Woken when a query changed state, so the heartbeat goes out promptly (coalesced).
    heartbeat_due: tokio::sync::Notify,
}

impl Coordinator {
    /// Fails when the resource-groups file is invalid: a node never runs on a half-read file.
    pub fn new(context: NodeContext, resource_managers: ResourceManagers) -> Result<Self, String> {
        let mut manager = QueryManager::new(&context.config, context.rng.next_u64(), context.now_ms())?;
        // Heartbeat sequences continue across restarts (wall time in µs, so above any number the
        // previous incarnation can have reached): RMs take a restarted coordinator's first batch
        // as newer than its predecessor's last one.
        manager.start_heartbeat_sequence_at(context.clock.wall_ms().saturating_mul(1_000));
        let self_uri = context.config.self_uri();
        Ok(Coordinator {
            inner: Arc::new(Inner {
                context,
                resource_managers,
                self_uri,
                manager: Mutex::new(manager),
                heartbeat_due: tokio::sync::Notify::new(),
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

    fn context(&self) -> &NodeContext {
        &self.inner.context
    }

    fn config(&self) -> &crate::config::NodeConfig {
        &self.inner.context.config
    }

    fn now_ms(&self) -> u64 {
        self.inner.context.now_ms()
    }

    pub fn self_uri(&self) -> &str {
        &self.inner.self_uri
    }

    /// The base of the URIs handed to a client (`nextUri`, `infoUri`): the HTTPS one when the
    /// client came over HTTPS, so it keeps its password off plain HTTP.
    pub fn client_base_uri(&self, over_tls: bool) -> String {
        match (over_tls, self.config().self_https_uri()) {
            (true, Some(https_uri)) => https_uri,
            _ => self.inner.self_uri.clone(),
        }
    }

    pub fn node_id(&self) -> &str {
        self.inner.context.node_id()
    }

    /// Reads (or, for pages, advances) the manager under its lock. Never hold the result across
    /// an await: the closure runs with the lock held.
    fn with_manager<T>(&self, f: impl FnOnce(&mut QueryManager) -> T) -> T {
        f(&mut crate::runtime::lock(&self.inner.manager))
    }

    /// Feeds one input to the manager, then carries out its effects with the lock released.
    fn apply(&self, input: Input) -> Vec<Effect> {
        let now_ms = self.now_ms();
        let effects = self.with_manager(|manager| manager.handle(now_ms, input));
        for effect in &effects {
            match effect {
                Effect::Execute { query_id, group } => {
                    self.context().metrics.query_admitted(group);
                    let span = query_span(query_id);
                    crate::runtime::spawn(tracing::Instrument::instrument(execution::execute(self.clone(), query_id.clone()), span));
                }
                Effect::Ended { group, error_name, .. } => self.context().metrics.query_ended(group, *error_name),
                Effect::HeartbeatDue => self.inner.heartbeat_due.notify_one(),
                Effect::Accepted { .. } | Effect::KillResult(_) => {}
            }
        }
        effects
    }

    /// Creates a query from `POST /v1/statement` and returns the first page.
    fn submit(&self, session: SessionContext, sql: String, base_uri: &str) -> QueryResults {
        // Parsing is CPU work: done before the lock is taken.
        let parsed = crate::sql::parse(&sql).and_then(|parsed| self.authorize(&session, parsed));
        let rng = &self.context().rng;
        let slug = format!("x{:016x}{:016x}", rng.next_u64(), rng.next_u64());
        let wall_ms = self.context().clock.wall_ms();
        let submission = Submission { session, sql, parsed, slug: slug.clone(), wall_ms };
        let effects = self.apply(Input::Submit(submission));
        // Every submission yields an id, refused or not (the manager's contract).
        let query_id = effects
            .iter()
            .find_map(|effect| match effect {
                Effect::Accepted { query_id } => Some(query_id.clone()),
                _ => None,
            })
            .unwrap_or_default();
        let now_ms = self.now_ms();
        let page = self.with_manager(|manager| manager.page(now_ms, &query_id, &slug, manager::PagePath::Queued, 0, base_uri));
        page.unwrap_or_else(|_| unreachable_page(&query_id))
    }

    /// Refuses, as Presto does (PERMISSION_DENIED), a statement its user may not run or that
    /// reads a catalog the user may not read (`security::access`). An unqualified table is in
    /// the session's catalog.
    fn authorize(&self, session: &SessionContext, parsed: ParsedStatement) -> Result<ParsedStatement, QueryFailure> {
        let access = &self.context().access;
        if !access.can_execute(&session.user) {
            return Err(QueryFailure::new(errors::PERMISSION_DENIED, "Access Denied: Cannot execute query"));
        }
        for name in &parsed.tables {
            let catalog = if name.len() >= 3 { name.first() } else { session.catalog.as_ref() };
            if let Some(catalog) = catalog.filter(|catalog| !access.can_access_catalog(&session.user, catalog)) {
                return Err(QueryFailure::new(errors::PERMISSION_DENIED, format!("Access Denied: Cannot access catalog {catalog}")));
            }
        }
        Ok(parsed)
    }

    pub fn cancel(&self, query_id: &str) {
        self.apply(Input::Cancel { query_id: query_id.to_string() });
    }

    /// Fails a running or queued query with `failure`, as an administrator asked.
    pub fn kill_query(&self, query_id: &str, failure: QueryFailure) -> KillOutcome {
        let effects = self.apply(Input::Kill { query_id: query_id.to_string(), failure });
        effects
            .iter()
            .find_map(|effect| match effect {
                Effect::KillResult(outcome) => Some(*outcome),
                _ => None,
            })
            .unwrap_or(KillOutcome::NotFound)
    }

    /// A fresh cluster view from an RM (with workers and memory when `with_nodes`; otherwise
    /// those keep their last value).
    fn apply_view(&self, view: ClusterView, with_nodes: bool) {
        self.inner.resource_managers.learn(&view.resource_managers);
        self.apply(Input::ClusterView { view, with_nodes });
        self.context().metrics.cluster_view_applied();
    }

    /// From now on new queries are refused with SERVER_SHUTTING_DOWN; admitted ones carry on.
    pub fn begin_shutdown(&self) {
        self.apply(Input::BeginShutdown);
    }

    /// Stops accepting queries; returns once running and queued ones are done and their clients
    /// have read their last page (bounded by the caller; the last step also by
    /// `DRAIN_LAST_PAGE_WAIT_MS`, so a client that went away cannot hold the node).
    pub async fn drain(&self) {
        self.begin_shutdown();
        let progress = || self.with_manager(|manager| manager.drain_progress());
        while progress().active > 0 {
            crate::runtime::sleep_ms(DRAIN_POLL_MS).await;
        }
        let read = crate::runtime::timeout_ms(DRAIN_LAST_PAGE_WAIT_MS, async {
            while progress().unread > 0 {
                crate::runtime::sleep_ms(DRAIN_POLL_MS).await;
            }
        });
        if read.await.is_none() {
            let DrainProgress { unread, .. } = progress();
            tracing::warn!(queries = unread, "clients did not read their queries' last pages before shutdown");
        }
    }

    /// This coordinator's own per-group counts.
    pub fn local_counts(&self) -> Vec<crate::wire::GroupCounts> {
        self.with_manager(|manager| manager.local_counts())
    }

    /// Presto's `ResourceGroupInfo` for `group_id`: this coordinator's numbers, or merged with the
    /// RM's view of the others.
    pub fn resource_group_info(&self, group_id: &str, include_remote: bool) -> Option<serde_json::Value> {
        self.with_manager(|manager| manager.resource_group_info(group_id, include_remote))
    }
}

async fn run_housekeeping(coordinator: Coordinator) {
    loop {
        crate::runtime::sleep_ms(HOUSEKEEPING_INTERVAL_MS).await;
        coordinator.apply(Input::Tick);
    }
}

/// The span all of one query's work runs in: log lines inside carry `query_id`. It is a root span:
/// one query's work may start another (a query ending dispatches the next), and that one's lines
/// must carry only its own id.
fn query_span(query_id: &str) -> tracing::Span {
    tracing::info_span!(parent: None, "query", query_id = %query_id)
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
