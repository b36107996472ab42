//! What anyone may ask without a token: `/health`, `/ready` and `/metrics`, and the memo
//! that keeps a flood of them from costing a database check or a room walk each.

use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use crate::telemetry::metrics::{DB_POOL, ROOM_MEMBERS, ROOMS};

/// The last answer of a costly check that anyone may ask for without a token, shared. An
/// answer that [`Memo::get`]'s `stands` keeps is given again for [`MEMO_FOR`]; while a check is
/// running, the requests that come meanwhile wait for it and take its answer, so a flood costs
/// one check at a time, and one a second while answers stand.
pub struct Memo<T> {
    last: tokio::sync::Mutex<Option<(Instant, T)>>,
}

impl<T> Default for Memo<T> {
    fn default() -> Self {
        Self {
            last: tokio::sync::Mutex::new(None),
        }
    }
}

/// How long an answer that stands is given again.
pub const MEMO_FOR: Duration = Duration::from_secs(1);

impl<T: Clone> Memo<T> {
    /// The answer for a request made now: one that `stands` and is younger than [`MEMO_FOR`],
    /// or one that ended after this was asked, else a new one (`check`).
    pub async fn get<F, Fut>(&self, stands: impl Fn(&T) -> bool, check: F) -> T
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = T>,
    {
        let asked = Instant::now();
        let mut last = self.last.lock().await;
        if let Some((at, answer)) = &*last
            && (*at >= asked || (stands(answer) && at.elapsed() < MEMO_FOR))
        {
            return answer.clone();
        }
        let answer = check().await;
        *last = Some((Instant::now(), answer.clone()));
        answer
    }
}

pub(super) async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// 200 when this server can do its whole job: the database answers and, with Redis, the link
/// to the other servers is up; 503 otherwise, saying which part is missing.
pub(super) async fn ready(State(state): State<AppState>) -> Response {
    let database = state
        .ready_check
        .get(Result::is_ok, || async {
            state.metrics.ready_db_checks.increment(1);
            state.db.ping().await.map_err(|e| e.to_string())
        })
        .await;
    let link = state.realtime.link.state().map(|l| *l.borrow());
    let adapter = match link {
        None => "local",
        Some(l) if l.up => "up",
        Some(_) => "down",
    };
    let node = state.realtime.node();
    let body = |status: &str| {
        json!({
            "status": status,
            "node": node,
            "database": if database.is_ok() { "up" } else { "down" },
            "adapter": adapter,
        })
    };
    if database.is_ok() && adapter != "down" {
        return Json(body("ready")).into_response();
    }
    let mut reasons = Vec::new();
    if let Err(e) = &database {
        // The cause goes to the log: this endpoint needs no token.
        tracing::warn!(error = %e, "readiness: database unavailable");
        reasons.push("database unavailable".to_string());
    }
    if let Some(l) = link.filter(|l| !l.up) {
        reasons.push(format!(
            "redis link down for {:.1} s: events reach this server's sockets only",
            l.since.elapsed().as_secs_f64()
        ));
    }
    let mut body = body("unavailable");
    body["error"] = json!({ "code": "unavailable", "message": reasons.join("; ") });
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}

pub(super) async fn metrics(State(state): State<AppState>) -> Response {
    let m = &state.metrics;
    let sizes = state
        .room_walk
        .get(
            |_| true,
            || async {
                m.room_walks.increment(1);
                state.realtime.room_sizes().await
            },
        )
        .await;
    for (class, rooms, members) in sizes {
        m.labelled_gauge(ROOMS, &[("size_class", class.to_string())])
            .set(rooms as f64);
        m.labelled_gauge(ROOM_MEMBERS, &[("size_class", class.to_string())])
            .set(members as f64);
    }
    let (idle, busy) = state.db.pool_use();
    m.labelled_gauge(DB_POOL, &[("state", "idle".to_string())])
        .set(idle as f64);
    m.labelled_gauge(DB_POOL, &[("state", "busy".to_string())])
        .set(busy as f64);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}
