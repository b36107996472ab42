//! The REST scenarios and the races on the real PostgreSQL at `TEST_DATABASE_URL`; required in
//! CI, skipped elsewhere without it.

use crate::races::race_scenario;
use crate::rest::{conflict_scenario, crud_scenario, idempotency_scenario};
use crate::support::{Backend, postgres_url, spawn_app, spawn_with, temp_database};

#[tokio::test]
async fn crud_on_postgres() {
    if postgres_url().is_none() {
        return;
    }
    crud_scenario(&spawn_app(Backend::Postgres).await).await;
}

#[tokio::test]
async fn conflicts_on_postgres() {
    if postgres_url().is_none() {
        return;
    }
    conflict_scenario(&spawn_app(Backend::Postgres).await).await;
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
