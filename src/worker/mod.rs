//! The worker: runs tasks, owns a memory pool, heartbeats memory and cpu to every RM, and drops
//! tasks whose coordinator stopped polling them (`task.client.timeout`), so a crashed or
//! partitioned coordinator cannot pin a worker's memory forever.
//!
//! A task reserves its initial memory when created and, if its query asked for growth, reserves
//! more in [`GROWTH_STEPS`] even steps over its run time. A task waiting for memory is *blocked*
//! and makes no progress (its run time does not advance) until the pool grants it — which is how
//! real queries build pressure, and what the low-memory killer resolves.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::memory::pool::{MemoryPool, Reserve};

use crate::config::{format_data_size, NodeConfig, Role};
use crate::discovery::announcer::ResourceManagers;
use crate::snapshot_sender::SnapshotSender;
use crate::runtime::http_client::HttpClient;
use crate::runtime::sim_hooks::{self, Event, MessageKind};
use crate::runtime::Clock;
use crate::wire::{paths, CpuInfo, MemoryInfo, NodeHeartbeat, TaskRejection, TaskRequest, TaskResults, TaskState, TaskStatus};

/// Tasks a worker holds at once (running, blocked or finished awaiting pickup).
const TASKS_MAX: usize = 10_000;
/// Finished tasks whose results nobody fetched are dropped after this long.
const FINISHED_TASK_RETENTION_MS: u64 = 60_000;
const REAPER_INTERVAL_MS: u64 = 1_000;
/// Longest a status request may be held.
const STATUS_MAX_WAIT_MS_MAX: u64 = 10_000;
/// A growing task's run time is cut into this many steps, each reserving an equal share more.
pub const GROWTH_STEPS: u64 = 10;

#[derive(Clone)]
pub struct Worker {
    inner: Arc<Inner>,
}

struct Inner {
    config: NodeConfig,
    clock: Clock,
    client: HttpClient,
    resource_managers: ResourceManagers,
    state: Mutex<WorkerState>,
    metrics: crate::metrics::Metrics,
}

struct WorkerState {
    pool: MemoryPool,
    tasks: BTreeMap<String, Task>,
    /// Tasks cancelled here (id → when), so that a create still in flight when its query was
    /// cancelled is refused instead of starting an orphan that holds memory. Bounded by
    /// [`TASKS_MAX`] and [`FINISHED_TASK_RETENTION_MS`].
    cancelled: BTreeMap<String, u64>,
}

struct Task {
    query_id: String,
    state: TaskState,
    error: Option<TaskRejection>,
    rows: Vec<Vec<serde_json::Value>>,
    last_poll_ms: u64,
    ended_ms: Option<u64>,
    /// Woken when the task may proceed (memory granted) or must stop (cancelled).
    wake: Arc<tokio::sync::Notify>,
    /// Woken on every state change, for long-polling status requests.
    changed: Arc<tokio::sync::Notify>,
}

impl Worker {
    pub fn new(context: crate::context::NodeContext, resource_managers: ResourceManagers) -> Self {
        let crate::context::NodeContext { config, clock, client, metrics, .. } = context;
        let pool = MemoryPool::new(config.memory_pool_bytes, config.query_max_memory_per_node_bytes);
        let state = WorkerState { pool, tasks: BTreeMap::new(), cancelled: BTreeMap::new() };
        Worker { inner: Arc::new(Inner { config, clock, client, resource_managers, state: Mutex::new(state), metrics }) }
    }

    fn lock(&self) -> MutexGuard<'_, WorkerState> {
        crate::runtime::lock(&self.inner.state)
    }

    fn now_ms(&self) -> u64 {
        self.inner.clock.now_ms()
    }

    fn node_id(&self) -> &str {
        &self.inner.config.node_id
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route(&format!("{}/{{task_id}}", paths::TASK), get(get_task).post(create_task).delete(delete_task))
            .route(&format!("{}/{{task_id}}/results", paths::TASK), get(get_results))
            .with_state(self.clone())
    }

    pub fn spawn_background(&self) -> Vec<tokio::task::JoinHandle<()>> {
        vec![crate::runtime::spawn(run_heartbeats(self.clone())), crate::runtime::spawn(run_reaper(self.clone()))]
    }

    /// Tasks a graceful shutdown waits for: running, waiting for memory, or finished with rows
    /// their coordinator has not fetched yet.
    pub fn unfinished_tasks(&self) -> usize {
        self.lock().tasks.values().filter(|task| matches!(task.state, TaskState::Blocked | TaskState::Running | TaskState::Finished)).count()
    }

    fn status(&self, state: &WorkerState, task_id: &str, task: &Task) -> TaskStatus {
        TaskStatus {
            task_id: task_id.to_string(),
            worker_id: self.node_id().to_string(),
            state: task.state,
            memory_bytes: state.pool.task_bytes(task_id),
            error: task.error.clone(),
        }
    }

    /// Tells the oracle what `task_id` holds now (simulation only).
    fn record_memory(&self, state: &WorkerState, task_id: &str, query_id: &str) {
        sim_hooks::record(|| Event::TaskMemory {
            task_id: task_id.to_string(),
            query_id: query_id.to_string(),
            worker: self.node_id().to_string(),
            task_bytes: state.pool.task_bytes(task_id),
            blocked: state.pool.is_blocked(),
        });
    }

    /// Ends a task that has not finished: frees its memory and wakes it so it stops.
    fn stop_task(&self, state: &mut WorkerState, task_id: &str, end_state: TaskState) {
        let now_ms = self.now_ms();
        let Some(task) = state.tasks.get_mut(task_id) else { return };
        if task.state.is_done() {
            return;
        }
        task.state = end_state;
        task.ended_ms = Some(now_ms);
        task.wake.notify_one();
        task.changed.notify_waiters();
        let query_id = task.query_id.clone();
        sim_hooks::record(|| Event::TaskEnded {
            task_id: task_id.to_string(),
            query_id,
            worker: self.node_id().to_string(),
            state: format!("{end_state:?}").to_uppercase(),
        });
        self.release_memory(state, task_id);
    }

    /// Frees everything `task_id` holds or waits for, and wakes the tasks that got memory.
    fn release_memory(&self, state: &mut WorkerState, task_id: &str) {
        let granted = state.pool.release(task_id);
        if let Some(task) = state.tasks.get(task_id) {
            self.record_memory(state, task_id, &task.query_id);
        }
        for granted in granted {
            if let Some(task) = state.tasks.get(&granted) {
                task.wake.notify_one();
                self.record_memory(state, &granted, &task.query_id);
            }
        }
    }

    /// Fails a running task with `error` (its query exceeded a limit) and frees its memory.
    fn fail_task(&self, state: &mut WorkerState, task_id: &str, error: TaskRejection) {
        if let Some(task) = state.tasks.get_mut(task_id) {
            task.error = Some(error);
        }
        self.stop_task(state, task_id, TaskState::Failed);
    }

    /// Asks the pool for `bytes` more for a running task. `false` when the task ended instead
    /// (already done, or failed on the per-node limit).
    fn grow(&self, task_id: &str, query_id: &str, bytes: u64) -> bool {
        let mut state = self.lock();
        if state.tasks.get(task_id).is_none_or(|task| task.state.is_done()) {
            return false;
        }
        match state.pool.reserve(task_id, query_id, bytes) {
            Reserve::Granted => {
                if let Some(task) = state.tasks.get(task_id) {
                    task.changed.notify_waiters();
                }
            }
            Reserve::Waiting => {
                if let Some(task) = state.tasks.get_mut(task_id) {
                    task.state = TaskState::Blocked;
                    task.changed.notify_waiters();
                }
            }
            refused @ (Reserve::ExceedsQueryLimit { .. } | Reserve::TooLarge) => {
                let error = local_limit_error(&state.pool, &refused, bytes);
                self.fail_task(&mut state, task_id, error);
                return false;
            }
        }
        self.record_memory(&state, task_id, query_id);
        true
    }

    /// Waits until the task holds everything it asked for; `false` if it ended meanwhile.
    async fn wait_for_memory(&self, task_id: &str) -> bool {
        loop {
            let wake = {
                let mut guard = self.lock();
                let state = &mut *guard;
                let waiting = state.pool.is_waiting(task_id);
                let Some(task) = state.tasks.get_mut(task_id) else { return false };
                if task.state.is_done() {
                    return false;
                }
                if !waiting {
                    if task.state != TaskState::Running {
                        task.state = TaskState::Running;
                        task.changed.notify_waiters();
                    }
                    return true;
                }
                task.wake.clone()
            };
            wake.notified().await;
        }
    }

    fn heartbeat(&self) -> NodeHeartbeat {
        let state = self.lock();
        let running = state.tasks.values().filter(|task| task.state == TaskState::Running).count();
        let blocked = state.tasks.values().filter(|task| task.state == TaskState::Blocked).count();
        NodeHeartbeat {
            node_id: self.node_id().to_string(),
            role: Role::Worker,
            uri: self.inner.config.self_uri(),
            memory: MemoryInfo {
                pool_bytes: state.pool.capacity_bytes(),
                reserved_bytes: state.pool.reserved_bytes(),
                blocked: state.pool.is_blocked(),
                query_reservations: state.pool.query_reservations(),
            },
            cpu: CpuInfo {
                processors: crate::runtime::available_processors(),
                running_tasks: running as u32,
                blocked_tasks: blocked as u32,
            },
        }
    }
}

async fn create_task(State(worker): State<Worker>, Path(task_id): Path<String>, Json(request): Json<TaskRequest>) -> Response {
    let now_ms = worker.now_ms();
    let mut state = worker.lock();
    if let Some(task) = state.tasks.get_mut(&task_id) {
        task.last_poll_ms = now_ms; // a retried create: idempotent
    }
    if let Some(task) = state.tasks.get(&task_id) {
        return Json(worker.status(&state, &task_id, task)).into_response();
    }
    if state.cancelled.contains_key(&task_id) {
        return (StatusCode::GONE, format!("task {task_id} was cancelled")).into_response();
    }
    if state.tasks.len() >= TASKS_MAX {
        return (StatusCode::SERVICE_UNAVAILABLE, format!("worker holds {TASKS_MAX} tasks already")).into_response();
    }
    if request.peak_memory_bytes != 0 && request.peak_memory_bytes < request.memory_bytes {
        let message = "peak_memory_bytes must be at least memory_bytes (or 0 for no growth)";
        return (StatusCode::BAD_REQUEST, message).into_response();
    }
    let initial = match state.pool.reserve(&task_id, &request.query_id, request.memory_bytes) {
        Reserve::Granted => TaskState::Running,
        Reserve::Waiting => TaskState::Blocked,
        refused @ (Reserve::ExceedsQueryLimit { .. } | Reserve::TooLarge) => {
            let rejection = local_limit_error(&state.pool, &refused, request.memory_bytes);
            return (StatusCode::BAD_REQUEST, Json(rejection)).into_response();
        }
    };
    let task = Task {
        query_id: request.query_id.clone(),
        state: initial,
        error: None,
        rows: Vec::new(),
        last_poll_ms: now_ms,
        ended_ms: None,
        wake: Arc::new(tokio::sync::Notify::new()),
        changed: Arc::new(tokio::sync::Notify::new()),
    };
    state.tasks.insert(task_id.clone(), task);
    worker.record_memory(&state, &task_id, &request.query_id);
    let Some(task) = state.tasks.get(&task_id) else { return StatusCode::INTERNAL_SERVER_ERROR.into_response() };
    let status = worker.status(&state, &task_id, task);
    drop(state);
    let span = tracing::info_span!("task", query_id = %request.query_id, task_id = %task_id);
    crate::runtime::spawn(tracing::Instrument::instrument(run_task(worker.clone(), task_id, request), span));
    Json(status).into_response()
}

async fn run_task(worker: Worker, task_id: String, request: TaskRequest) {
    let growth_bytes = request.peak_memory_bytes.saturating_sub(request.memory_bytes);
    let steps = if growth_bytes > 0 { GROWTH_STEPS } else { 1 };
    for step in 0..steps {
        // Step 0 runs on the reservation made at creation; each later step first asks for its
        // share of the growth (the last share takes the remainder, so the peak is exact).
        if step > 0 {
            let points = steps - 1;
            let share = growth_bytes / points + if step == points { growth_bytes % points } else { 0 };
            if !worker.grow(&task_id, &request.query_id, share) {
                return;
            }
        }
        if !worker.wait_for_memory(&task_id).await {
            return;
        }
        if step == 0 {
            sim_hooks::record(|| Event::TaskStarted {
                task_id: task_id.clone(),
                query_id: request.query_id.clone(),
                worker: worker.node_id().to_string(),
            });
        }
        let wake = match worker.lock().tasks.get(&task_id) {
            Some(task) => task.wake.clone(),
            None => return,
        };
        let step_ms = request.run_time_ms / steps + if step == steps - 1 { request.run_time_ms % steps } else { 0 };
        let deadline_ms = worker.now_ms() + step_ms;
        loop {
            let remaining_ms = deadline_ms.saturating_sub(worker.now_ms());
            if remaining_ms == 0 {
                break;
            }
            tokio::select! {
                biased;
                _ = crate::runtime::sleep_ms(remaining_ms) => break,
                // Cancelled or abandoned (stop_task already cleaned up) — or a leftover grant
                // wake-up, after which the step just goes on.
                _ = wake.notified() => {
                    if worker.lock().tasks.get(&task_id).is_none_or(|task| task.state.is_done()) {
                        return;
                    }
                }
            }
        }
    }
    let rows = crate::sql::synthetic::generate_rows(request.task_index, request.first_row, request.row_count, worker.node_id());
    let now_ms = worker.now_ms();
    let mut state = worker.lock();
    let Some(task) = state.tasks.get_mut(&task_id) else { return };
    if task.state.is_done() {
        return;
    }
    task.state = TaskState::Finished;
    task.rows = rows;
    task.ended_ms = Some(now_ms);
    task.changed.notify_waiters();
    sim_hooks::record(|| Event::TaskEnded {
        task_id: task_id.clone(),
        query_id: request.query_id.clone(),
        worker: worker.node_id().to_string(),
        state: "FINISHED".into(),
    });
    worker.release_memory(&mut state, &task_id);
}

/// Presto's per-node limit error for a refused reservation of `bytes`.
fn local_limit_error(pool: &MemoryPool, refused: &Reserve, bytes: u64) -> TaskRejection {
    let (limit_bytes, held_bytes) = match refused {
        Reserve::ExceedsQueryLimit { limit_bytes, held_bytes } => (*limit_bytes, *held_bytes),
        _ => (pool.capacity_bytes().min(pool.query_limit_bytes()), 0),
    };
    TaskRejection {
        error_name: "EXCEEDED_LOCAL_MEMORY_LIMIT".into(),
        message: format!(
            "Query exceeded per-node user memory limit of {} [Allocated: {}, Delta: {}]",
            format_data_size(limit_bytes),
            format_data_size(held_bytes),
            format_data_size(bytes)
        ),
    }
}

/// Task status. With `?state=S&maxWait=D` (what coordinators send) the answer waits up to `D`
/// while the task is still in state `S` (and, with `&memory=B`, still holds `B` bytes), like
/// Presto's long-polled task status: one request per change or per `maxWait` instead of one per
/// poll interval. Memory is part of it so that coordinators see a growing query's reservation.
async fn get_task(
    State(worker): State<Worker>,
    Path(task_id): Path<String>,
    Query(params): Query<BTreeMap<String, String>>,
) -> Response {
    let max_wait_ms = params
        .get("maxWait")
        .and_then(|text| crate::config::parse_duration_ms(text).ok())
        .unwrap_or(0)
        .min(STATUS_MAX_WAIT_MS_MAX);
    let known_state = params.get("state").cloned();
    let known_memory_bytes = params.get("memory").and_then(|text| text.parse::<u64>().ok());
    let deadline_ms = worker.now_ms() + max_wait_ms;
    loop {
        let changed = {
            let now_ms = worker.now_ms();
            let mut state = worker.lock();
            let memory_bytes = state.pool.task_bytes(&task_id);
            let Some(task) = state.tasks.get_mut(&task_id) else {
                return (StatusCode::NOT_FOUND, "task not found").into_response();
            };
            task.last_poll_ms = now_ms;
            let unchanged = known_state.as_deref() == Some(task.state.name())
                && known_memory_bytes.is_none_or(|known| known == memory_bytes);
            if !unchanged || task.state.is_done() || now_ms >= deadline_ms {
                let task = &state.tasks[&task_id];
                return Json(worker.status(&state, &task_id, task)).into_response();
            }
            task.changed.clone()
        };
        let notified = changed.notified();
        let remaining_ms = deadline_ms.saturating_sub(worker.now_ms());
        // A change between the check and this wait is caught at the latest at the deadline.
        let _ = crate::runtime::timeout_ms(remaining_ms.max(1), notified).await;
    }
}

async fn get_results(State(worker): State<Worker>, Path(task_id): Path<String>) -> Response {
    let now_ms = worker.now_ms();
    let mut state = worker.lock();
    match state.tasks.get_mut(&task_id) {
        Some(task) if task.state == TaskState::Finished => {
            task.last_poll_ms = now_ms;
            Json(TaskResults { task_id: task_id.clone(), rows: task.rows.clone() }).into_response()
        }
        Some(_) => (StatusCode::CONFLICT, "task has not finished").into_response(),
        None => (StatusCode::NOT_FOUND, "task not found").into_response(),
    }
}

async fn delete_task(State(worker): State<Worker>, Path(task_id): Path<String>) -> Response {
    let now_ms = worker.now_ms();
    let mut state = worker.lock();
    if state.cancelled.len() >= TASKS_MAX {
        state.cancelled.pop_first();
    }
    state.cancelled.insert(task_id.clone(), now_ms);
    worker.stop_task(&mut state, &task_id, TaskState::Canceled);
    state.tasks.remove(&task_id);
    StatusCode::NO_CONTENT.into_response()
}

async fn run_heartbeats(worker: Worker) {
    let interval_ms = worker.inner.config.node_heartbeat_interval_ms;
    let timeout_ms = worker.inner.config.request_timeout_ms.min(interval_ms.max(1_000));
    let mut fan_out = SnapshotSender::new(paths::NODE_HEARTBEAT, MessageKind::NodeHeartbeat).with_metrics(&worker.inner.metrics);
    loop {
        let heartbeat = Arc::new(worker.heartbeat());
        let uris = worker.inner.resource_managers.all();
        fan_out.send(&worker.inner.client, uris, heartbeat, timeout_ms);
        crate::runtime::sleep_ms(interval_ms).await;
    }
}

/// Abandons tasks nobody polls and forgets finished tasks nobody fetched.
async fn run_reaper(worker: Worker) {
    let client_timeout_ms = worker.inner.config.task_client_timeout_ms;
    loop {
        crate::runtime::sleep_ms(REAPER_INTERVAL_MS).await;
        let now_ms = worker.now_ms();
        let mut state = worker.lock();
        let abandoned: Vec<String> = state
            .tasks
            .iter()
            .filter(|(_, task)| !task.state.is_done() && now_ms.saturating_sub(task.last_poll_ms) > client_timeout_ms)
            .map(|(task_id, _)| task_id.clone())
            .collect();
        for task_id in abandoned {
            let query_id = state.tasks.get(&task_id).map(|task| task.query_id.clone()).unwrap_or_default();
            tracing::warn!(%query_id, %task_id, "abandoning task: its coordinator stopped polling it");
            worker.stop_task(&mut state, &task_id, TaskState::Abandoned);
        }
        state.cancelled.retain(|_, cancelled_ms| now_ms.saturating_sub(*cancelled_ms) < FINISHED_TASK_RETENTION_MS);
        state.tasks.retain(|_, task| task.ended_ms.is_none_or(|ended_ms| now_ms.saturating_sub(ended_ms) < FINISHED_TASK_RETENTION_MS));
    }
}
