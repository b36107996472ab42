//! A socket's life as its connect and disconnect handlers see it. socketioxide can run the
//! disconnect handler before the connect handler, or without it: when the transport closes
//! while the CONNECT is being sent (a client that closes right behind its CONNECT, seen in the
//! hostile suite). Counted naively, the `socketio_sockets_connected` gauge went to -2, there
//! were more disconnects than connects, and a token-expiry timer started after the socket was
//! gone held it until the token expired. Here a socket is counted out only if it was counted
//! in, and nothing starts for a socket that is already gone.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use tokio::sync::Notify;

const CONNECTING: u8 = 0;
const CONNECTED: u8 = 1;
const GONE: u8 = 2;

/// Created by the auth middleware, before either handler can run; clones share it.
#[derive(Debug, Clone, Default)]
pub struct SocketLife(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    /// `CONNECTING`, then `CONNECTED` (by the connect handler) and `GONE` (by the disconnect
    /// handler), or straight to `GONE`.
    state: AtomicU8,
    /// Woken when the socket is gone; the permit waits if its task is not waiting yet.
    gone: Notify,
}

impl SocketLife {
    /// For the connect handler: true when the socket was still connecting and is now
    /// connected; false when it is already gone (count nothing, start nothing).
    pub fn connect(&self) -> bool {
        self.0
            .state
            .compare_exchange(CONNECTING, CONNECTED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// For the disconnect handler: marks the socket gone and wakes its task; true when it had
    /// been connected (count it out).
    pub fn end(&self) -> bool {
        let was = self.0.state.swap(GONE, Ordering::AcqRel);
        self.0.gone.notify_one();
        was == CONNECTED
    }

    /// Resolves once the socket is gone, even if it went before this was called.
    pub async fn gone(&self) {
        self.0.gone.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_socket_counted_in_is_counted_out_once() {
        let life = SocketLife::default();
        assert!(life.connect());
        assert!(!life.connect(), "connected once");
        assert!(life.end());
        assert!(!life.end(), "gone once");
    }

    #[test]
    fn a_socket_gone_before_it_connected_is_counted_neither_in_nor_out() {
        let life = SocketLife::default();
        assert!(!life.end(), "never connected: nothing to count out");
        assert!(!life.connect(), "already gone: nothing to count in");
    }

    #[tokio::test]
    async fn its_task_is_woken_even_if_it_waits_after_the_socket_went() {
        let life = SocketLife::default();
        life.connect();
        life.end();
        tokio::time::timeout(Duration::from_secs(1), life.gone())
            .await
            .expect("woken by the permit left behind");
    }
}
