//! Concurrency: 50 conflicting creates at once leave exactly one booking and one event,
//! within one server (the write gate) and across two servers sharing a database (the
//! database's own overlap guard).

use futures_util::future::join_all;
use serde_json::json;

use crate::support::{Backend, TestApp, spawn_app, spawn_with, temp_database};

pub const RACERS: usize = 50;

/// Fires `RACERS` pairwise-overlapping creates spread over `apps`; checks one won.
pub async fn race_scenario(apps: &[&TestApp]) {
    let room = apps[0].boardroom("Race", 10).await;
    let requests = (0..RACERS).map(|i| {
        let app = apps[i % apps.len()];
        let token = app.token(&format!("racer-{i}"));
        // Every window starts within 50 minutes of 09:00 and lasts an hour: all overlap.
        let body = json!({
            "boardroomId": room,
            "title": format!("Racer {i}"),
            "startTime": format!("2030-01-01T09:{:02}:00Z", i),
            "endTime": format!("2030-01-01T10:{:02}:00Z", i),
        });
        async move { app.call("POST", "/api/bookings", &token, Some(body)).await }
    });
    let results = join_all(requests).await;
    let created = results.iter().filter(|(s, _)| *s == 201).count();
    let conflicts = results.iter().filter(|(s, _)| *s == 409).count();
    let others: Vec<_> = results
        .iter()
        .filter(|(s, _)| *s != 201 && *s != 409)
        .collect();
    assert!(others.is_empty(), "unexpected responses: {others:?}");
    assert_eq!((created, conflicts), (1, RACERS - 1));
    let admin = &apps[0].admin;
    let (_, list) = apps[0]
        .call(
            "GET",
            &format!("/api/bookings?boardroomId={room}"),
            admin,
            None,
        )
        .await;
    assert_eq!(
        list.as_array().unwrap().len(),
        1,
        "exactly one booking stored"
    );
    let (_, page) = apps[0]
        .call(
            "GET",
            &format!("/api/events?rooms=boardroom-{room}"),
            admin,
            None,
        )
        .await;
    assert_eq!(
        page["events"].as_array().unwrap().len(),
        1,
        "exactly one event logged"
    );
    eprintln!(
        "race over {} server(s): {created} created, {conflicts} conflicts",
        apps.len()
    );
}

#[tokio::test]
async fn fifty_way_race_on_sqlite_one_server() {
    race_scenario(&[&spawn_app(Backend::Memory).await]).await;
}

#[tokio::test]
async fn fifty_way_race_on_sqlite_two_servers_one_file() {
    let (url, _guard) = temp_database(Backend::SqliteFile).await;
    let a = spawn_with(booking_server::ServerConfig::defaults_for(&url)).await;
    let b = spawn_with(booking_server::ServerConfig::defaults_for(&url)).await;
    race_scenario(&[&a, &b]).await;
}
