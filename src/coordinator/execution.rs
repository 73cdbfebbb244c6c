//! Runs a started query: constant selects answer at once; synthetic queries become tasks on
//! workers, which are created, polled (the poll doubles as the keep-alive workers expect) and
//! drained of their rows. Rows are handed to the query as each task finishes, so clients see data
//! while other tasks still run.
//!
//! The driver decides nothing about the query itself: rows, memory and the outcome go to the query
//! manager as inputs, and a query the manager ended (cancel, kill, a limit) stops its driver
//! through the query's cancel handle.
//!
//! Everything here runs inside the query's tracing span (see `Coordinator::apply`), so every
//! log line carries the query id.

use axum::http::Method;
use tokio::sync::mpsc;

use super::manager::Input;
use super::{scheduler, Coordinator};
use crate::protocol::errors::{self, NO_NODES_AVAILABLE, REMOTE_TASK_ERROR};
use crate::protocol::QueryFailure;
use crate::runtime::http_client::{ClientError, Request};
use crate::runtime::sim_hooks::MessageKind;
use crate::sql::{Plan, SyntheticSpec};
use crate::wire::{paths, TaskRejection, TaskRequest, TaskResults, TaskState, TaskStatus, WorkerView};

/// Other workers tried when a task cannot be created on its first choice.
const PLACEMENT_FALLBACKS_MAX: usize = 2;
/// How often a query waiting for its first worker looks again.
const WORKER_WAIT_POLL_MS: u64 = 100;

pub async fn execute(coordinator: Coordinator, query_id: String) {
    let Some((plan, cancel)) =
        coordinator.with_manager(|manager| manager.query(&query_id).map(|query| (query.plan.clone(), query.cancel.clone())))
    else {
        return;
    };
    let result = match plan {
        Plan::Constant { row, .. } => {
            coordinator.apply(Input::TaskOutput { query_id: query_id.clone(), rows: vec![row], task_done: false });
            Ok(())
        }
        Plan::Synthetic(spec) => {
            tokio::select! {
                biased;
                result = run_synthetic(&coordinator, &query_id, &spec) => result,
                _ = cancel.notified() => Ok(()), // the query already ended; tasks are cancelled below
            }
        }
        Plan::Sql(sql) => {
            tokio::select! {
                biased;
                result = super::sql_execution::run(&coordinator, &query_id, &sql) => result,
                // The query already ended: dropping the plan drops its leaf drivers, which cancel
                // their tasks on the workers.
                _ = cancel.notified() => Ok(()),
            }
        }
    };
    coordinator.apply(Input::ExecutionEnded { query_id, outcome: result });
}

async fn run_synthetic(coordinator: &Coordinator, query_id: &str, spec: &SyntheticSpec) -> Result<(), QueryFailure> {
    let workers = wait_for_workers(coordinator).await?;
    let cursor = coordinator.with_manager(|manager| manager.advance_schedule_cursor(spec.tasks));
    let placement = scheduler::place(&workers, spec.tasks, cursor, PLACEMENT_FALLBACKS_MAX);
    let (results_tx, mut results_rx) = mpsc::channel(spec.tasks as usize);
    let mut task_handles = TaskCleanup { coordinator: coordinator.clone(), created: Vec::new(), drivers: Vec::new() };
    for (task_index, candidates) in placement.into_iter().enumerate() {
        let task_index = task_index as u32;
        let (first_row, row_count) = spec.task_rows(task_index);
        let request = TaskRequest {
            query_id: query_id.to_string(),
            coordinator_id: coordinator.node_id().to_string(),
            task_index,
            run_time_ms: spec.run_time_ms,
            memory_bytes: spec.task_memory_bytes,
            peak_memory_bytes: spec.task_peak_memory_bytes,
            first_row,
            row_count,
            fragment: None,
        };
        let task_id = format!("{query_id}.0.{task_index}");
        task_handles.created.push((task_id.clone(), candidates.clone()));
        let driver = TaskDriver { coordinator: coordinator.clone(), task_id, request, candidates };
        let results_tx = results_tx.clone();
        // Spawned tasks do not inherit the span by themselves; this one is the query's work too.
        task_handles.drivers.push(crate::runtime::spawn(tracing::Instrument::in_current_span(async move {
            let outcome = driver.run().await;
            let _ = results_tx.send(outcome).await;
        })));
    }
    drop(results_tx);
    let mut remaining = spec.tasks;
    let outcome = loop {
        if remaining == 0 {
            break Ok(());
        }
        match results_rx.recv().await {
            Some(Ok(rows)) => {
                remaining -= 1;
                coordinator.apply(Input::TaskOutput { query_id: query_id.to_string(), rows, task_done: true });
            }
            Some(Err(failure)) => break Err(failure),
            None => break Err(QueryFailure::new(REMOTE_TASK_ERROR, "task drivers ended without a result")),
        }
    };
    if outcome.is_ok() {
        task_handles.created.clear(); // finished tasks were already released by their drivers
    }
    outcome
}

/// Stops the query's task drivers and cancels its tasks on their workers when execution ends
/// early (failure, cancel or kill — also when the execution future is dropped mid-way). The
/// drivers must stop first: one left running would keep polling, and so keep alive, a task the
/// cancel just removed — or create it after the cancel. (Workers also refuse a create for a task
/// they already cancelled, for a create that was in flight.)
struct TaskCleanup {
    coordinator: Coordinator,
    created: Vec<(String, Vec<WorkerView>)>,
    drivers: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for TaskCleanup {
    fn drop(&mut self) {
        for driver in &self.drivers {
            driver.abort();
        }
        if self.created.is_empty() {
            return;
        }
        let client = self.coordinator.context().client.clone();
        let timeout_ms = self.coordinator.config().request_timeout_ms;
        let tasks = std::mem::take(&mut self.created);
        crate::runtime::spawn(tracing::Instrument::in_current_span(async move {
            for (task_id, candidates) in tasks {
                // The task may have landed on any candidate; DELETE of an unknown task is harmless.
                for worker in candidates {
                    let url = format!("{}{}/{task_id}", worker.uri, paths::TASK);
                    let request = Request::new(Method::DELETE, url, MessageKind::TaskCancel).timeout_ms(timeout_ms).retries(1);
                    let _ = client.send(request).await;
                }
            }
        }));
    }
}

/// Waits (bounded by `query-manager.required-workers-max-wait`) until the RM view lists a worker.
pub(super) async fn wait_for_workers(coordinator: &Coordinator) -> Result<Vec<WorkerView>, QueryFailure> {
    let deadline_ms = coordinator.now_ms() + coordinator.config().required_workers_max_wait_ms;
    loop {
        let workers = coordinator.with_manager(|manager| manager.workers());
        if !workers.is_empty() {
            return Ok(workers);
        }
        if coordinator.now_ms() >= deadline_ms {
            return Err(QueryFailure::new(NO_NODES_AVAILABLE, "No worker nodes available"));
        }
        crate::runtime::sleep_ms(WORKER_WAIT_POLL_MS).await;
    }
}

pub(super) struct TaskDriver {
    pub coordinator: Coordinator,
    pub task_id: String,
    pub request: TaskRequest,
    pub candidates: Vec<WorkerView>,
}

impl TaskDriver {
    async fn run(self) -> Result<Vec<Vec<serde_json::Value>>, QueryFailure> {
        let worker = self.create().await?;
        let base = self.follow(&worker).await?;
        self.fetch_results(&base).await
    }

    /// Follows the created task's status on `worker` until it finished: the task's URL then.
    pub async fn follow(&self, worker: &WorkerView) -> Result<String, QueryFailure> {
        let base = format!("{}{}/{}", worker.uri, paths::TASK, self.task_id);
        let config = self.coordinator.config();
        let client = &self.coordinator.context().client;
        let mut last_contact_ms = self.coordinator.now_ms();
        let mut known_state = TaskState::Blocked;
        let mut known_memory_bytes = u64::MAX; // unknown: the first answer comes at once
        let mut first = true;
        loop {
            // Long-poll: the worker answers when the state changes or after `maxWait`; only after
            // a failed poll (or on the first) does the driver pause for the refresh interval.
            if first {
                crate::runtime::sleep_ms(config.task_status_interval_ms).await;
                first = false;
            }
            let url = format!(
                "{base}?state={}&memory={known_memory_bytes}&maxWait={}ms",
                known_state.name(),
                config.task_status_max_wait_ms
            );
            let timeout_ms = config.request_timeout_ms + config.task_status_max_wait_ms;
            let status: Result<TaskStatus, _> = client.get_json(&url, MessageKind::TaskStatus, timeout_ms).await;
            match status {
                Ok(status) => {
                    last_contact_ms = self.coordinator.now_ms();
                    known_state = status.state;
                    if status.memory_bytes != known_memory_bytes {
                        known_memory_bytes = status.memory_bytes;
                        self.report_memory(status.memory_bytes)?;
                    }
                    match status.state {
                        TaskState::Finished => return Ok(base),
                        TaskState::Failed => {
                            let error = status.error.unwrap_or_else(|| crate::wire::TaskRejection {
                                error_name: REMOTE_TASK_ERROR.name.to_string(),
                                message: format!("Task {} failed on {}", self.task_id, worker.node_id),
                            });
                            let code = errors::by_name(&error.error_name).unwrap_or(REMOTE_TASK_ERROR);
                            return Err(QueryFailure::new(code, error.message));
                        }
                        TaskState::Canceled | TaskState::Abandoned => {
                            return Err(QueryFailure::new(
                                REMOTE_TASK_ERROR,
                                format!("Task {} was {:?} on {}", self.task_id, status.state, worker.node_id),
                            ))
                        }
                        TaskState::Blocked | TaskState::Running => {}
                    }
                }
                Err(ClientError::Status { status: 404, .. }) => {
                    // The worker no longer knows the task: it restarted.
                    return Err(QueryFailure::new(
                        REMOTE_TASK_ERROR,
                        format!("Task {} is gone from {} (the worker restarted)", self.task_id, worker.node_id),
                    ));
                }
                Err(error) => {
                    crate::runtime::sleep_ms(config.task_status_interval_ms).await;
                    let silent_ms = self.coordinator.now_ms().saturating_sub(last_contact_ms);
                    tracing::debug!(%error, task_id = %self.task_id, silent_ms, "task status poll failed");
                    if silent_ms > config.remote_task_max_error_duration_ms {
                        return Err(QueryFailure::new(
                            REMOTE_TASK_ERROR,
                            format!(
                                "Could not communicate with the remote task {} on {} for {}: {error}",
                                self.task_id,
                                worker.node_id,
                                crate::config::format_duration(silent_ms)
                            ),
                        ));
                    }
                }
            }
        }
    }

    /// Tells the manager what the task holds now. `Err` once that ended the query (a distributed
    /// memory limit): the driver stops at once rather than waiting for the cancel to reach it.
    fn report_memory(&self, bytes: u64) -> Result<(), QueryFailure> {
        let query_id = &self.request.query_id;
        self.coordinator.apply(Input::TaskMemory { query_id: query_id.clone(), task_index: self.request.task_index, bytes });
        let ended = self.coordinator.with_manager(|manager| manager.query(query_id).is_none_or(|query| query.is_done()));
        if ended {
            return Err(QueryFailure::new(REMOTE_TASK_ERROR, format!("Query {query_id} ended while task {} ran", self.task_id)));
        }
        Ok(())
    }

    /// Creates the task on the first candidate that accepts it (creation is idempotent by id).
    pub async fn create(&self) -> Result<WorkerView, QueryFailure> {
        let config = self.coordinator.config();
        let mut last_error = String::from("no candidate workers");
        for worker in &self.candidates {
            let url = format!("{}{}/{}", worker.uri, paths::TASK, self.task_id);
            // Creation is idempotent by task id, so it is safe to retry (the client's default bound).
            let request = Request::new(Method::POST, url, MessageKind::TaskCreate)
                .json(&self.request)
                .timeout_ms(config.request_timeout_ms);
            let created: Result<TaskStatus, _> = self.coordinator.context().client.send_json(request).await;
            match created {
                Ok(_) => return Ok(worker.clone()),
                Err(ClientError::Status { status: 400, body, .. }) => {
                    // The worker refused the task itself (e.g. it can never fit in its pool).
                    return Err(match serde_json::from_str::<TaskRejection>(&body) {
                        Ok(rejection) => QueryFailure::new(
                            errors::by_name(&rejection.error_name).unwrap_or(REMOTE_TASK_ERROR),
                            rejection.message,
                        ),
                        Err(_) => QueryFailure::new(REMOTE_TASK_ERROR, format!("{} refused task {}: {body}", worker.node_id, self.task_id)),
                    });
                }
                Err(ClientError::Status { status: 410, .. }) => {
                    // The query was cancelled while this create was in flight: never place it elsewhere.
                    return Err(QueryFailure::new(REMOTE_TASK_ERROR, format!("Task {} was cancelled", self.task_id)));
                }
                Err(error) => {
                    tracing::debug!(%error, task_id = %self.task_id, worker = %worker.node_id, "task creation failed");
                    last_error = error.to_string();
                }
            }
        }
        Err(QueryFailure::new(NO_NODES_AVAILABLE, format!("Could not create task {}: {last_error}", self.task_id)))
    }

    async fn fetch_results(&self, base: &str) -> Result<Vec<Vec<serde_json::Value>>, QueryFailure> {
        let config = self.coordinator.config();
        let client = &self.coordinator.context().client;
        let url = format!("{base}/results");
        let request = Request::new(Method::GET, &url, MessageKind::TaskResults).timeout_ms(config.request_timeout_ms).retries(3);
        let results: TaskResults = client
            .send_json(request)
            .await
            .map_err(|error| QueryFailure::new(REMOTE_TASK_ERROR, format!("Could not fetch results of {}: {error}", self.task_id)))?;
        // Release the task on the worker; it also expires there on its own if this is lost.
        let delete = Request::new(Method::DELETE, base, MessageKind::TaskCancel).timeout_ms(config.request_timeout_ms);
        let _ = client.send(delete).await;
        Ok(results.rows)
    }
}
