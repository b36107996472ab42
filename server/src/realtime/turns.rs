//! Per-socket order of room changes. socketioxide calls an event handler in packet order but
//! runs the future it returns as a task of its own, so a `leave-room` and a `join-room` of the
//! same room sent back to back could run in either order: the join acked with a watermark,
//! then the leave taking the socket out of the room (seen from the web app: 23 of 60 rounds
//! missed the next event). A ticket taken in the handler itself, in packet order, and awaited
//! in the task keeps them in order.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::watch;

/// The turns of one socket (kept in its extensions; clones share them).
#[derive(Debug, Clone)]
pub struct RoomTurns(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    next_ticket: AtomicU64,
    serving: watch::Sender<u64>,
}

impl Default for RoomTurns {
    fn default() -> Self {
        Self(Arc::new(Inner {
            next_ticket: AtomicU64::new(0),
            serving: watch::Sender::new(0),
        }))
    }
}

/// A place in the line; [`Ticket::turn`] waits for it. Dropping it, used or not, lets the
/// next one go, so a cancelled handler never blocks the socket.
#[derive(Debug)]
pub struct Ticket {
    turns: RoomTurns,
    number: u64,
}

impl RoomTurns {
    /// Takes the next place in line: call it synchronously, in the order the packets came.
    pub fn ticket(&self) -> Ticket {
        Ticket {
            number: self.0.next_ticket.fetch_add(1, Ordering::Relaxed),
            turns: self.clone(),
        }
    }
}

impl Ticket {
    /// Waits until every earlier ticket of the socket is done.
    pub async fn turn(&self) {
        let mut serving = self.turns.0.serving.subscribe();
        let _ = serving.wait_for(|now| *now >= self.number).await;
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let next = self.number + 1;
        self.turns
            .0
            .serving
            .send_modify(|now| *now = (*now).max(next));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn turns_follow_the_ticket_order_whatever_the_task_order() {
        let turns = RoomTurns::default();
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let tickets: Vec<_> = (0..20).map(|_| turns.ticket()).collect();
        let mut tasks = Vec::new();
        // Spawned in reverse, and the first ones slowest: the log must still be 0..20.
        for (i, ticket) in tickets.into_iter().enumerate().rev() {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                ticket.turn().await;
                if i < 3 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                log.lock().unwrap().push(i);
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(*log.lock().unwrap(), (0..20).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_dropped_ticket_does_not_block_the_next() {
        let turns = RoomTurns::default();
        let first = turns.ticket();
        let second = turns.ticket();
        drop(first);
        tokio::time::timeout(Duration::from_secs(1), second.turn())
            .await
            .expect("the second goes once the first is gone");
    }
}
