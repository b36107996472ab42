//! The REST scenarios and the races on the real PostgreSQL at `TEST_DATABASE_URL`; required in
//! CI, skipped elsewhere without it.

use crate::races::race_scenario;
use crate::rest::{
    conflict_scenario, control_characters_scenario, crud_scenario, idempotency_scenario,
    replay_rooms_scenario, retention_scenario,
};
use crate::support::{Backend, postgres_url, spawn_app, spawn_with, temp_database};

#[tokio::test]
async fn crud_on_postgres() {
    if postgres_url().is_none() {
        return;
    }
    crud_scenario(&spawn_app(Backend::Postgres).await).await;
}

#[tokio::test]
async fn control_characters_on_postgres() {
    if postgres_url().is_none() {
        return;
    }
    control_characters_scenario(&spawn_app(Backend::Postgres).await).await;
}

#[tokio::test]
async fn conflicts_on_postgres() {
    if postgres_url().is_none() {
        return;
    }
    conflict_scenario(&spawn_app(Backend::Postgres).await).await;
}

#[tokio::test]
async fn retention_on_postgres() {
    if postgres_url().is_none() {
        return;
    }
    let (url, _db) = temp_database(Backend::Postgres).await;
    retention_scenario(&url).await;
}

#[tokio::test]
async fn replay_of_several_rooms_on_postgres() {
    if postgres_url().is_none() {
        return;
    }
    replay_rooms_scenario(&spawn_app(Backend::Postgres).await).await;
}

#[tokio::test]
async fn idempotency_on_postgres() {
    if postgres_url().is_none() {
        return;
    }
    idempotency_scenario(&spawn_app(Backend::Postgres).await).await;
}

#[tokio::test]
async fn fifty_way_race_on_postgres_one_server() {
    if postgres_url().is_none() {
        return;
    }
    race_scenario(&[&spawn_app(Backend::Postgres).await]).await;
}

#[tokio::test]
async fn fifty_way_race_on_postgres_two_servers() {
    if postgres_url().is_none() {
        return;
    }
    let (url, _guard) = temp_database(Backend::Postgres).await;
    let a = spawn_with(booking_server::ServerConfig::defaults_for(&url)).await;
    let b = spawn_with(booking_server::ServerConfig::defaults_for(&url)).await;
    race_scenario(&[&a, &b]).await;
}

#[tokio::test]
async fn a_postgres_restart_answers_503_and_the_pool_recovers() {
    if postgres_url().is_none() {
        return;
    }
    // A PostgreSQL of this test's own: stopping the shared one would break the other tests.
    let pg = testkit::PrivatePostgres::start().await;
    let app = spawn_with(booking_server::ServerConfig::defaults_for(&pg.url())).await;
    let room = app.boardroom("Restart", 6).await;
    let token = app.token("rita");
    let before = app.book(&token, room, 9).await;

    pg.stop();
    let (status, body) = app
        .call(
            "POST",
            "/api/bookings",
            &token,
            Some(crate::support::booking_body(room, 11, 1)),
        )
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
    let ready = app.http.get(app.url("/ready")).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 503);
    let ready: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(ready["database"], "down", "{ready}");
    // No raw database error reaches a client: it names hosts, users and tables.
    assert_eq!(ready["error"]["message"], "database unavailable", "{ready}");
    let tab = crate::support::Tab::connect(&app, &token).await.unwrap();
    let refused = tab.join(&format!("boardroom-{room}")).await;
    assert!(!refused.ok);
    assert_eq!(
        refused.error.as_deref(),
        Some("database unavailable: try again")
    );
    tab.close().await;

    pg.start_again().await;
    testkit::wait_until(
        "the pool serves again",
        std::time::Duration::from_secs(20),
        || async {
            let res = app.http.get(app.url("/ready")).send().await;
            res.is_ok_and(|r| r.status().is_success())
        },
    )
    .await;
    let after = app.book(&token, room, 13).await;
    assert!(after["id"].as_i64() > before["id"].as_i64());
    // What was acknowledged before the restart is still there, and nothing else was written.
    let (status, list) = app
        .call(
            "GET",
            &format!("/api/bookings?boardroomId={room}"),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 200, "{list}");
    let text = list.to_string();
    assert!(text.contains(&format!("\"id\":{}", before["id"])), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_cancelled_while_waiting_for_the_cluster_turn_leaves_no_lock_behind() {
    use booking_server::db::{CLUSTER_TURN_KEY, Db, SqliteSynchronous};
    use sqlx::Connection;
    use std::time::Duration;
    if postgres_url().is_none() {
        return;
    }
    let fresh = testkit::FreshDatabase::create(&postgres_url().unwrap());
    let mut db = Db::connect(
        &fresh.url,
        4,
        Duration::from_secs(2),
        SqliteSynchronous::default(),
    )
    .await
    .unwrap();
    db.order_across_cluster();
    // Another server holds the turn.
    let mut other = sqlx::PgConnection::connect(&fresh.url).await.unwrap();
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(CLUSTER_TURN_KEY)
        .execute(&mut other)
        .await
        .unwrap();
    // Writes queue for it and are cancelled while they wait (a shutdown, an aborted task).
    for _ in 0..3 {
        let waiting = tokio::spawn({
            let db = db.clone();
            async move { db.begin_write().await.map(|_| ()) }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        waiting.abort();
        let _ = waiting.await;
    }
    // A write that waits past --db-acquire-timeout (2 s here) gives up, as unavailable (503).
    let started = std::time::Instant::now();
    let Err(late) = db.begin_write().await else {
        panic!("the turn is held elsewhere");
    };
    assert!(booking_server::error::is_unavailable(&late), "{late}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(CLUSTER_TURN_KEY)
        .execute(&mut other)
        .await
        .unwrap();
    // The turn is free: no cancelled waiter was granted it later inside the pool.
    let next = tokio::time::timeout(Duration::from_secs(5), db.begin_write())
        .await
        .expect("the next write gets the turn")
        .expect("and its transaction");
    drop(next);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let held: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_one(&mut other)
    .await
    .unwrap();
    assert_eq!(held, 0, "no advisory lock left held");
}

/// Two servers on one PostgreSQL, no Redis: a retry of an `Idempotency-Key` sent to the other
/// server while the first request runs gets the first response (the same 201 and booking),
/// never a 409 for overlapping itself or a 500 for the key's unique index. Twenty pairs, each
/// request of a pair sent to its own server at once; before, a pair ended in 201 and 409/500.
#[tokio::test]
async fn a_retry_on_another_server_racing_the_first_gets_its_response() {
    if postgres_url().is_none() {
        return;
    }
    let (url, _guard) = temp_database(Backend::Postgres).await;
    let a = spawn_with(booking_server::ServerConfig::defaults_for(&url)).await;
    let b = spawn_with(booking_server::ServerConfig::defaults_for(&url)).await;
    let room = a.boardroom("Raced keys", 4).await;
    let token = a.token("ann");
    let post = |app: &crate::support::TestApp, hour: u32, key: String| {
        app.http
            .post(app.url("/api/bookings"))
            .bearer_auth(&token)
            .header("Idempotency-Key", key)
            .json(&crate::support::booking_body(room, hour, 1))
            .send()
    };
    let mut outcomes = Vec::new();
    for hour in 0..20 {
        let key = format!("raced-{hour}");
        let (first, retry) = tokio::join!(post(&a, hour, key.clone()), post(&b, hour, key));
        let mut pair = Vec::new();
        for res in [first.unwrap(), retry.unwrap()] {
            let status = res.status().as_u16();
            let body: serde_json::Value = res.json().await.unwrap();
            pair.push((status, body["id"].clone()));
        }
        outcomes.push(pair);
    }
    for pair in &outcomes {
        assert_eq!(pair[0].0, 201, "{outcomes:?}");
        assert_eq!(
            pair[0], pair[1],
            "a retry gets the first response: {outcomes:?}"
        );
    }
}
