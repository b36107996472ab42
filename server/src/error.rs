//! The one error type of the server and the extractors that turn axum's rejections into it.
//!
//! Every error a client can cause leaves as JSON `{"error": {"code", "message"}}` with the
//! status that names it; database and internal failures are logged and reported without
//! leaking details.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

pub type ApiResult<T> = Result<T, ApiError>;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{message}")]
    Conflict {
        message: String,
        conflicting_booking_id: Option<i64>,
    },
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Unprocessable(String),
    /// What was asked for was removed (the event log's retention): `oldest_seq` is the first
    /// event still kept.
    #[error("{message}")]
    Gone { message: String, oldest_seq: i64 },
    /// A per-user rate was passed: retry after `retry_after`.
    #[error("{message}")]
    TooManyRequests {
        message: String,
        retry_after: std::time::Duration,
    },
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Not answered within `--request-timeout`.
    #[error("{0}")]
    Timeout(String),
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Gone { .. } => StatusCode::GONE,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) | Self::Timeout(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Database(e) if is_unavailable(e) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Database(_) | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::Conflict { .. } => "conflict",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::Unprocessable(_) => "unprocessable",
            Self::Gone { .. } => "gone",
            Self::TooManyRequests { .. } => "too_many_requests",
            Self::Unavailable(_) => "unavailable",
            Self::Timeout(_) => "timeout",
            Self::Database(e) if is_unavailable(e) => "unavailable",
            Self::Database(_) | Self::Internal(_) => "internal",
        }
    }
}

/// SQLite's primary result codes for a file another connection holds.
const SQLITE_BUSY: i32 = 5;
const SQLITE_LOCKED: i32 = 6;

/// Pool and connection failures mean the database is away, not that the request was wrong:
/// besides a pool or socket failure, PostgreSQL's SQLSTATE classes 08 (connection exception)
/// and 57P (shutting down, restarting, not accepting connections yet), and 53300 (too many
/// connections), as seen while it restarts; and SQLite's BUSY and LOCKED (another process
/// held the file past the busy timeout: try again), whatever their extended code.
pub fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db)
            if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() =>
        {
            // The extended result code; its low byte is the primary one.
            db.code()
                .and_then(|c| c.parse::<i32>().ok())
                .is_some_and(|c| matches!(c & 0xff, SQLITE_BUSY | SQLITE_LOCKED))
        }
        sqlx::Error::Database(db) => db
            .code()
            // 55P03: the cluster's write turn was not free within --db-acquire-timeout.
            .is_some_and(|c| {
                c.starts_with("08") || c.starts_with("57P") || c == "53300" || c == "55P03"
            }),
        _ => false,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            Self::Database(e) => {
                tracing::error!(error = %e, "database error");
                if is_unavailable(e) {
                    "the database is unavailable, retry later".to_string()
                } else {
                    "internal database error".to_string()
                }
            }
            Self::Internal(m) => {
                tracing::error!(error = %m, "internal error");
                "internal error".to_string()
            }
            other => other.to_string(),
        };
        let mut error = json!({ "code": self.code(), "message": message });
        if let Self::Conflict {
            conflicting_booking_id: Some(id),
            ..
        } = &self
        {
            error["conflictingBookingId"] = json!(id);
        }
        if let Self::Gone { oldest_seq, .. } = &self {
            error["oldestSeq"] = json!(oldest_seq);
        }
        if let Self::TooManyRequests { retry_after, .. } = &self {
            let ms = retry_after.as_millis().max(1) as u64;
            error["retryAfterMs"] = json!(ms);
            // Whole seconds, rounded up: `Retry-After: 0` would invite an immediate retry.
            let secs = ms.div_ceil(1000).to_string();
            let mut response = (status, axum::Json(json!({ "error": error }))).into_response();
            if let Ok(value) = axum::http::HeaderValue::from_str(&secs) {
                response
                    .headers_mut()
                    .insert(axum::http::header::RETRY_AFTER, value);
            }
            return response;
        }
        (status, axum::Json(json!({ "error": error }))).into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let text = rejection.body_text();
        match rejection {
            JsonRejection::JsonDataError(_) => Self::Unprocessable(text),
            JsonRejection::JsonSyntaxError(_) => Self::BadRequest(text),
            JsonRejection::MissingJsonContentType(_) => Self::UnsupportedMediaType(
                "expected a request with `Content-Type: application/json`".into(),
            ),
            JsonRejection::BytesRejection(_)
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Self::PayloadTooLarge("request body is too large".into())
            }
            _ => Self::BadRequest(text),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::BadRequest(rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::BadRequest(rejection.body_text())
    }
}

/// `Json` whose rejections are [`ApiError`]s.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// `Path` whose rejections are [`ApiError`]s.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// `Query` whose rejections are [`ApiError`]s.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);
