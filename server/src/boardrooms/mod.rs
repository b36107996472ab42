//! Boardrooms: created by admins, listed and read by anyone signed in.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::bookings::rules::check_no_control;
use crate::db::now_micros;
use crate::error::{ApiError, ApiJson, ApiPath, ApiResult};
use crate::idempotency::{self, Begun, IdempotencyKey};

pub const MAX_NAME_LEN: usize = 100;
pub const MAX_CAPACITY: i64 = 10_000;

#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Boardroom {
    pub id: i64,
    pub name: String,
    pub capacity: i64,
    pub location: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewBoardroom {
    pub name: String,
    pub capacity: i64,
    #[serde(default)]
    pub location: Option<String>,
}

impl NewBoardroom {
    fn validate(&self) -> ApiResult<()> {
        check_no_control("name", &self.name).map_err(ApiError::Unprocessable)?;
        if let Some(location) = &self.location {
            check_no_control("location", location).map_err(ApiError::Unprocessable)?;
        }
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > MAX_NAME_LEN {
            return Err(ApiError::Unprocessable(format!(
                "name must be 1 to {MAX_NAME_LEN} characters"
            )));
        }
        if !(1..=MAX_CAPACITY).contains(&self.capacity) {
            return Err(ApiError::Unprocessable(format!(
                "capacity must be between 1 and {MAX_CAPACITY}"
            )));
        }
        if self
            .location
            .as_ref()
            .is_some_and(|l| l.chars().count() > 200)
        {
            return Err(ApiError::Unprocessable(
                "location may have at most 200 characters".into(),
            ));
        }
        Ok(())
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/boardrooms", get(list).post(create))
        .route("/api/boardrooms/{id}", get(read))
}

/// Reads one boardroom, or `None`.
pub async fn find(
    conn: impl sqlx::Executor<'_, Database = sqlx::Any>,
    id: i64,
) -> Result<Option<Boardroom>, sqlx::Error> {
    sqlx::query_as("SELECT id, name, capacity, location FROM boardrooms WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await
}

async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(input): ApiJson<NewBoardroom>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    if !user.is_admin() {
        return Err(ApiError::Forbidden(
            "only admins may create boardrooms".into(),
        ));
    }
    input.validate()?;
    let request = idempotency::fingerprint("POST /api/boardrooms", &input);
    let mut w =
        match idempotency::begin_write(&state.db, &user.id, key.as_deref(), &request).await? {
            Begun::Replayed(status, body, _) => return Ok((status, Json(body))),
            Begun::Fresh(w) => w,
        };
    let name = input.name.trim();
    let taken: Option<i64> = sqlx::query_scalar("SELECT id FROM boardrooms WHERE name = $1")
        .bind(name)
        .fetch_optional(&mut *w.tx)
        .await?;
    if taken.is_some() {
        return Err(ApiError::Conflict {
            message: format!("a boardroom named `{name}` already exists"),
            conflicting_booking_id: None,
        });
    }
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO boardrooms (name, capacity, location, created_us) VALUES ($1, $2, $3, $4) \
         RETURNING id",
    )
    .bind(name)
    .bind(input.capacity)
    .bind(input.location.clone())
    .bind(now_micros())
    .fetch_one(&mut *w.tx)
    .await?;
    let body = serde_json::to_value(Boardroom {
        id,
        name: name.to_string(),
        capacity: input.capacity,
        location: input.location,
    })
    .expect("boardrooms serialize");
    if let Some(key) = &key {
        let response = idempotency::Remembered {
            status: StatusCode::CREATED,
            body: &body,
            event_seq: None,
        };
        idempotency::remember(&mut w.tx, &user.id, key, &request, response).await?;
    }
    w.commit().await?.release().await;
    tracing::info!(boardroom = id, name, "boardroom created");
    Ok((StatusCode::CREATED, Json(body)))
}

async fn list(State(state): State<AppState>, _user: AuthUser) -> ApiResult<Json<Vec<Boardroom>>> {
    let rooms = sqlx::query_as("SELECT id, name, capacity, location FROM boardrooms ORDER BY id")
        .fetch_all(&state.db.pool)
        .await?;
    Ok(Json(rooms))
}

async fn read(
    State(state): State<AppState>,
    _user: AuthUser,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Boardroom>> {
    find(&state.db.pool, id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("boardroom {id} not found")))
}
