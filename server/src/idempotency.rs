//! `Idempotency-Key` on POST: a retry with the same key and body gets the first response; the
//! same key with another request is refused with 422. Keys are per user and stored in the
//! write transaction of the change they guard, so a key and its change commit together.

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde_json::Value;
use sqlx::AnyConnection;

use crate::db::{Backend, Db, WriteTx, now_micros};
use crate::error::ApiError;

pub const HEADER: &str = "idempotency-key";
pub const MAX_KEY_LEN: usize = 200;

/// The request's `Idempotency-Key`, if it sent one.
#[derive(Debug, Clone)]
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(HEADER) else {
            return Ok(Self(None));
        };
        let key = value
            .to_str()
            .map_err(|_| ApiError::BadRequest("Idempotency-Key must be visible ASCII".into()))?
            .trim();
        if key.is_empty() || key.len() > MAX_KEY_LEN {
            return Err(ApiError::BadRequest(format!(
                "Idempotency-Key must be 1 to {MAX_KEY_LEN} characters"
            )));
        }
        Ok(Self(Some(key.to_string())))
    }
}

/// A request as compared between retries: method, path and body.
pub fn fingerprint(method_and_path: &str, body: &impl serde::Serialize) -> String {
    let body = serde_json::to_string(body).expect("request bodies serialize");
    format!("{method_and_path} {body}")
}

/// Either the stored response of an earlier request with the same key, or a fresh write.
pub enum Begun {
    /// The first response: status, body, and the `seq` of the event it logged, if any.
    Replayed(StatusCode, Value, Option<i64>),
    Fresh(WriteTx),
}

/// Starts a write guarded by `key`: a retry racing its first request waits for it and then
/// gets its response. On one server the write gate makes it wait; on PostgreSQL, where servers
/// without Redis share no write turn, the transaction first takes a lock of the key's own
/// (`pg_advisory_xact_lock` on its user and key, held to COMMIT or ROLLBACK; two-key locks
/// never meet the cluster turn's one-key lock), so a retry on another server waits for the
/// first request's commit and reads its response.
pub async fn begin_write(
    db: &Db,
    user_id: &str,
    key: Option<&str>,
    request: &str,
) -> Result<Begun, ApiError> {
    let mut w = db.begin_write().await?;
    if let Some(key) = key {
        if db.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1), hashtext($2))")
                .bind(user_id)
                .bind(key)
                .execute(&mut *w.tx)
                .await?;
        }
        if let Some((status, body, seq)) =
            previous_response(&mut w.tx, user_id, key, request).await?
        {
            return Ok(Begun::Replayed(status, body, seq));
        }
    }
    Ok(Begun::Fresh(w))
}

/// The stored response for `key` if this request was made before; 422 if the key was used for
/// another request.
pub async fn previous_response(
    conn: &mut AnyConnection,
    user_id: &str,
    key: &str,
    request: &str,
) -> Result<Option<(StatusCode, Value, Option<i64>)>, ApiError> {
    let row: Option<(String, i64, String, Option<i64>)> = sqlx::query_as(
        "SELECT request, status, body, event_seq FROM idempotency_keys \
         WHERE user_id = $1 AND key = $2",
    )
    .bind(user_id)
    .bind(key)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((stored_request, status, body, seq)) = row else {
        return Ok(None);
    };
    if stored_request != request {
        return Err(ApiError::Unprocessable(format!(
            "Idempotency-Key `{key}` was already used for a different request"
        )));
    }
    let status = StatusCode::from_u16(status as u16).unwrap_or(StatusCode::OK);
    let body = serde_json::from_str(&body).unwrap_or(Value::Null);
    Ok(Some((status, body, seq)))
}

/// What the first request with a key answered, kept for its retries.
pub struct Remembered<'a> {
    pub status: StatusCode,
    pub body: &'a Value,
    /// The `seq` of the event it logged (its `Event-Seq` header), if any.
    pub event_seq: Option<i64>,
}

/// Records the response of the first request with `key`.
pub async fn remember(
    conn: &mut AnyConnection,
    user_id: &str,
    key: &str,
    request: &str,
    response: Remembered<'_>,
) -> Result<(), sqlx::Error> {
    let Remembered {
        status,
        body,
        event_seq,
    } = response;
    sqlx::query(
        "INSERT INTO idempotency_keys (user_id, key, request, status, body, created_us, \
         event_seq) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(user_id)
    .bind(key)
    .bind(request)
    .bind(status.as_u16() as i64)
    .bind(body.to_string())
    .bind(now_micros())
    .bind(event_seq)
    .execute(&mut *conn)
    .await
    .map(|_| ())
}
