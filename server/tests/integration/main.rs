//! Integration tests of the booking server: real server on a loopback port, real HTTP and
//! Socket.IO clients, SQLite and (with `TEST_DATABASE_URL`) PostgreSQL.

mod binary;
mod browser;
mod cluster;
mod conformance;
mod durability;
mod hostile;
mod hostile_socketio;
mod interop;
mod postgres;
mod races;
mod realtime;
mod rest;
mod support;
mod traces;
mod webapp;
