//! The worker: runs tasks, owns a memory pool, heartbeats memory and cpu to every RM, and drops
//! tasks whose coordinator stopped polling them (`task.client.timeout`), so a crashed or
//! partitioned coordinator cannot pin a worker's memory forever.

pub mod memory_pool;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use memory_pool::{MemoryPool, Reserve};

use crate::config::{format_data_size, NodeConfig, Role};
use crate::discovery::announcer::ResourceManagers;
use crate::node::fanout::FanOut;
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
}

struct WorkerState {
    pool: MemoryPool,
    tasks: BTreeMap<String, Task>,
}

struct Task {
    query_id: String,
    state: TaskState,
    memory_bytes: u64,
    rows: Vec<Vec<serde_json::Value>>,
    last_poll_ms: u64,
    ended_ms: Option<u64>,
    /// Woken when the task may proceed (memory granted) or must stop (cancelled).
    wake: Arc<tokio::sync::Notify>,
    /// Woken on every state change, for long-polling status requests.
    changed: Arc<tokio::sync::Notify>,
}

impl Worker {
    pub fn new(config: NodeConfig, clock: Clock, client: HttpClient, resource_managers: ResourceManagers) -> Self {
        let pool = MemoryPool::new(config.memory_pool_bytes);
        let state = WorkerState { pool, tasks: BTreeMap::new() };
        Worker { inner: Arc::new(Inner { config, clock, client, resource_managers, state: Mutex::new(state) }) }
    }

    fn lock(&self) -> MutexGuard<'_, WorkerState> {
        self.inner.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
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

    fn status(&self, task_id: &str, task: &Task) -> TaskStatus {
        TaskStatus { task_id: task_id.to_string(), worker_id: self.node_id().to_string(), state: task.state, memory_bytes: task.memory_bytes }
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

    fn release_memory(&self, state: &mut WorkerState, task_id: &str) {
        for granted in state.pool.release(task_id) {
            if let Some(task) = state.tasks.get(&granted) {
                task.wake.notify_one();
            }
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
                processors: std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1),
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
        return Json(worker.status(&task_id, task)).into_response();
    }
    if state.tasks.len() >= TASKS_MAX {
        return (StatusCode::SERVICE_UNAVAILABLE, format!("worker holds {TASKS_MAX} tasks already")).into_response();
    }
    let initial = match state.pool.reserve(&task_id, &request.query_id, request.memory_bytes) {
        Reserve::Granted => TaskState::Running,
        Reserve::Waiting => TaskState::Blocked,
        Reserve::TooLarge => {
            let rejection = TaskRejection {
                error_name: "EXCEEDED_LOCAL_MEMORY_LIMIT".into(),
                message: format!(
                    "Query exceeded per-node memory limit of {}",
                    format_data_size(state.pool.capacity_bytes())
                ),
            };
            return (StatusCode::BAD_REQUEST, Json(rejection)).into_response();
        }
    };
    let task = Task {
        query_id: request.query_id.clone(),
        state: initial,
        memory_bytes: request.memory_bytes,
        rows: Vec::new(),
        last_poll_ms: now_ms,
        ended_ms: None,
        wake: Arc::new(tokio::sync::Notify::new()),
        changed: Arc::new(tokio::sync::Notify::new()),
    };
    let status = worker.status(&task_id, &task);
    state.tasks.insert(task_id.clone(), task);
    drop(state);
    let span = tracing::info_span!("task", query_id = %request.query_id, task_id = %task_id);
    crate::runtime::spawn(tracing::Instrument::instrument(run_task(worker.clone(), task_id, request), span));
    Json(status).into_response()
}

async fn run_task(worker: Worker, task_id: String, request: TaskRequest) {
    // Wait for memory (or cancellation).
    loop {
        let wake = {
            let mut state = worker.lock();
            let granted = state.pool.is_granted(&task_id);
            let Some(task) = state.tasks.get_mut(&task_id) else { return };
            if task.state.is_done() {
                return;
            }
            if granted {
                task.state = TaskState::Running;
                task.changed.notify_waiters();
                break;
            }
            task.wake.clone()
        };
        wake.notified().await;
    }
    sim_hooks::record(|| Event::TaskStarted {
        task_id: task_id.clone(),
        query_id: request.query_id.clone(),
        worker: worker.node_id().to_string(),
    });
    let wake = match worker.lock().tasks.get(&task_id) {
        Some(task) => task.wake.clone(),
        None => return,
    };
    tokio::select! {
        biased;
        _ = crate::runtime::sleep_ms(request.run_time_ms) => {}
        _ = wake.notified() => return, // cancelled or abandoned; stop_task already cleaned up
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

/// Task status. With `?state=S&maxWait=D` (what coordinators send) the answer waits up to `D`
/// while the task is still in state `S`, like Presto's long-polled task status: one request per
/// state change or per `maxWait` instead of one per poll interval.
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
    let deadline_ms = worker.now_ms() + max_wait_ms;
    loop {
        let changed = {
            let now_ms = worker.now_ms();
            let mut state = worker.lock();
            let Some(task) = state.tasks.get_mut(&task_id) else {
                return (StatusCode::NOT_FOUND, "task not found").into_response();
            };
            task.last_poll_ms = now_ms;
            let unchanged = known_state.as_deref() == Some(task.state.name());
            if !unchanged || task.state.is_done() || now_ms >= deadline_ms {
                return Json(worker.status(&task_id, task)).into_response();
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
    let mut state = worker.lock();
    worker.stop_task(&mut state, &task_id, TaskState::Canceled);
    state.tasks.remove(&task_id);
    StatusCode::NO_CONTENT.into_response()
}

async fn run_heartbeats(worker: Worker) {
    let interval_ms = worker.inner.config.node_heartbeat_interval_ms;
    let timeout_ms = worker.inner.config.request_timeout_ms.min(interval_ms.max(1_000));
    let mut fan_out = FanOut::new(paths::NODE_HEARTBEAT, MessageKind::NodeHeartbeat);
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
        state.tasks.retain(|_, task| task.ended_ms.is_none_or(|ended_ms| now_ms.saturating_sub(ended_ms) < FINISHED_TASK_RETENTION_MS));
    }
}
