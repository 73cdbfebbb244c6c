//! The task API end to end on real tokio (not under madsim): handlers, driver, executor and the
//! synthetic engine, with the router driven directly (no sockets).

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use super::shell::TaskShell;
use super::synthetic::SyntheticExecutor;
use super::tasks::TaskTable;
use crate::memory::pool::MemoryPool;
use crate::runtime::Clock;
use crate::wire::{TaskRejection, TaskRequest, TaskResults, TaskState, TaskStatus};

fn router(pool_bytes: u64, query_limit_bytes: u64) -> axum::Router {
    let table = TaskTable::new("w1", MemoryPool::new(pool_bytes, query_limit_bytes), 60_000, false);
    super::http::router(TaskShell::new("w1", Clock::new(), table), Arc::new(SyntheticExecutor))
}

fn request(query_id: &str, run_time_ms: u64, memory_bytes: u64, peak_memory_bytes: u64) -> TaskRequest {
    TaskRequest {
        query_id: query_id.to_string(),
        coordinator_id: "c1".into(),
        task_index: 0,
        run_time_ms,
        memory_bytes,
        peak_memory_bytes,
        first_row: 0,
        row_count: 3,
        fragment: None,
    }
}

async fn call(router: &axum::Router, method: Method, uri: &str, body: Option<&TaskRequest>) -> (StatusCode, String) {
    let body = body.map_or_else(Body::empty, |body| Body::from(serde_json::to_vec(body).expect("json")));
    let request = Request::builder().method(method).uri(uri).header("content-type", "application/json").body(body).expect("request");
    let response = router.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

fn parse<T: serde::de::DeserializeOwned>(body: &str) -> T {
    serde_json::from_str(body).unwrap_or_else(|error| panic!("{error}: {body}"))
}

#[tokio::test]
async fn a_growing_task_runs_to_its_rows_and_a_retried_create_sees_it() {
    let router = router(1_000, 1_000);
    let (code, body) = call(&router, Method::POST, "/v1/task/t1", Some(&request("q1", 50, 10, 100))).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let mut status: TaskStatus = parse(&body);
    assert_eq!((status.state, status.memory_bytes), (TaskState::Running, 10));
    let mut peak_bytes = status.memory_bytes;
    for _ in 0..100 {
        if status.state.is_done() {
            break;
        }
        let uri = format!("/v1/task/t1?state={}&memory={}&maxWait=2s", status.state.name(), status.memory_bytes);
        status = parse(&call(&router, Method::GET, &uri, None).await.1);
        peak_bytes = peak_bytes.max(status.memory_bytes);
    }
    assert_eq!(status.state, TaskState::Finished);
    assert_eq!(status.memory_bytes, 0, "a finished task holds nothing");
    assert!(peak_bytes > 10, "the long poll saw the reservation grow (peak seen: {peak_bytes})");
    let (code, body) = call(&router, Method::GET, "/v1/task/t1/results", None).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(parse::<TaskResults>(&body).rows.len(), 3);
    let (code, body) = call(&router, Method::POST, "/v1/task/t1", Some(&request("q1", 50, 10, 100))).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(parse::<TaskStatus>(&body).state, TaskState::Finished, "idempotent: no second run");
}

#[tokio::test]
async fn a_long_poll_answers_as_soon_as_a_blocked_task_gets_memory() {
    let router = router(100, 100);
    call(&router, Method::POST, "/v1/task/big", Some(&request("q1", 60_000, 100, 0))).await;
    let (_, body) = call(&router, Method::POST, "/v1/task/small", Some(&request("q2", 60_000, 50, 0))).await;
    assert_eq!(parse::<TaskStatus>(&body).state, TaskState::Blocked);
    let clock = Clock::new();
    let started_ms = clock.now_ms();
    let poll = {
        let router = router.clone();
        tokio::spawn(async move { call(&router, Method::GET, "/v1/task/small?state=BLOCKED&memory=0&maxWait=10s", None).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let (code, _) = call(&router, Method::DELETE, "/v1/task/big", None).await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    let (_, body) = poll.await.expect("poll task");
    let status: TaskStatus = parse(&body);
    assert_eq!((status.state, status.memory_bytes), (TaskState::Running, 50));
    let waited_ms = clock.now_ms() - started_ms;
    assert!(waited_ms < 5_000, "answered on the change, not at maxWait (after {waited_ms} ms)");
    let (code, body) = call(&router, Method::GET, "/v1/task/small/results", None).await;
    assert_eq!((code, body.as_str()), (StatusCode::CONFLICT, "task has not finished"));
}

#[tokio::test]
async fn refusals_keep_their_codes_and_messages() {
    let router = router(1 << 30, 1 << 20);
    call(&router, Method::DELETE, "/v1/task/gone", None).await;
    let (code, body) = call(&router, Method::POST, "/v1/task/gone", Some(&request("q", 10, 1, 0))).await;
    assert_eq!((code, body.as_str()), (StatusCode::GONE, "task gone was cancelled"));
    let (code, body) = call(&router, Method::POST, "/v1/task/bad", Some(&request("q", 10, 10, 5))).await;
    assert_eq!((code, body.as_str()), (StatusCode::BAD_REQUEST, "peak_memory_bytes must be at least memory_bytes (or 0 for no growth)"));
    let (code, body) = call(&router, Method::POST, "/v1/task/huge", Some(&request("q", 10, 2 << 20, 0))).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_eq!(parse::<TaskRejection>(&body).error_name, "EXCEEDED_LOCAL_MEMORY_LIMIT");
    let (code, body) = call(&router, Method::GET, "/v1/task/nope?state=RUNNING&maxWait=1s", None).await;
    assert_eq!((code, body.as_str()), (StatusCode::NOT_FOUND, "task not found"));
    let (code, _) = call(&router, Method::GET, "/v1/task/nope/results", None).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
}
