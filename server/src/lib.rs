//! The reference boardroom booking server: a REST API over SQLite or PostgreSQL, Socket.IO
//! rooms that receive every booking change after it commits, and an event log that lets a
//! client replay what it missed. The load generator uses this crate for the protocol types
//! and to run an embedded server.

pub mod app;
pub mod auth;
pub mod boardrooms;
pub mod bookings;
pub mod config;
pub mod db;
pub mod error;
pub mod events;
pub mod idempotency;
pub mod listen;
pub mod realtime;
pub mod telemetry;
pub mod web;

pub use app::{AppState, StartError, app, serve};
pub use config::ServerConfig;
