//! One task of a query on the workers, from its creation to its output, in attempts.
//!
//! A task's id is `query.stage.partition.attempt` (Trino's form). The driver tries its candidate
//! workers in order, and the n-th candidate gets attempt n. A create whose answer was lost may
//! still have started the task there, so before the next candidate is tried that attempt is
//! cancelled on its worker; a worker refuses a create (and has no output) for an attempt it
//! cancelled. The driver follows and reads only the attempt whose create it saw accepted, so two
//! attempts of one task never both feed a query — `TaskOutputConsumed` lets the simulator's
//! oracle check exactly that. (With one id for every attempt, a coordinator partitioned just as
//! it created a task ran the task twice, once on each of two workers.)

use axum::http::Method;

use super::manager::Input;
use super::Coordinator;
use crate::protocol::errors::{self, NO_NODES_AVAILABLE, REMOTE_TASK_ERROR};
use crate::protocol::QueryFailure;
use crate::runtime::http_client::{ClientError, Request};
use crate::runtime::sim_hooks::{self, Event, MessageKind};
use crate::wire::{paths, TaskRejection, TaskRequest, TaskResults, TaskState, TaskStatus, WorkerView};

pub(super) struct TaskDriver {
    pub coordinator: Coordinator,
    /// `query.stage.partition`; an attempt's id appends `.attempt`.
    pub task: String,
    pub request: TaskRequest,
    /// Where attempt n goes: `candidates[n]`.
    pub candidates: Vec<WorkerView>,
}

/// The attempt the driver follows: created on `worker` under `task_id`.
pub(super) struct RemoteTask {
    pub worker: WorkerView,
    pub task_id: String,
}

impl TaskDriver {
    pub fn attempt_id(&self, attempt: usize) -> String {
        format!("{}.{attempt}", self.task)
    }

    /// Every attempt this driver may have created, with its worker (for cancelling them all).
    pub fn attempts(&self) -> Vec<(WorkerView, String)> {
        self.candidates.iter().enumerate().map(|(attempt, worker)| (worker.clone(), self.attempt_id(attempt))).collect()
    }

    /// A synthetic task: created, followed to its end, its rows fetched, then released.
    pub async fn run_to_rows(self) -> Result<Vec<Vec<serde_json::Value>>, QueryFailure> {
        let task = self.create().await?;
        let base = self.follow(&task).await?;
        self.fetch_rows(&task, &base).await
    }

    /// Creates the task on the first candidate that accepts it. Retrying one attempt is safe
    /// (creation is idempotent by id); moving on to the next candidate cancels the attempt left
    /// behind.
    pub async fn create(&self) -> Result<RemoteTask, QueryFailure> {
        let config = self.coordinator.config();
        let mut last_error = String::from("no candidate workers");
        for (attempt, worker) in self.candidates.iter().enumerate() {
            let task_id = self.attempt_id(attempt);
            let url = format!("{}{}/{task_id}", worker.uri, paths::TASK);
            let request = Request::new(Method::POST, url, MessageKind::TaskCreate)
                .json(&self.request)
                .timeout_ms(config.request_timeout_ms);
            let created: Result<TaskStatus, _> = self.coordinator.context().client.send_json(request).await;
            match created {
                Ok(_) => return Ok(RemoteTask { worker: worker.clone(), task_id }),
                Err(ClientError::Status { status: 400, body, .. }) => {
                    // The worker refused the task itself (e.g. it can never fit in its pool).
                    return Err(match serde_json::from_str::<TaskRejection>(&body) {
                        Ok(rejection) => QueryFailure::new(
                            errors::by_name(&rejection.error_name).unwrap_or(REMOTE_TASK_ERROR),
                            rejection.message,
                        ),
                        Err(_) => QueryFailure::new(REMOTE_TASK_ERROR, format!("{} refused task {task_id}: {body}", worker.node_id)),
                    });
                }
                Err(ClientError::Status { status: 410, .. }) => {
                    // The query was cancelled while this create was in flight: never place it elsewhere.
                    return Err(QueryFailure::new(REMOTE_TASK_ERROR, format!("Task {task_id} was cancelled")));
                }
                Err(error) => {
                    tracing::debug!(%error, %task_id, worker = %worker.node_id, "task creation failed; cancelling the attempt");
                    last_error = error.to_string();
                    cancel_attempts(&self.coordinator, vec![(worker.clone(), task_id)]);
                }
            }
        }
        Err(QueryFailure::new(NO_NODES_AVAILABLE, format!("Could not create task {}: {last_error}", self.task)))
    }

    /// Follows the created attempt's status until it finished: the attempt's URL then.
    pub async fn follow(&self, task: &RemoteTask) -> Result<String, QueryFailure> {
        let (worker, task_id) = (&task.worker, &task.task_id);
        let base = format!("{}{}/{task_id}", worker.uri, paths::TASK);
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
                        self.report_memory(task_id, status.memory_bytes)?;
                    }
                    match status.state {
                        TaskState::Finished => return Ok(base),
                        TaskState::Failed => {
                            let error = status.error.unwrap_or_else(|| TaskRejection {
                                error_name: REMOTE_TASK_ERROR.name.to_string(),
                                message: format!("Task {task_id} failed on {}", worker.node_id),
                            });
                            let code = errors::by_name(&error.error_name).unwrap_or(REMOTE_TASK_ERROR);
                            return Err(QueryFailure::new(code, error.message));
                        }
                        TaskState::Canceled | TaskState::Abandoned => {
                            return Err(QueryFailure::new(
                                REMOTE_TASK_ERROR,
                                format!("Task {task_id} was {:?} on {}", status.state, worker.node_id),
                            ))
                        }
                        TaskState::Blocked | TaskState::Running => {}
                    }
                }
                Err(ClientError::Status { status: 404, .. }) => {
                    // The worker no longer knows the task: it restarted.
                    return Err(QueryFailure::new(
                        REMOTE_TASK_ERROR,
                        format!("Task {task_id} is gone from {} (the worker restarted)", worker.node_id),
                    ));
                }
                Err(error) => {
                    crate::runtime::sleep_ms(config.task_status_interval_ms).await;
                    let silent_ms = self.coordinator.now_ms().saturating_sub(last_contact_ms);
                    tracing::debug!(%error, %task_id, silent_ms, "task status poll failed");
                    if silent_ms > config.remote_task_max_error_duration_ms {
                        return Err(QueryFailure::new(
                            REMOTE_TASK_ERROR,
                            format!(
                                "Could not communicate with the remote task {task_id} on {} for {}: {error}",
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
    fn report_memory(&self, task_id: &str, bytes: u64) -> Result<(), QueryFailure> {
        let query_id = &self.request.query_id;
        self.coordinator.apply(Input::TaskMemory { query_id: query_id.clone(), task_index: self.request.task_index, bytes });
        let ended = self.coordinator.with_manager(|manager| manager.query(query_id).is_none_or(|query| query.is_done()));
        if ended {
            return Err(QueryFailure::new(REMOTE_TASK_ERROR, format!("Query {query_id} ended while task {task_id} ran")));
        }
        Ok(())
    }

    /// Called once output of `task` is about to reach the query (the oracle's record of it).
    pub fn record_consumed(&self, task: &RemoteTask) {
        sim_hooks::record(|| Event::TaskOutputConsumed { query_id: self.request.query_id.clone(), task_id: task.task_id.clone() });
    }

    async fn fetch_rows(&self, task: &RemoteTask, base: &str) -> Result<Vec<Vec<serde_json::Value>>, QueryFailure> {
        let config = self.coordinator.config();
        let client = &self.coordinator.context().client;
        let url = format!("{base}/results");
        let request = Request::new(Method::GET, &url, MessageKind::TaskResults).timeout_ms(config.request_timeout_ms).retries(3);
        let results: TaskResults = client.send_json(request).await.map_err(|error| {
            QueryFailure::new(REMOTE_TASK_ERROR, format!("Could not fetch results of {}: {error}", task.task_id))
        })?;
        self.record_consumed(task);
        // Release the task on the worker; it also expires there on its own if this is lost.
        let delete = Request::new(Method::DELETE, base, MessageKind::TaskCancel).timeout_ms(config.request_timeout_ms);
        let _ = client.send(delete).await;
        Ok(results.rows)
    }
}

/// Cancels these attempts on their workers, in the background (DELETE of an unknown task is
/// harmless, so every attempt a driver may have created can be named). An attempt is usually
/// left behind because its worker could not be reached, so each DELETE is retried until the
/// worker answers, for at most `query.remote-task.max-error-duration`; after that the worker
/// abandons the attempt on its own once nobody polls it (`task.client.timeout`).
pub(super) fn cancel_attempts(coordinator: &Coordinator, attempts: Vec<(WorkerView, String)>) {
    let config = coordinator.config();
    let (timeout_ms, retry_ms, give_up_after_ms) =
        (config.request_timeout_ms, config.task_status_interval_ms.max(1), config.remote_task_max_error_duration_ms);
    for (worker, task_id) in attempts {
        let coordinator = coordinator.clone();
        crate::runtime::spawn(tracing::Instrument::in_current_span(async move {
            let deadline_ms = coordinator.now_ms().saturating_add(give_up_after_ms);
            let url = format!("{}{}/{task_id}", worker.uri, paths::TASK);
            loop {
                let request = Request::new(Method::DELETE, url.clone(), MessageKind::TaskCancel).timeout_ms(timeout_ms).retries(0);
                match coordinator.context().client.send(request).await {
                    Ok(_) => return,
                    Err(error) if coordinator.now_ms() >= deadline_ms => {
                        tracing::debug!(%error, %task_id, worker = %worker.node_id, "giving up cancelling the attempt");
                        return;
                    }
                    Err(_) => crate::runtime::sleep_ms(retry_ms).await,
                }
            }
        }));
    }
}
