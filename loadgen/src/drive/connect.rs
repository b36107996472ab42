//! Opens a tab's connection through the client `--client` chose (see `drive::client`).

use std::sync::Arc;

use crate::drive::client::{ConnectOptions, OnDrop, OnEvent, TabClient, TabClientKind, Transport};

/// Opens a connection through `o.client` and waits for the namespace CONNECT (or its
/// refusal).
pub async fn open(
    o: &ConnectOptions,
    on_event: OnEvent,
    on_drop: OnDrop,
) -> Result<Arc<dyn TabClient>, String> {
    match (o.client, o.transport) {
        (TabClientKind::Own, Transport::Websocket) => {
            crate::drive::sio::connect(o, on_event, on_drop).await
        }
        (TabClientKind::Own, Transport::Polling) => {
            Err("the loadgen's own client speaks WebSocket only".into())
        }
        (TabClientKind::RustSocketio, _) => {
            crate::drive::rust_socketio::connect(o, on_event, on_drop).await
        }
    }
}
