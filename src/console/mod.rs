//! The web console at `/ui/`, served by coordinators and resource managers.
//!
//! Plain HTML, vanilla JavaScript and CSS, compiled into the binary with `include_bytes!`: a
//! console must work on an air-gapped cluster, so nothing is fetched from the internet and there
//! is no build step. The pages only call same-origin relative endpoints (`/v1/cluster`,
//! `/v1/query`, …), so the console served by any coordinator shows the whole cluster, including
//! queries another coordinator runs (the coordinator proxies those to an RM).

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

/// One embedded file: its name under `/ui/assets/`, its content type and its bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const SVG: &str = "image/svg+xml";

const INDEX_HTML: &[u8] = include_bytes!("assets/index.html");
const QUERY_HTML: &[u8] = include_bytes!("assets/query.html");

/// Everything under `/ui/assets/`. A fixed list, not a directory lookup: a request can only ever
/// name one of these, so no path from a client reaches the file system.
const ASSETS: &[Asset] = &[
    Asset { name: "console.css", content_type: CSS, bytes: include_bytes!("assets/console.css") },
    Asset { name: "common.js", content_type: JS, bytes: include_bytes!("assets/common.js") },
    Asset { name: "overview.js", content_type: JS, bytes: include_bytes!("assets/overview.js") },
    Asset { name: "query.js", content_type: JS, bytes: include_bytes!("assets/query.js") },
    Asset { name: "favicon.svg", content_type: SVG, bytes: include_bytes!("assets/favicon.svg") },
];

/// `/` and `/ui` redirect to `/ui/`; `/ui/` is the cluster overview, `/ui/query.html?{queryId}` a
/// query's detail page (Presto's `infoUri` form); `/ui/assets/{file}` the embedded assets.
pub fn router() -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(|| async { page(HTML, INDEX_HTML) }))
        .route("/ui/index.html", get(|| async { page(HTML, INDEX_HTML) }))
        .route("/ui/query.html", get(|| async { page(HTML, QUERY_HTML) }))
        .route("/ui/assets/{file}", get(asset))
}

async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|asset| asset.name == file) {
        Some(asset) => page(asset.content_type, asset.bytes),
        None => (StatusCode::NOT_FOUND, format!("no console asset named {file:?}")).into_response(),
    }
}

/// `no-cache`: browsers revalidate, so a console never runs stale JavaScript against a newer
/// server after an upgrade.
fn page(content_type: &'static str, bytes: &'static [u8]) -> Response {
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    response
}

// Not under madsim: these tests drive the router directly on real tokio.
#[cfg(all(test, not(madsim)))]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn get_path(path: &str) -> (StatusCode, axum::http::HeaderMap, String) {
        let request = Request::builder().uri(path).body(Body::empty()).expect("request");
        let response = router().oneshot(request).await.expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.expect("body").to_bytes();
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    }

    fn header<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> &'a str {
        headers.get(name).and_then(|value| value.to_str().ok()).unwrap_or("")
    }

    #[tokio::test]
    async fn root_and_ui_without_slash_redirect_to_the_console() {
        for path in ["/", "/ui"] {
            let (status, headers, _) = get_path(path).await;
            assert!(status.is_redirection(), "{path}: {status}");
            assert_eq!(header(&headers, "location"), "/ui/", "{path}");
        }
    }

    #[tokio::test]
    async fn pages_are_html_and_not_cached() {
        for (path, marker) in [("/ui/", "overview.js"), ("/ui/index.html", "overview.js"), ("/ui/query.html", "query.js")] {
            let (status, headers, body) = get_path(path).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            assert_eq!(header(&headers, "content-type"), HTML, "{path}");
            assert_eq!(header(&headers, "cache-control"), "no-cache", "{path}");
            assert!(body.contains(marker), "{path} does not load {marker}");
        }
        // Presto's infoUri form: the query id is the whole query string.
        let (status, _, _) = get_path("/ui/query.html?20240101_000000_00001_abcde").await;
        assert_eq!(status, StatusCode::OK);
    }

    #[tokio::test]
    async fn every_asset_is_served_with_its_content_type() {
        for asset in ASSETS {
            let (status, headers, body) = get_path(&format!("/ui/assets/{}", asset.name)).await;
            assert_eq!(status, StatusCode::OK, "{}", asset.name);
            assert_eq!(header(&headers, "content-type"), asset.content_type, "{}", asset.name);
            assert_eq!(header(&headers, "cache-control"), "no-cache", "{}", asset.name);
            assert!(!body.is_empty(), "{} is empty", asset.name);
        }
    }

    #[tokio::test]
    async fn unknown_assets_and_traversal_are_404() {
        for path in ["/ui/assets/nope.js", "/ui/assets/..%2Fmod.rs", "/ui/assets/", "/ui/nope.html"] {
            let (status, _, _) = get_path(path).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        }
    }

    /// Every asset a page references exists, and no page or script reaches outside the node
    /// (no CDN, no external fonts): the console must work without internet access.
    #[test]
    fn pages_reference_only_embedded_same_origin_assets() {
        let pages = [("index.html", INDEX_HTML), ("query.html", QUERY_HTML)];
        for (name, bytes) in pages {
            let html = String::from_utf8_lossy(bytes);
            for reference in html.split("assets/").skip(1) {
                let file: String = reference.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-').collect();
                assert!(ASSETS.iter().any(|asset| asset.name == file), "{name} references missing asset {file:?}");
            }
        }
        let all = pages.iter().map(|(name, bytes)| (*name, *bytes)).chain(ASSETS.iter().map(|asset| (asset.name, asset.bytes)));
        for (name, bytes) in all {
            let text = String::from_utf8_lossy(bytes);
            for forbidden in ["http://", "https://", "//cdn", "@import"] {
                // The SVG namespace URI is an identifier, not a fetch.
                let text = text.replace("http://www.w3.org/2000/svg", "");
                assert!(!text.contains(forbidden), "{name} contains {forbidden:?}");
            }
        }
    }

    /// Text from the server must never be parsed as HTML.
    #[test]
    fn scripts_do_not_use_inner_html() {
        for asset in ASSETS.iter().filter(|asset| asset.content_type == JS) {
            let text = String::from_utf8_lossy(asset.bytes);
            for forbidden in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("] {
                assert!(!text.contains(forbidden), "{} uses {forbidden}", asset.name);
            }
        }
    }
}
