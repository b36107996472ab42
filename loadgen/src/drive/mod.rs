//! Drive: what the generator does to the server under test, for a booking run and an app
//! run. `run` is a booking run's shared state and setup (the embedded server, tokens,
//! boardrooms); `life` a tab's life (open, join, turns, close); `scenario` the goose users, the
//! REST actors and a reporter; `tab` a tab's state and `client` the
//! one Socket.IO client interface every tab talks through; `receive` the receive hot path;
//! `actions` the REST writes; `reconnect` reconnects, rejoins, replays and resyncs; `browser`
//! real Chromium tabs; `fault` a `--scenario`'s fault and heal; `volatile` the `editing`
//! signals; `embedded` the server a run starts when no `--host` is given; `app` an app run's
//! tabs and publishers.

pub mod actions;
pub mod app;
pub mod browser;
pub mod client;
pub mod embedded;
pub mod fault;
pub mod life;
pub mod receive;
pub mod reconnect;
pub mod run;
pub mod scenario;
pub mod tab;
pub mod volatile;
