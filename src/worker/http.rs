//! The worker's task API: `POST|GET|DELETE /v1/task/{id}`, `GET /v1/task/{id}/results` (a
//! synthetic task's rows as JSON) and `GET /v1/task/{id}/results/{buffer}/{token}` (page `token`
//! of a SQL task's output, as Arrow IPC; the answer says how many pages there are).
//!
//! Handlers only parse, hand the input to the [`TaskShell`] (which locks, applies it to the table
//! and carries out its effects), and turn the answer into a response; a new task's engine is
//! started here, after the table accepted it.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};

use super::executor::{self, Executor};
use super::shell::TaskShell;
use super::tasks::{CreateRefused, Created, ResultsRefused, TaskOutput, TASKS_MAX};
use crate::security::internal::{speaks_for, InternalCaller};
use crate::wire::{paths, TaskRequest, TaskResults, TaskStatus};

/// Longest a status request may be held.
const STATUS_MAX_WAIT_MS_MAX: u64 = 10_000;

#[derive(Clone)]
struct Api {
    tasks: TaskShell,
    executor: Arc<dyn Executor>,
}

pub fn router(tasks: TaskShell, executor: Arc<dyn Executor>) -> Router {
    Router::new()
        .route(&format!("{}/{{task_id}}", paths::TASK), get(get_task).post(create_task).delete(delete_task))
        .route(&format!("{}/{{task_id}}/results", paths::TASK), get(get_results))
        .route(&format!("{}/{{task_id}}/results/{{buffer}}/{{token}}", paths::TASK), get(get_page))
        .with_state(Api { tasks, executor })
}

async fn create_task(
    State(api): State<Api>,
    Path(task_id): Path<String>,
    caller: Option<Extension<InternalCaller>>,
    Json(request): Json<TaskRequest>,
) -> Response {
    // With a secret, a task is taken only from the coordinator it names (whose kills and
    // heartbeats then govern it), not from any node on behalf of another.
    if let Err(message) = speaks_for(caller.as_deref(), &request.coordinator_id) {
        return (StatusCode::FORBIDDEN, message).into_response();
    }
    match api.tasks.create(&task_id, &request) {
        Ok(Created::Existing(status)) => Json(status).into_response(),
        Ok(Created::New(status)) => {
            executor::start(api.executor.clone(), api.tasks.clone(), task_id, request);
            Json(status).into_response()
        }
        Err(CreateRefused::Cancelled) => (StatusCode::GONE, format!("task {task_id} was cancelled")).into_response(),
        Err(CreateRefused::Full) => (StatusCode::SERVICE_UNAVAILABLE, format!("worker holds {TASKS_MAX} tasks already")).into_response(),
        Err(CreateRefused::BadRequest(message)) => (StatusCode::BAD_REQUEST, message).into_response(),
        Err(CreateRefused::LocalMemoryLimit(rejection)) => (StatusCode::BAD_REQUEST, Json(rejection)).into_response(),
    }
}

/// What a long-polled status request already knows (`?state=S&memory=B`).
#[derive(Debug, Default, PartialEq, Eq)]
struct Known {
    state: Option<String>,
    memory_bytes: Option<u64>,
}

impl Known {
    /// Whether `status` is news to the caller — or final, which is always answered at once.
    fn answer_now(&self, status: &TaskStatus) -> bool {
        let unchanged = self.state.as_deref() == Some(status.state.name())
            && self.memory_bytes.is_none_or(|known| known == status.memory_bytes);
        !unchanged || status.state.is_done()
    }
}

/// Reads `maxWait` (capped at [`STATUS_MAX_WAIT_MS_MAX`]), `state` and `memory`; anything that
/// does not parse counts as absent.
fn read_params(params: &BTreeMap<String, String>) -> (u64, Known) {
    let max_wait_ms = params
        .get("maxWait")
        .and_then(|text| crate::config::parse_duration_ms(text).ok())
        .unwrap_or(0)
        .min(STATUS_MAX_WAIT_MS_MAX);
    let known = Known {
        state: params.get("state").cloned(),
        memory_bytes: params.get("memory").and_then(|text| text.parse::<u64>().ok()),
    };
    (max_wait_ms, known)
}

/// Task status. With `?state=S&maxWait=D` (what coordinators send) the answer waits up to `D`
/// while the task is still in state `S` (and, with `&memory=B`, still holds `B` bytes), like
/// Presto's long-polled task status: one request per change or per `maxWait` instead of one per
/// poll interval. Memory is part of it so that coordinators see a growing query's reservation.
/// Every look counts as a poll (it keeps the task from being abandoned).
async fn get_task(State(api): State<Api>, Path(task_id): Path<String>, Query(params): Query<BTreeMap<String, String>>) -> Response {
    let (max_wait_ms, known) = read_params(&params);
    let deadline_ms = api.tasks.now_ms() + max_wait_ms;
    let not_found = || (StatusCode::NOT_FOUND, "task not found").into_response();
    let Some(signals) = api.tasks.signals(&task_id) else { return not_found() };
    loop {
        // Arm the notification first, then look: a change in between is not missed.
        let notified = signals.changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let Some(status) = api.tasks.poll(&task_id) else { return not_found() };
        let remaining_ms = deadline_ms.saturating_sub(api.tasks.now_ms());
        if known.answer_now(&status) || remaining_ms == 0 {
            return Json(status).into_response();
        }
        let _ = crate::runtime::timeout_ms(remaining_ms, notified).await;
    }
}

async fn get_results(State(api): State<Api>, Path(task_id): Path<String>) -> Response {
    match api.tasks.results(&task_id) {
        Ok(TaskOutput::Rows(rows)) => Json(TaskResults { task_id, rows }).into_response(),
        Ok(TaskOutput::Pages(_)) => (StatusCode::CONFLICT, "a SQL task's output is read page by page").into_response(),
        Err(refused) => results_refused(refused),
    }
}

/// One page of a SQL task's output. There is one output buffer (`0`); `token` counts pages from 0.
async fn get_page(State(api): State<Api>, Path((task_id, buffer, token)): Path<(String, u32, usize)>) -> Response {
    if buffer != 0 {
        return (StatusCode::NOT_FOUND, format!("task {task_id} has no output buffer {buffer}")).into_response();
    }
    match api.tasks.results(&task_id) {
        Ok(TaskOutput::Pages(pages)) => match pages.get(token) {
            Some(page) => (
                [
                    (axum::http::header::CONTENT_TYPE, "application/vnd.apache.arrow.stream".to_string()),
                    (axum::http::HeaderName::from_static(paths::RESULTS_PAGE_COUNT_HEADER), pages.len().to_string()),
                ],
                page.clone(),
            )
                .into_response(),
            None => (StatusCode::NOT_FOUND, format!("task {task_id} has {} pages; there is no page {token}", pages.len())).into_response(),
        },
        Ok(TaskOutput::Rows(_)) => (StatusCode::CONFLICT, "a synthetic task's output is read at /results").into_response(),
        Err(refused) => results_refused(refused),
    }
}

fn results_refused(refused: ResultsRefused) -> Response {
    match refused {
        ResultsRefused::NotFinished => (StatusCode::CONFLICT, "task has not finished").into_response(),
        ResultsRefused::NotFound => (StatusCode::NOT_FOUND, "task not found").into_response(),
    }
}

async fn delete_task(State(api): State<Api>, Path(task_id): Path<String>) -> Response {
    api.tasks.cancel(&task_id);
    StatusCode::NO_CONTENT.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::TaskState;

    fn status(state: TaskState, memory_bytes: u64) -> TaskStatus {
        TaskStatus { task_id: "t".into(), worker_id: "w".into(), state, memory_bytes, error: None }
    }

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(key, value)| (key.to_string(), value.to_string())).collect()
    }

    #[test]
    fn a_long_poll_waits_only_while_nothing_it_knows_changed() {
        let (max_wait_ms, known) = read_params(&params(&[("state", "RUNNING"), ("memory", "100"), ("maxWait", "2s")]));
        assert_eq!(max_wait_ms, 2_000);
        assert!(!known.answer_now(&status(TaskState::Running, 100)));
        assert!(known.answer_now(&status(TaskState::Running, 150)), "memory grew");
        assert!(known.answer_now(&status(TaskState::Blocked, 100)), "state changed");
        let (_, state_only) = read_params(&params(&[("state", "FINISHED")]));
        assert!(state_only.answer_now(&status(TaskState::Finished, 0)), "a final state is answered at once");
        let (_, without_memory) = read_params(&params(&[("state", "BLOCKED")]));
        assert!(!without_memory.answer_now(&status(TaskState::Blocked, 7)), "memory is compared only when given");
    }

    #[test]
    fn a_plain_status_request_answers_at_once_and_waits_are_capped() {
        let (max_wait_ms, known) = read_params(&params(&[]));
        assert_eq!(max_wait_ms, 0);
        assert!(known.answer_now(&status(TaskState::Running, 0)));
        let (capped_ms, _) = read_params(&params(&[("maxWait", "1h"), ("memory", "x")]));
        assert_eq!(capped_ms, STATUS_MAX_WAIT_MS_MAX);
    }
}
