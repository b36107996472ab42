//! Bookings: create, list, read, update, cancel and delete. Every change appends its event to
//! the log in the same transaction and is emitted to its rooms after the commit.

pub mod rules;
pub mod store;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::boardrooms;
use crate::db::{WriteTx, now_micros};
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult};
use crate::events::{self, LoggedEvent};
use crate::idempotency::{self, Begun, IdempotencyKey};
use crate::realtime::protocol::{
    ActorRole, BookingEventKind, Changes, EVENT_SEQ_HEADER, EventActor, EventBody, Room,
};
use crate::telemetry::trace::TraceContext;
use rules::{Window, check_attendees, check_title, parse_instant};
use store::BookingRow;

pub const DEFAULT_LIST_LIMIT: i64 = 100;
pub const MAX_LIST_LIMIT: i64 = 1000;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/bookings", get(list).post(create))
        .route("/api/bookings/{id}", get(read).patch(update).delete(delete))
        .route("/api/bookings/{id}/cancel", post(cancel))
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewBooking {
    pub boardroom_id: i64,
    pub title: String,
    pub start_time: String,
    pub end_time: String,
    #[serde(default)]
    pub attendees: Vec<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BookingChange {
    pub boardroom_id: Option<i64>,
    pub title: Option<String>,
    pub start_time: Option<String>,
    pub end_time: Option<String>,
    pub attendees: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ListQuery {
    boardroom_id: Option<i64>,
    /// `me` or a user id: only that user's bookings.
    owner: Option<String>,
    from: Option<String>,
    to: Option<String>,
    status: Option<String>,
    limit: Option<i64>,
}

fn unprocessable(message: String) -> ApiError {
    ApiError::Unprocessable(message)
}

/// The rooms a booking's event goes to: everyone, its boardroom(s), its owner.
fn rooms_for(row: &BookingRow, previous_boardroom: Option<i64>) -> Vec<String> {
    let mut rooms = vec![
        Room::Bookings.name(),
        Room::Boardroom(row.boardroom_id).name(),
        Room::User(row.user_id.clone()).name(),
    ];
    rooms.extend(previous_boardroom.map(|id| Room::Boardroom(id).name()));
    rooms
}

fn actor(user: &AuthUser) -> ActorRole {
    if user.is_admin() {
        ActorRole::Admin
    } else {
        ActorRole::User
    }
}

fn event_actor(user: &AuthUser) -> EventActor {
    EventActor {
        id: user.id.clone(),
        name: user.name.clone().unwrap_or_else(|| user.id.clone()),
    }
}

fn authorize(user: &AuthUser, row: &BookingRow) -> ApiResult<()> {
    if row.user_id == user.id || user.is_admin() {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "only the owner or an admin may change booking {}",
            row.id
        )))
    }
}

async fn find_booking(w: &mut WriteTx, id: i64) -> ApiResult<BookingRow> {
    store::find(&mut w.tx, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("booking {id} not found")))
}

/// What a change did, as its event says it.
enum Change {
    Created,
    Updated {
        changes: Changes,
        previous_boardroom: Option<i64>,
    },
    Cancelled,
    Deleted,
}

/// Appends the event of a change by `user` to `row` (the booking as it is after the change,
/// as it was before a delete) to the log, in the write's transaction.
async fn log_change(
    state: &AppState,
    w: &mut WriteTx,
    user: &AuthUser,
    row: &BookingRow,
    view: &Value,
    change: Change,
    trace: &TraceContext,
) -> ApiResult<LoggedEvent> {
    let mut body = EventBody {
        booking: view.clone(),
        boardroom_id: row.boardroom_id,
        previous_boardroom_id: None,
        changes: None,
        cancelled_by: None,
        deleted_by: None,
        by: Some(event_actor(user)),
    };
    let kind = match change {
        Change::Created => BookingEventKind::Created,
        Change::Updated {
            changes,
            previous_boardroom,
        } => {
            body.changes = Some(changes);
            body.previous_boardroom_id = previous_boardroom;
            BookingEventKind::Updated
        }
        Change::Cancelled => {
            body.cancelled_by = Some(actor(user));
            BookingEventKind::Cancelled
        }
        Change::Deleted => {
            body.deleted_by = Some(actor(user));
            BookingEventKind::Deleted
        }
    };
    let rooms = rooms_for(row, body.previous_boardroom_id);
    let event = events::append(
        &mut w.tx,
        state.realtime.node(),
        kind,
        row.id,
        rooms,
        body,
        Some(trace.traceparent()),
    )
    .await?;
    Ok(event)
}

/// Records the idempotency key, commits, then emits the events while this process's write
/// turn is still held (so emissions leave in `seq` order).
async fn finish(
    state: &AppState,
    mut w: WriteTx,
    user: &AuthUser,
    key: Option<(&str, &str)>,
    status: StatusCode,
    body: Value,
    events: Vec<LoggedEvent>,
) -> ApiResult<(StatusCode, HeaderMap, Json<Value>)> {
    if let Some((key, request)) = key {
        let response = idempotency::Remembered {
            status,
            body: &body,
            event_seq: events.last().map(|e| e.seq),
        };
        idempotency::remember(&mut w.tx, &user.id, key, request, response).await?;
    }
    let turn = w.commit().await?;
    state.metrics.db_transaction.record(turn.took.as_secs_f64());
    state.realtime.emit(&turn, &events).await;
    turn.release().await;
    let mut headers = HeaderMap::new();
    if let Some(last) = events.last() {
        headers.insert(EVENT_SEQ_HEADER, HeaderValue::from(last.seq));
    }
    Ok((status, headers, Json(body)))
}

/// A retry's answer: the first response, with the same `Event-Seq` header.
fn replayed(
    status: StatusCode,
    body: Value,
    seq: Option<i64>,
) -> (StatusCode, HeaderMap, Json<Value>) {
    let mut headers = HeaderMap::new();
    if let Some(seq) = seq {
        headers.insert(EVENT_SEQ_HEADER, HeaderValue::from(seq));
    }
    (status, headers, Json(body))
}

impl AppState {
    /// An overlap refused by the database (another process won the race) is a 409 too.
    fn write_error(&self, err: sqlx::Error) -> ApiError {
        if store::is_overlap_violation(&err) {
            self.metrics.conflicts.increment(1);
            ApiError::Conflict {
                message: "the booking overlaps another booking of this boardroom".into(),
                conflicting_booking_id: None,
            }
        } else {
            ApiError::Database(err)
        }
    }

    fn overlap(&self, id: i64) -> ApiError {
        self.metrics.conflicts.increment(1);
        ApiError::Conflict {
            message: format!("the booking overlaps booking {id} of this boardroom"),
            conflicting_booking_id: Some(id),
        }
    }
}

async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    IdempotencyKey(key): IdempotencyKey,
    trace: TraceContext,
    ApiJson(input): ApiJson<NewBooking>,
) -> ApiResult<(StatusCode, HeaderMap, Json<Value>)> {
    let title = check_title(&input.title).map_err(unprocessable)?;
    let window = Window::new(
        parse_instant("startTime", &input.start_time).map_err(unprocessable)?,
        parse_instant("endTime", &input.end_time).map_err(unprocessable)?,
    )
    .map_err(unprocessable)?;
    check_attendees(&input.attendees, i64::MAX).map_err(unprocessable)?;
    let request = idempotency::fingerprint("POST /api/bookings", &input);
    let mut w =
        match idempotency::begin_write(&state.db, &user.id, key.as_deref(), &request).await? {
            Begun::Replayed(status, body, seq) => return Ok(replayed(status, body, seq)),
            Begun::Fresh(w) => w,
        };
    let boardroom = boardrooms::find(&mut *w.tx, input.boardroom_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("boardroom {} not found", input.boardroom_id)))?;
    check_attendees(&input.attendees, boardroom.capacity).map_err(unprocessable)?;
    if let Some(other) = store::find_overlap(&mut w.tx, boardroom.id, window, None).await? {
        return Err(state.overlap(other));
    }
    let now = now_micros();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO bookings (boardroom_id, user_id, title, start_us, end_us, attendees, \
         status, created_us, updated_us) VALUES ($1, $2, $3, $4, $5, $6, 'active', $7, $7) \
         RETURNING id",
    )
    .bind(boardroom.id)
    .bind(&user.id)
    .bind(&title)
    .bind(window.start_us)
    .bind(window.end_us)
    .bind(serde_json::to_string(&input.attendees).expect("strings serialize"))
    .bind(now)
    .fetch_one(&mut *w.tx)
    .await
    .map_err(|e| state.write_error(e))?;
    let row = find_booking(&mut w, id).await?;
    let view = row.view();
    let event = log_change(&state, &mut w, &user, &row, &view, Change::Created, &trace).await?;
    tracing::info!(booking = id, boardroom = row.boardroom_id, user = %user.id, "booking created");
    let key = key.as_deref().map(|k| (k, request.as_str()));
    finish(
        &state,
        w,
        &user,
        key,
        StatusCode::CREATED,
        view,
        vec![event],
    )
    .await
}

async fn update(
    State(state): State<AppState>,
    user: AuthUser,
    trace: TraceContext,
    ApiPath(id): ApiPath<i64>,
    ApiJson(input): ApiJson<BookingChange>,
) -> ApiResult<(StatusCode, HeaderMap, Json<Value>)> {
    if input.boardroom_id.is_none()
        && input.title.is_none()
        && input.start_time.is_none()
        && input.end_time.is_none()
        && input.attendees.is_none()
    {
        return Err(unprocessable(
            "nothing to update: send any of boardroomId, title, startTime, endTime, attendees"
                .into(),
        ));
    }
    let title = input
        .title
        .as_deref()
        .map(check_title)
        .transpose()
        .map_err(unprocessable)?;
    let start = input
        .start_time
        .as_deref()
        .map(|t| parse_instant("startTime", t));
    let end = input
        .end_time
        .as_deref()
        .map(|t| parse_instant("endTime", t));
    let start = start.transpose().map_err(unprocessable)?;
    let end = end.transpose().map_err(unprocessable)?;

    let mut w = state.db.begin_write().await?;
    let old = find_booking(&mut w, id).await?;
    authorize(&user, &old)?;
    if !old.is_active() {
        return Err(ApiError::Conflict {
            message: format!("booking {id} is cancelled and cannot be changed"),
            conflicting_booking_id: None,
        });
    }
    let window = Window::new(start.unwrap_or(old.start_us), end.unwrap_or(old.end_us))
        .map_err(unprocessable)?;
    let boardroom_id = input.boardroom_id.unwrap_or(old.boardroom_id);
    let boardroom = boardrooms::find(&mut *w.tx, boardroom_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("boardroom {boardroom_id} not found")))?;
    let old_attendees = old.attendee_list();
    let attendees = input
        .attendees
        .clone()
        .unwrap_or_else(|| old_attendees.clone());
    check_attendees(&attendees, boardroom.capacity).map_err(unprocessable)?;
    let changes = Changes {
        boardroom_changed: boardroom_id != old.boardroom_id,
        time_changed: window != old.window(),
        attendees_changed: attendees != old_attendees,
    };
    if (changes.boardroom_changed || changes.time_changed)
        && let Some(other) = store::find_overlap(&mut w.tx, boardroom_id, window, Some(id)).await?
    {
        return Err(state.overlap(other));
    }
    sqlx::query(
        "UPDATE bookings SET boardroom_id = $1, title = $2, start_us = $3, end_us = $4, \
         attendees = $5, updated_us = $6 WHERE id = $7",
    )
    .bind(boardroom_id)
    .bind(title.unwrap_or_else(|| old.title.clone()))
    .bind(window.start_us)
    .bind(window.end_us)
    .bind(serde_json::to_string(&attendees).expect("strings serialize"))
    .bind(now_micros())
    .bind(id)
    .execute(&mut *w.tx)
    .await
    .map_err(|e| state.write_error(e))?;
    let row = find_booking(&mut w, id).await?;
    let view = row.view();
    let previous = changes.boardroom_changed.then_some(old.boardroom_id);
    let change = Change::Updated {
        changes,
        previous_boardroom: previous,
    };
    let event = log_change(&state, &mut w, &user, &row, &view, change, &trace).await?;
    tracing::info!(booking = id, ?changes, "booking updated");
    finish(&state, w, &user, None, StatusCode::OK, view, vec![event]).await
}

async fn cancel(
    State(state): State<AppState>,
    user: AuthUser,
    IdempotencyKey(key): IdempotencyKey,
    trace: TraceContext,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<(StatusCode, HeaderMap, Json<Value>)> {
    let request = format!("POST /api/bookings/{id}/cancel");
    let mut w =
        match idempotency::begin_write(&state.db, &user.id, key.as_deref(), &request).await? {
            Begun::Replayed(status, body, seq) => return Ok(replayed(status, body, seq)),
            Begun::Fresh(w) => w,
        };
    let old = find_booking(&mut w, id).await?;
    authorize(&user, &old)?;
    if !old.is_active() {
        return Err(ApiError::Conflict {
            message: format!("booking {id} is already cancelled"),
            conflicting_booking_id: None,
        });
    }
    sqlx::query("UPDATE bookings SET status = 'cancelled', updated_us = $1 WHERE id = $2")
        .bind(now_micros())
        .bind(id)
        .execute(&mut *w.tx)
        .await?;
    let row = find_booking(&mut w, id).await?;
    let view = row.view();
    let event = log_change(
        &state,
        &mut w,
        &user,
        &row,
        &view,
        Change::Cancelled,
        &trace,
    )
    .await?;
    tracing::info!(booking = id, by = ?actor(&user), "booking cancelled");
    let key = key.as_deref().map(|k| (k, request.as_str()));
    finish(&state, w, &user, key, StatusCode::OK, view, vec![event]).await
}

async fn delete(
    State(state): State<AppState>,
    user: AuthUser,
    trace: TraceContext,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<(StatusCode, HeaderMap, Json<Value>)> {
    let mut w = state.db.begin_write().await?;
    let old = find_booking(&mut w, id).await?;
    authorize(&user, &old)?;
    sqlx::query("DELETE FROM bookings WHERE id = $1")
        .bind(id)
        .execute(&mut *w.tx)
        .await?;
    let view = old.view();
    let event = log_change(&state, &mut w, &user, &old, &view, Change::Deleted, &trace).await?;
    tracing::info!(booking = id, by = ?actor(&user), "booking deleted");
    finish(&state, w, &user, None, StatusCode::OK, view, vec![event]).await
}

async fn read(
    State(state): State<AppState>,
    _user: AuthUser,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Value>> {
    let mut conn = state.db.pool.acquire().await?;
    store::find(&mut conn, id)
        .await?
        .map(|row| Json(row.view()))
        .ok_or_else(|| ApiError::NotFound(format!("booking {id} not found")))
}

async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Vec<Value>>> {
    let limit = q.limit.unwrap_or(DEFAULT_LIST_LIMIT);
    if !(1..=MAX_LIST_LIMIT).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be between 1 and {MAX_LIST_LIMIT}"
        )));
    }
    if let Some(status) = &q.status
        && status != "active"
        && status != "cancelled"
    {
        return Err(ApiError::BadRequest(
            "status must be `active` or `cancelled`".into(),
        ));
    }
    let bad_request = ApiError::BadRequest;
    let owner = match q.owner.as_deref() {
        Some("me") => Some(user.id.clone()),
        Some("") => {
            return Err(ApiError::BadRequest(
                "owner must be `me` or a user id".into(),
            ));
        }
        other => other.map(str::to_string),
    };
    let filter = store::ListFilter {
        boardroom_id: q.boardroom_id,
        owner,
        from_us: q
            .from
            .as_deref()
            .map(|t| parse_instant("from", t))
            .transpose()
            .map_err(bad_request)?,
        to_us: q
            .to
            .as_deref()
            .map(|t| parse_instant("to", t))
            .transpose()
            .map_err(bad_request)?,
        status: q.status,
        limit,
    };
    let mut conn = state.db.pool.acquire().await?;
    let rows = store::list(&mut conn, &filter).await?;
    Ok(Json(rows.iter().map(BookingRow::view).collect()))
}
