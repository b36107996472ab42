//! The event log: every booking change appends its event in the change's own transaction;
//! `seq` is the row id. `GET /api/events` replays what a client missed, in `seq` order, with the
//! same payload it would have received live.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, Row};

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::db::now_micros;
use crate::error::{ApiError, ApiQuery, ApiResult};
use crate::realtime::protocol::{BookingEventKind, BookingEventPayload, EventBody, Room};

pub const DEFAULT_REPLAY_LIMIT: i64 = 500;
pub const MAX_REPLAY_LIMIT: i64 = 5000;
/// Most rooms one replay request may name.
pub const MAX_REPLAY_ROOMS: usize = 100;

/// An event as committed to the log, ready to emit once the transaction commits.
#[derive(Debug, Clone)]
pub struct LoggedEvent {
    pub seq: i64,
    pub event_id: String,
    pub kind: BookingEventKind,
    pub rooms: Vec<String>,
    pub body: EventBody,
    pub traceparent: Option<String>,
    pub created_us: i64,
    /// The server node that committed it.
    pub node: Option<String>,
}

impl LoggedEvent {
    pub fn payload(&self, emitted_at: i64, replayed: bool) -> BookingEventPayload {
        BookingEventPayload {
            body: self.body.clone(),
            seq: self.seq,
            event_id: self.event_id.clone(),
            emitted_at,
            traceparent: self.traceparent.clone(),
            replayed,
            node: self.node.clone(),
        }
    }
}

/// Appends an event in the caller's transaction. `rooms` are deduplicated.
pub async fn append(
    conn: &mut AnyConnection,
    node: &str,
    kind: BookingEventKind,
    booking_id: i64,
    mut rooms: Vec<String>,
    body: EventBody,
    traceparent: Option<String>,
) -> Result<LoggedEvent, sqlx::Error> {
    rooms.sort();
    rooms.dedup();
    let event_id = uuid::Uuid::new_v4().to_string();
    let created_us = now_micros();
    let body_text = serde_json::to_string(&body).expect("event bodies serialize");
    let seq: i64 = sqlx::query_scalar(
        "INSERT INTO events (event_id, name, booking_id, body, traceparent, created_us, node) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING seq",
    )
    .bind(&event_id)
    .bind(kind.name())
    .bind(booking_id)
    .bind(body_text)
    .bind(traceparent.clone())
    .bind(created_us)
    .bind(node)
    .fetch_one(&mut *conn)
    .await?;
    for room in &rooms {
        sqlx::query("INSERT INTO event_rooms (room, seq) VALUES ($1, $2)")
            .bind(room)
            .bind(seq)
            .execute(&mut *conn)
            .await?;
    }
    Ok(LoggedEvent {
        seq,
        event_id,
        kind,
        rooms,
        body,
        traceparent,
        created_us,
        node: Some(node.to_string()),
    })
}

/// The highest committed `seq` (0 when the log is empty): a join's watermark.
pub async fn last_seq(pool: &sqlx::AnyPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM events")
        .fetch_one(pool)
        .await
}

/// The seqs logged in `(after, through]`, ascending; only `node`'s when given.
pub async fn seqs_between(
    pool: &sqlx::AnyPool,
    after: i64,
    through: i64,
    node: Option<&str>,
) -> Result<Vec<i64>, sqlx::Error> {
    let sql = match node {
        None => "SELECT seq FROM events WHERE seq > $1 AND seq <= $2 ORDER BY seq",
        Some(_) => "SELECT seq FROM events WHERE seq > $1 AND seq <= $2 AND node = $3 ORDER BY seq",
    };
    let mut query = sqlx::query_scalar(sql).bind(after).bind(through);
    if let Some(node) = node {
        query = query.bind(node);
    }
    query.fetch_all(pool).await
}

/// Highest `seq` removed by retention (0 when none was), on the pool or in a transaction.
pub async fn pruned_through<'e>(
    db: impl sqlx::Executor<'e, Database = sqlx::Any>,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT pruned_through FROM event_log_horizon WHERE id = 1")
        .fetch_one(db)
        .await
}

/// Events removed per round of pruning at most, so a round holds the write turn briefly.
const PRUNE_BATCH: i64 = 10_000;

/// Idempotency keys removed per round at most (outside the write turn: a key has no place in
/// the log's order, and a retry that finds its key gone is a new attempt either way).
const KEY_BATCH: i64 = 10_000;

/// Rounds one look at the clock runs at most, back to back while each finds more to remove:
/// 10M events and keys, well past what a tick's worth of writes can add.
const ROUNDS_PER_TICK: usize = 1_000;

/// The pause between two rounds of one tick, in which waiting writes take the turn.
const BETWEEN_ROUNDS: Duration = Duration::from_millis(10);

/// What one round of pruning removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub events: u64,
    pub idempotency_keys: u64,
    /// The log's horizon after the round.
    pub through: i64,
    /// True when a batch was full: the next round finds more to remove.
    pub more: bool,
}

/// One round of retention: removes events created before `cutoff_us` (at most [`PRUNE_BATCH`]),
/// never the newest event (`last_seq` reads it), and moves the horizon in the same
/// transaction, under the write turn; then, outside the turn, idempotency keys created before
/// it (at most [`KEY_BATCH`]).
pub async fn prune(db: &crate::db::Db, cutoff_us: i64) -> Result<Pruned, sqlx::Error> {
    let mut w = db.begin_write().await?;
    let horizon = pruned_through(&mut *w.tx).await?;
    let old_enough: i64 = sqlx::query_scalar(
        "SELECT COALESCE(MAX(seq), 0) FROM events \
         WHERE created_us < $1 AND seq < (SELECT MAX(seq) FROM events)",
    )
    .bind(cutoff_us)
    .fetch_one(&mut *w.tx)
    .await?;
    let through = old_enough.min(horizon + PRUNE_BATCH).max(horizon);
    let mut pruned = Pruned {
        through,
        more: old_enough > through,
        ..Pruned::default()
    };
    if through > horizon {
        sqlx::query("DELETE FROM event_rooms WHERE seq <= $1")
            .bind(through)
            .execute(&mut *w.tx)
            .await?;
        pruned.events = sqlx::query("DELETE FROM events WHERE seq <= $1")
            .bind(through)
            .execute(&mut *w.tx)
            .await?
            .rows_affected();
        sqlx::query("UPDATE event_log_horizon SET pruned_through = $1 WHERE id = 1")
            .bind(through)
            .execute(&mut *w.tx)
            .await?;
    }
    w.commit().await?.release().await;
    pruned.idempotency_keys = sqlx::query(
        "DELETE FROM idempotency_keys WHERE (user_id, key) IN \
         (SELECT user_id, key FROM idempotency_keys WHERE created_us < $1 LIMIT $2)",
    )
    .bind(cutoff_us)
    .bind(KEY_BATCH)
    .execute(&db.pool)
    .await?
    .rows_affected();
    pruned.more |= pruned.idempotency_keys >= KEY_BATCH as u64;
    Ok(pruned)
}

/// With `--event-retention`, prunes every tenth of the retention (at most every minute) for as
/// long as the server lives; each time, round after round while a round finds more (so the log
/// is kept to its retention at any write rate a round can follow, not 10,000 events a minute).
pub fn keep_pruning(state: &AppState) {
    let crate::config::Retention::For(retention) = state.config.event_retention else {
        return;
    };
    let every = (retention / 10).clamp(Duration::from_millis(100), Duration::from_secs(60));
    let weak = state.downgrade();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(st) = AppState::upgrade(&weak) else {
                return;
            };
            let cutoff = now_micros() - retention.as_micros() as i64;
            let (mut events, mut keys, mut rounds) = (0, 0, 0);
            let ended = loop {
                rounds += 1;
                match prune(&st.db, cutoff).await {
                    Ok(p) => {
                        (events, keys) = (events + p.events, keys + p.idempotency_keys);
                        if !p.more || rounds == ROUNDS_PER_TICK {
                            break Ok(p.through);
                        }
                    }
                    Err(e) => break Err(e),
                }
                tokio::time::sleep(BETWEEN_ROUNDS).await;
            };
            if events > 0 || keys > 0 {
                tracing::info!(
                    events,
                    idempotency_keys = keys,
                    rounds,
                    through = ended.as_ref().ok(),
                    "retention: pruned"
                );
            }
            if let Err(e) = ended {
                tracing::warn!(error = %e, "retention: pruning failed; retrying later");
            }
        }
    });
}

pub fn router() -> Router<AppState> {
    Router::new().route("/api/events", get(replay))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayQuery {
    #[serde(default)]
    after: i64,
    /// Comma-separated room names; none: every event.
    rooms: Option<String>,
    limit: Option<i64>,
}

/// One replayed event: the live payload plus the rooms it went to.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplayedEvent {
    pub event: String,
    pub rooms: Vec<String>,
    pub payload: BookingEventPayload,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplayPage {
    pub events: Vec<ReplayedEvent>,
    /// Pass as `after` to read the next page.
    pub next_after: i64,
    pub has_more: bool,
    /// The highest committed `seq` when the page was read.
    pub last_seq: i64,
}

async fn replay(
    State(state): State<AppState>,
    user: AuthUser,
    ApiQuery(q): ApiQuery<ReplayQuery>,
) -> ApiResult<Json<ReplayPage>> {
    state.metrics.replay_requests.increment(1);
    let limit = q.limit.unwrap_or(DEFAULT_REPLAY_LIMIT);
    if !(1..=MAX_REPLAY_LIMIT).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be between 1 and {MAX_REPLAY_LIMIT}"
        )));
    }
    if q.after < 0 {
        return Err(ApiError::BadRequest("after must not be negative".into()));
    }
    let rooms = match q.rooms.as_deref().filter(|r| !r.is_empty()) {
        None => None,
        Some(list) => Some(parse_rooms(list, &user)?),
    };
    let mut sql = String::from(
        "SELECT e.seq, e.event_id, e.name, e.body, e.traceparent, e.created_us, e.node \
         FROM events e WHERE ",
    );
    match &rooms {
        None => sql.push_str("e.seq > $1"),
        // The page's first seqs of each room, from the (room, seq) key, merged: the cost follows
        // the page, however sparse the rooms. (Walking the log and asking each event for its
        // rooms read every event after `after` for two empty boardrooms: 1.3 s over 1M events,
        // on SQLite and on PostgreSQL; this reads under a millisecond's worth.)
        Some(rooms) => {
            let firsts: Vec<String> = (0..rooms.len())
                .map(|i| {
                    format!(
                        "SELECT seq FROM (SELECT seq FROM event_rooms WHERE room = ${} \
                         AND seq > $1 ORDER BY seq LIMIT $2) AS r{i}",
                        i + 3
                    )
                })
                .collect();
            sql.push_str(&format!("e.seq IN ({})", firsts.join(" UNION ")));
        }
    }
    sql.push_str(" ORDER BY e.seq LIMIT $2");
    let mut query = sqlx::query(&sql).bind(q.after).bind(limit + 1);
    for room in rooms.iter().flatten() {
        query = query.bind(room.clone());
    }
    let rows = query.fetch_all(&state.db.pool).await?;
    // Read after the page: a pruning that committed before or during its read shows here.
    let horizon = pruned_through(&state.db.pool).await?;
    if q.after < horizon {
        return Err(ApiError::Gone {
            message: format!(
                "events up to seq {horizon} were removed by retention: reload the data, then \
                 follow events from the current seq"
            ),
            oldest_seq: horizon + 1,
        });
    }
    let last_seq = last_seq(&state.db.pool).await?;
    let has_more = rows.len() as i64 > limit;
    let rows: Vec<_> = rows.into_iter().take(limit as usize).collect();
    let mut rooms_of = room_lists(&state.db.pool, &rows).await?;
    let mut events = Vec::with_capacity(rows.len());
    for row in rows {
        let seq: i64 = row.try_get("seq")?;
        let name: String = row.try_get("name")?;
        let body: String = row.try_get("body")?;
        let logged = LoggedEvent {
            seq,
            event_id: row.try_get("event_id")?,
            kind: BookingEventKind::from_name(&name)
                .ok_or_else(|| ApiError::Internal(format!("unknown event `{name}` in log")))?,
            rooms: rooms_of.remove(&seq).unwrap_or_default(),
            body: serde_json::from_str(&body)
                .map_err(|e| ApiError::Internal(format!("event {seq} body: {e}")))?,
            traceparent: row.try_get("traceparent")?,
            created_us: row.try_get("created_us")?,
            node: row.try_get("node")?,
        };
        events.push(ReplayedEvent {
            event: name,
            payload: logged.payload(logged.created_us, true),
            rooms: logged.rooms,
        });
    }
    state.metrics.events_replayed.increment(events.len() as u64);
    let next_after = events.last().map_or(q.after, |e| e.payload.seq);
    Ok(Json(ReplayPage {
        events,
        next_after,
        has_more,
        last_seq,
    }))
}

/// The rooms of every event in `rows`, for exactly those `seq`s: the cost follows the page,
/// not the stretch of log between its first and last event (a sparse room's page could span
/// most of the log).
async fn room_lists(
    pool: &sqlx::AnyPool,
    rows: &[sqlx::any::AnyRow],
) -> Result<HashMap<i64, Vec<String>>, sqlx::Error> {
    /// Bind parameters per query, well under SQLite's and PostgreSQL's limits.
    const CHUNK: usize = 500;
    let mut rooms_of: HashMap<i64, Vec<String>> = HashMap::new();
    let seqs = rows
        .iter()
        .map(|r| r.try_get::<i64, _>("seq"))
        .collect::<Result<Vec<_>, _>>()?;
    for chunk in seqs.chunks(CHUNK) {
        let params: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT seq, room FROM event_rooms WHERE seq IN ({}) ORDER BY seq, room",
            params.join(", ")
        );
        let mut query = sqlx::query_as::<_, (i64, String)>(&sql);
        for seq in chunk {
            query = query.bind(*seq);
        }
        for (seq, room) in query.fetch_all(pool).await? {
            rooms_of.entry(seq).or_default().push(room);
        }
    }
    Ok(rooms_of)
}

/// Parses `rooms=` and checks the caller may read each (a `user-<id>` room is its owner's).
fn parse_rooms(list: &str, user: &AuthUser) -> ApiResult<Vec<String>> {
    let names: Vec<&str> = list.split(',').map(str::trim).collect();
    if names.len() > MAX_REPLAY_ROOMS {
        return Err(ApiError::BadRequest(format!(
            "at most {MAX_REPLAY_ROOMS} rooms per replay request"
        )));
    }
    let mut rooms = Vec::with_capacity(names.len());
    for name in names {
        let room = Room::parse(name).map_err(ApiError::BadRequest)?;
        if let Room::User(id) = &room
            && *id != user.id
            && !user.is_admin()
        {
            return Err(ApiError::Forbidden(format!(
                "room `{name}` belongs to another user"
            )));
        }
        rooms.push(room.name());
    }
    rooms.sort();
    rooms.dedup();
    Ok(rooms)
}
