//! Booking rows and their populated JSON view (boardroom and owner filled in).

use serde_json::{Value, json};
use sqlx::AnyConnection;

use super::rules::{Window, format_instant};

const SELECT_POPULATED: &str = "SELECT b.id, b.boardroom_id, b.user_id, b.title, b.start_us, \
     b.end_us, b.attendees, b.status, b.created_us, b.updated_us, r.name AS boardroom_name, \
     r.capacity AS boardroom_capacity, r.location AS boardroom_location, u.name AS owner_name \
     FROM bookings b JOIN boardrooms r ON r.id = b.boardroom_id JOIN users u ON u.id = b.user_id";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BookingRow {
    pub id: i64,
    pub boardroom_id: i64,
    pub user_id: String,
    pub title: String,
    pub start_us: i64,
    pub end_us: i64,
    /// JSON array of names.
    pub attendees: String,
    pub status: String,
    pub created_us: i64,
    pub updated_us: i64,
    pub boardroom_name: String,
    pub boardroom_capacity: i64,
    pub boardroom_location: Option<String>,
    pub owner_name: String,
}

impl BookingRow {
    pub fn window(&self) -> Window {
        Window {
            start_us: self.start_us,
            end_us: self.end_us,
        }
    }

    pub fn attendee_list(&self) -> Vec<String> {
        serde_json::from_str(&self.attendees).unwrap_or_default()
    }

    pub fn is_active(&self) -> bool {
        self.status == "active"
    }

    /// The populated booking as the API and the events show it.
    pub fn view(&self) -> Value {
        json!({
            "id": self.id,
            "boardroomId": self.boardroom_id,
            "boardroom": {
                "id": self.boardroom_id,
                "name": self.boardroom_name,
                "capacity": self.boardroom_capacity,
                "location": self.boardroom_location,
            },
            "title": self.title,
            "startTime": format_instant(self.start_us),
            "endTime": format_instant(self.end_us),
            "attendees": self.attendee_list(),
            "status": self.status,
            "owner": { "id": self.user_id, "name": self.owner_name },
            "createdAt": format_instant(self.created_us),
            "updatedAt": format_instant(self.updated_us),
        })
    }
}

pub async fn find(conn: &mut AnyConnection, id: i64) -> Result<Option<BookingRow>, sqlx::Error> {
    sqlx::query_as(&format!("{SELECT_POPULATED} WHERE b.id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// Filters of `GET /api/bookings`; `from`/`to` select bookings overlapping that window.
#[derive(Debug, Default)]
pub struct ListFilter {
    pub boardroom_id: Option<i64>,
    /// Only the bookings of this user.
    pub owner: Option<String>,
    pub from_us: Option<i64>,
    pub to_us: Option<i64>,
    pub status: Option<String>,
    pub limit: i64,
}

pub async fn list(
    conn: &mut AnyConnection,
    filter: &ListFilter,
) -> Result<Vec<BookingRow>, sqlx::Error> {
    let mut sql = format!("{SELECT_POPULATED} WHERE 1 = 1");
    let mut n = 0;
    let mut param = || {
        n += 1;
        format!("${n}")
    };
    if filter.boardroom_id.is_some() {
        sql.push_str(&format!(" AND b.boardroom_id = {}", param()));
    }
    if filter.owner.is_some() {
        sql.push_str(&format!(" AND b.user_id = {}", param()));
    }
    if filter.from_us.is_some() {
        sql.push_str(&format!(" AND b.end_us > {}", param()));
    }
    if filter.to_us.is_some() {
        sql.push_str(&format!(" AND b.start_us < {}", param()));
    }
    if filter.status.is_some() {
        sql.push_str(&format!(" AND b.status = {}", param()));
    }
    sql.push_str(&format!(" ORDER BY b.start_us, b.id LIMIT {}", param()));
    let mut q = sqlx::query_as(&sql);
    if let Some(v) = filter.boardroom_id {
        q = q.bind(v);
    }
    if let Some(v) = &filter.owner {
        q = q.bind(v.clone());
    }
    if let Some(v) = filter.from_us {
        q = q.bind(v);
    }
    if let Some(v) = filter.to_us {
        q = q.bind(v);
    }
    if let Some(v) = &filter.status {
        q = q.bind(v.clone());
    }
    q.bind(filter.limit).fetch_all(conn).await
}

/// An active booking of `boardroom_id` overlapping `window`, other than `except`.
pub async fn find_overlap(
    conn: &mut AnyConnection,
    boardroom_id: i64,
    window: Window,
    except: Option<i64>,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM bookings WHERE boardroom_id = $1 AND status = 'active' \
         AND start_us < $3 AND $2 < end_us AND id <> $4 ORDER BY start_us LIMIT 1",
    )
    .bind(boardroom_id)
    .bind(window.start_us)
    .bind(window.end_us)
    .bind(except.unwrap_or(-1))
    .fetch_optional(conn)
    .await
}

/// Whether a database error is the overlap guard (SQLite trigger, PostgreSQL exclusion).
pub fn is_overlap_violation(err: &sqlx::Error) -> bool {
    let Some(db) = err.as_database_error() else {
        return false;
    };
    db.code().as_deref() == Some("23P01") || db.message().contains("booking_overlap")
}
