//! HTTP handlers of the Presto client protocol on a coordinator.
//!
//! `POST /v1/statement`, `GET|DELETE /v1/statement/{queued|executing}/{id}/{token}?slug=…`
//! (`/v1/query/{id}` and the cluster endpoints are in `query_api`). GETs long-poll up to `maxWait` (default 1 s, at most 10 s) for
//! something new. Every URI handed out is absolute and names this coordinator, so clients that
//! entered through a load balancer keep talking to the coordinator that owns their query.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, Query as UrlQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};

use super::manager::PagePath;
use super::query::PageError;
use super::Coordinator;
use crate::protocol::SessionContext;
use crate::runtime::http_server::OverTls;

const MAX_WAIT_MS_DEFAULT: u64 = 1_000;
const MAX_WAIT_MS_MAX: u64 = 10_000;

pub fn router(coordinator: Coordinator) -> Router {
    Router::new()
        .route("/v1/statement", post(post_statement))
        .route("/v1/statement/queued/{query_id}/{token}", get(get_queued).delete(delete_statement))
        .route("/v1/statement/executing/{query_id}/{token}", get(get_executing).delete(delete_statement))
        .with_state(coordinator)
}

fn text(status: StatusCode, message: impl Into<String>) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], message.into()).into_response()
}

/// Whether the request came over HTTPS (then the URIs handed out are HTTPS ones).
type Tls = Option<Extension<OverTls>>;

async fn post_statement(State(coordinator): State<Coordinator>, tls: Tls, headers: HeaderMap, body: Bytes) -> Response {
    let session = match SessionContext::from_headers(&headers) {
        Ok(session) => session,
        Err(message) => return text(StatusCode::BAD_REQUEST, message),
    };
    let Ok(sql) = String::from_utf8(body.to_vec()) else {
        return text(StatusCode::BAD_REQUEST, "SQL statement is not valid UTF-8");
    };
    if sql.trim().is_empty() {
        return text(StatusCode::BAD_REQUEST, "SQL statement is empty");
    }
    let page = coordinator.submit(session, sql, &coordinator.client_base_uri(tls.is_some()));
    Json(page).into_response()
}

/// `slug` must match; `maxWait` is a Presto duration. The error is the 400 message.
fn read_params(params: &BTreeMap<String, String>) -> Result<(String, u64), String> {
    let slug = params.get("slug").cloned().unwrap_or_default();
    let max_wait_ms = match params.get("maxWait") {
        None => MAX_WAIT_MS_DEFAULT,
        Some(text) => crate::config::parse_duration_ms(text).map_err(|reason| format!("maxWait: {reason}"))?.min(MAX_WAIT_MS_MAX),
    };
    Ok((slug, max_wait_ms))
}

fn page_error(error: PageError) -> Response {
    match error {
        PageError::Gone => text(StatusCode::GONE, "Token is no longer valid"),
        PageError::NotFound => text(StatusCode::NOT_FOUND, "Query not found"),
    }
}

async fn get_queued(
    State(coordinator): State<Coordinator>,
    tls: Tls,
    Path((query_id, token)): Path<(String, u64)>,
    UrlQuery(params): UrlQuery<BTreeMap<String, String>>,
) -> Response {
    serve_page(coordinator, query_id, token, params, PagePath::Queued, tls.is_some()).await
}

async fn get_executing(
    State(coordinator): State<Coordinator>,
    tls: Tls,
    Path((query_id, token)): Path<(String, u64)>,
    UrlQuery(params): UrlQuery<BTreeMap<String, String>>,
) -> Response {
    serve_page(coordinator, query_id, token, params, PagePath::Executing, tls.is_some()).await
}

async fn serve_page(
    coordinator: Coordinator,
    query_id: String,
    token: u64,
    params: BTreeMap<String, String>,
    path: PagePath,
    over_tls: bool,
) -> Response {
    let (slug, max_wait_ms) = match read_params(&params) {
        Ok(read) => read,
        Err(message) => return text(StatusCode::BAD_REQUEST, message),
    };
    let deadline_ms = coordinator.now_ms() + max_wait_ms;
    loop {
        let changed = match wait_handle(&coordinator, &query_id, &slug, path, deadline_ms) {
            Ok(Some(changed)) => changed,
            Ok(None) => break,
            Err(error) => return page_error(error),
        };
        // Arm the notification, then look again: a change in between is not missed.
        let notified = changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        match wait_handle(&coordinator, &query_id, &slug, path, deadline_ms) {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(error) => return page_error(error),
        }
        let remaining_ms = deadline_ms.saturating_sub(coordinator.now_ms());
        if crate::runtime::timeout_ms(remaining_ms, notified).await.is_none() {
            break;
        }
    }
    let now_ms = coordinator.now_ms();
    let base_uri = coordinator.client_base_uri(over_tls);
    let page = coordinator.with_manager(|manager| manager.page(now_ms, &query_id, &slug, path, token, &base_uri));
    match page {
        Ok(page) => Json(page).into_response(),
        Err(error) => page_error(error),
    }
}

/// `Ok(Some(notify))` while the client should keep waiting, `Ok(None)` when a page is due.
fn wait_handle(
    coordinator: &Coordinator,
    query_id: &str,
    slug: &str,
    path: PagePath,
    deadline_ms: u64,
) -> Result<Option<std::sync::Arc<tokio::sync::Notify>>, PageError> {
    let waiting = coordinator.with_manager(|manager| manager.page_wait(query_id, slug, path))?;
    Ok(waiting.filter(|_| coordinator.now_ms() < deadline_ms))
}

async fn delete_statement(
    State(coordinator): State<Coordinator>,
    Path((query_id, _token)): Path<(String, u64)>,
    UrlQuery(params): UrlQuery<BTreeMap<String, String>>,
) -> Response {
    let slug = params.get("slug").cloned().unwrap_or_default();
    let known = coordinator.with_manager(|manager| manager.query(&query_id).is_some_and(|query| query.slug == slug));
    if !known {
        return text(StatusCode::NOT_FOUND, "Query not found");
    }
    coordinator.cancel(&query_id);
    StatusCode::NO_CONTENT.into_response()
}
