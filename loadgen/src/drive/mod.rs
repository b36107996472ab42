//! Drive: what the generator does to the server under test, for a booking run and an app
//! run. `life` is the one life every tab leads, of either workload (open, turns, a staged
//! close, reconnects with the backoff), over a kind of tab: `booking_life` a booking tab's
//! part, `app` an app tab's. `run` is a booking run's shared state and setup (the embedded
//! server, tokens, boardrooms); `scenario` the goose users, the REST actors and a reporter;
//! `tab` a booking tab's state and `client` the one Socket.IO client interface every tab
//! talks through, `connect` opening it through `sio` (the loadgen's own client) or
//! `rust_socketio` (the reference client); `receive` the receive hot path and `stamp` its hand reading of a stamp; `actions` the REST writes; `reconnect` a
//! booking tab's rejoin, replay and resync; `browser` real Chromium tabs; `fault` a
//! `--scenario`'s fault and heal; `volatile` the `editing` signals; `embedded` the server a
//! run starts when no `--host` is given; `app` an app run's tabs and publishers.

pub mod actions;
pub mod app;
pub mod booking_life;
pub mod browser;
pub mod client;
pub mod connect;
pub mod embedded;
pub mod fault;
pub mod life;
pub mod receive;
pub mod reconnect;
pub mod run;
pub mod rust_socketio;
pub mod scenario;
pub mod sio;
pub mod stamp;
pub mod tab;
pub mod volatile;
