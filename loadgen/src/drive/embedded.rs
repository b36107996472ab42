//! The embedded booking server a run starts when no `--host` is given: the real server, SQLite
//! in memory, on a free loopback port, in this process.

use booking_server::realtime::faults::FaultPlan;
use booking_server::{AppState, ServerConfig};
use tokio::sync::oneshot;

use crate::error::RunError;

pub struct Embedded {
    pub base: String,
    pub secret: String,
    pub state: AppState,
    stop: Option<oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<()>>,
}

impl Embedded {
    pub async fn start(faults: Option<FaultPlan>) -> Result<Embedded, RunError> {
        let secret = format!("embedded-{:032x}", rand::random::<u128>());
        let mut config = ServerConfig::defaults_for("sqlite::memory:");
        config.auth_secret = Some(secret.clone());
        config.inject_faults = faults;
        // A dashboard tab may be sent bursts of events; give each socket room for them.
        config.socket_queue_size = config.socket_queue_size.max(4096);
        let state = AppState::new(config)
            .await
            .map_err(|e| RunError::Setup(format!("embedded server: {e}")))?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| RunError::Setup(format!("embedded server: {e}")))?;
        let base = format!(
            "http://{}",
            listener
                .local_addr()
                .map_err(|e| RunError::Setup(e.to_string()))?
        );
        let (stop, stopped) = oneshot::channel::<()>();
        let served = state.clone();
        let done = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            if let Err(e) = booking_server::serve(listener, served, shutdown).await {
                tracing::error!(error = %e, "embedded server failed");
            }
        });
        Ok(Embedded {
            base,
            secret,
            state,
            stop: Some(stop),
            done: Some(done),
        })
    }

    /// `/metrics` of the embedded server, rendered in process.
    pub fn metrics(&self) -> String {
        self.state.metrics.render()
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(done) = self.done.take() {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), done).await;
        }
    }
}
