//! The web app (`web/`, React), built by Vite into `web/dist` and embedded in the binary by
//! `build.rs`: `/` is its page, `/assets/...` its hashed scripts and styles, and any other
//! file of `dist` is served at its own path. Everything else stays the API's.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::app::AppState;
use crate::error::ApiError;

include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/assets/{*file}", get(asset))
}

/// The embedded file at `path` (`/index.html`, `/assets/index-abc.js`).
pub fn file(path: &str) -> Option<&'static [u8]> {
    ASSETS.iter().find(|(p, _)| *p == path).map(|(_, b)| *b)
}

/// True when this binary carries the web app.
pub fn is_built() -> bool {
    file("/index.html").is_some()
}

async fn index() -> Response {
    serve("/index.html").unwrap_or_else(|| {
        ApiError::NotFound(
            "the web app is not part of this build: run `npm ci --prefix web && npm run build \
             --prefix web`, then build the server again"
                .into(),
        )
        .into_response()
    })
}

async fn asset(Path(file): Path<String>) -> Response {
    let path = format!("/assets/{file}");
    serve(&path).unwrap_or_else(|| not_found(&path))
}

/// For the router's fallback: a GET of another file of the build (`/favicon.svg`).
pub fn top_level_file(uri: &Uri) -> Option<Response> {
    let path = uri.path();
    (path != "/" && !path.starts_with("/api/")).then(|| serve(path))?
}

fn not_found(path: &str) -> Response {
    ApiError::NotFound(format!("no file {path} in the web app")).into_response()
}

fn serve(path: &str) -> Option<Response> {
    let bytes = file(path)?;
    // Vite puts a content hash in every name under /assets: those never change.
    let cache = if path.starts_with("/assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    Some(
        (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(content_type(path)),
                ),
                (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
                (
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                ),
            ],
            bytes,
        )
            .into_response(),
    )
}

fn content_type(path: &str) -> &'static str {
    let ext = path.rsplit_once('.').map_or("", |(_, e)| e);
    match ext {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_follow_extensions() {
        assert_eq!(content_type("/index.html"), "text/html; charset=utf-8");
        assert_eq!(
            content_type("/assets/index-3f2a.js"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type("/favicon.svg"), "image/svg+xml");
        assert_eq!(content_type("/LICENSE"), "application/octet-stream");
    }

    #[test]
    fn embedded_paths_are_absolute_and_unique() {
        let mut paths: Vec<_> = ASSETS.iter().map(|(p, _)| *p).collect();
        assert!(
            paths
                .iter()
                .all(|p| p.starts_with('/') && !p.contains('\\'))
        );
        paths.sort();
        paths.dedup();
        assert_eq!(paths.len(), ASSETS.len());
    }
}
