//! The HTTP side of metrics: the layer that times every request a node serves, and the
//! `GET /metrics` route that renders the node's registry.

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use std::sync::Arc;

use super::{Metrics, ScrapeLevels};

/// The Prometheus text exposition format, version 0.0.4.
pub const CONTENT_TYPE_TEXT_0_0_4: &str = "text/plain; version=0.0.4";

/// Route label for requests that matched no route (unknown paths): one series, not one per path.
const UNMATCHED_ROUTE: &str = "unmatched";

/// Wraps `router` (all of a node's routes) so that every request is observed in
/// `fireball_http_request_duration_seconds`. Apply it last, to the router the server serves, so
/// routes merged in anywhere are measured too.
pub fn measure_requests(router: Router, metrics: &Metrics) -> Router {
    router.layer(axum::middleware::from_fn_with_state(metrics.clone(), observe_request))
}

async fn observe_request(State(metrics): State<Metrics>, request: Request, next: Next) -> Response {
    let started_ms = metrics.now_ms();
    // The matched pattern (`/v1/query/{query_id}`), never the raw path: bounded label values.
    let route = request.extensions().get::<MatchedPath>().map_or(UNMATCHED_ROUTE, |path| path.as_str()).to_string();
    let method = method_label(request.method());
    let response = next.run(request).await;
    metrics.observe_http(method, &route, response.status().as_u16(), metrics.now_ms().saturating_sub(started_ms));
    response
}

/// Standard methods by name; anything else (extension methods are arbitrary tokens) as `other`.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

/// `GET /metrics`. `levels` is called at scrape time, for the gauges derived from the role's
/// state (queue lengths, the RM's cluster counts). It is a closure built where the node is
/// started, so that metrics never import a role (the role imports metrics to count its events)
/// and `Metrics` itself never holds a role: no reference cycle between a role and its metrics.
pub fn router(metrics: Metrics, levels: impl Fn() -> ScrapeLevels + Send + Sync + 'static) -> Router {
    let levels = Arc::new(levels);
    Router::new().route(
        "/metrics",
        get(move || {
            let text = metrics.render(&levels());
            async move { ([(CONTENT_TYPE, CONTENT_TYPE_TEXT_0_0_4)], text).into_response() }
        }),
    )
}

/// Fetches `{node_uri}/metrics` (tests, tools): the text of a 200 answer, or why not.
pub async fn scrape(client: &crate::runtime::http_client::HttpClient, node_uri: &str, timeout_ms: u64) -> Result<String, String> {
    use crate::runtime::http_client::Request;
    use crate::runtime::sim_hooks::MessageKind;
    let url = format!("{node_uri}/metrics");
    let answer = client
        .send(Request::new(axum::http::Method::GET, url.clone(), MessageKind::Other).timeout_ms(timeout_ms))
        .await
        .map_err(|error| format!("{url}: {error}"))?;
    if answer.status != 200 {
        return Err(format!("{url}: status {}", answer.status));
    }
    String::from_utf8(answer.body.to_vec()).map_err(|_| format!("{url}: not UTF-8"))
}

// Not under madsim: these tests drive the router directly on real tokio.
#[cfg(all(test, not(madsim)))]
mod tests {
    use super::*;
    use crate::config::Role;
    use crate::runtime::Clock;
    use crate::wire::GroupCounts;
    use axum::body::Body;
    use http_body_util::BodyExt;
    use std::sync::atomic::{AtomicU32, Ordering};
    use tower::ServiceExt;

    async fn scrape_router(router: &Router) -> (String, String) {
        let request = axum::http::Request::builder().uri("/metrics").body(Body::empty()).expect("request");
        let response = router.clone().oneshot(request).await.expect("infallible");
        let content_type = response.headers().get(CONTENT_TYPE).and_then(|value| value.to_str().ok()).unwrap_or("").to_string();
        let body = response.into_body().collect().await.expect("body").to_bytes();
        (content_type, String::from_utf8_lossy(&body).into_owned())
    }

    /// The levels are the role's at the moment of the scrape, read through the closure `node`
    /// hands the router (the router holds no role).
    #[tokio::test]
    async fn every_scrape_reads_the_levels_anew() {
        let running = Arc::new(AtomicU32::new(3));
        let source = running.clone();
        let levels = move || ScrapeLevels {
            local_groups: vec![GroupCounts { group: "global".into(), running: source.load(Ordering::SeqCst), ..Default::default() }],
            cluster: None,
        };
        let router = router(Metrics::new("c1", Role::Coordinator, Clock::new()), levels);

        let (content_type, first) = scrape_router(&router).await;
        assert_eq!(content_type, CONTENT_TYPE_TEXT_0_0_4);
        assert!(first.contains("fireball_resource_group_running_queries{group=\"global\"} 3\n"), "{first}");
        running.store(7, Ordering::SeqCst);
        let (_, second) = scrape_router(&router).await;
        assert!(second.contains("fireball_resource_group_running_queries{group=\"global\"} 7\n"), "{second}");
    }
}
