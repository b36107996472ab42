//! What acting tabs do: create, update (time, attendees, a move to another boardroom),
//! cancel and delete their own bookings, and deliberately conflicting creates that must get
//! 409. Actions follow an open-model schedule: actor `j` of `A` owns tickets `j, j+A, ...` at
//! `--actions-per-sec`, so a slow server shows up as lag and latency, not as fewer requests
//! quietly sent.

use std::time::{Duration, Instant};

use booking_server::realtime::protocol::EVENT_SEQ_HEADER;
use goose::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::drive::run::Run;
use crate::plan::popular_boardroom;
use crate::record::latency::now_us;
use crate::record::stats::Action;

/// Hours since the Unix epoch of 2030-01-01T00:00Z: bookings are made in the future.
const BASE_HOUR: i64 = 525_960;
/// Each run books in its own block of hours, chosen by its id.
const HOURS_PER_RUN: i64 = 10_000;

#[derive(Clone)]
struct Owned {
    id: i64,
    boardroom: usize,
    hour: i64,
}

/// An actor's private state: its random stream, its bookings, its next ticket.
#[derive(Clone)]
pub struct Actor {
    ordinal: usize,
    rng: StdRng,
    next_ticket: u64,
    next_slot: i64,
    owned: Vec<Owned>,
}

impl Actor {
    pub fn new(run: &Run, ordinal: usize) -> Actor {
        Actor {
            ordinal,
            rng: StdRng::seed_from_u64(run.setup.seed ^ (0x9e37_79b9_7f4a_7c15 + ordinal as u64)),
            next_ticket: 0,
            next_slot: 0,
            owned: Vec::new(),
        }
    }

    /// When this actor's next ticket is due, or `None` past the end of the action window.
    fn due(&self, run: &Run) -> Option<Instant> {
        let started = *run.actions_started.get()?;
        let rate = run.setup.config.actions_per_sec;
        let n = self.next_ticket * run.setup.actor_count as u64 + self.ordinal as u64;
        if let Some(stages) = &run.setup.config.stages {
            return stages.ticket_at(n, rate).map(|at| started + at);
        }
        if rate <= 0.0 {
            return None;
        }
        let offset = Duration::from_secs_f64(n as f64 / rate);
        (offset < run.setup.config.duration).then(|| started + offset)
    }

    /// One actor turn: performs every ticket due before `deadline`, then waits for it.
    pub async fn turn(&mut self, run: &Run, user: &mut GooseUser, tab: usize, deadline: Instant) {
        while let Some(due) = self.due(run).filter(|d| *d < deadline) {
            tokio::time::sleep_until(due.into()).await;
            let lag = due.elapsed().as_micros() as u64;
            run.rec.schedule_lag(lag);
            self.next_ticket += 1;
            self.act(run, user, tab).await;
        }
        tokio::time::sleep_until(deadline.into()).await;
    }

    /// Keeps the actor's picture of booking `i` true after an update was answered `status`:
    /// 200 applied `after`; no answer, or a 503 whose write may still commit, leaves it
    /// unknown, so the actor stops using it (either guess could aim a later deliberate
    /// conflict at an hour the booking has left, and that create would wrongly succeed);
    /// any other answer changed nothing.
    fn updated(&mut self, i: usize, after: Owned, status: Option<u16>) {
        match status {
            Some(200) => self.owned[i] = after,
            None | Some(503) => {
                self.owned.swap_remove(i);
            }
            Some(_) => {}
        }
    }

    fn pick(&mut self, run: &Run) -> Action {
        if self.owned.is_empty() {
            return Action::Create;
        }
        let roll = self.rng.random::<f64>();
        if roll < 0.45 {
            if self.rng.random::<f64>() < run.setup.config.conflict_share {
                Action::Conflict
            } else {
                Action::Create
            }
        } else if roll < 0.70 {
            Action::Update
        } else if roll < 0.85 {
            Action::Cancel
        } else {
            Action::Delete
        }
    }

    /// A fresh hour no other actor of this run uses.
    fn fresh_hour(&mut self, run: &Run) -> i64 {
        let slot = self.next_slot * run.setup.actor_count as i64 + self.ordinal as i64;
        self.next_slot += 1;
        BASE_HOUR + (run.setup.run_id as i64 % 5_000) * HOURS_PER_RUN + slot
    }

    async fn act(&mut self, run: &Run, user: &mut GooseUser, tab: usize) {
        let token = run.tabs[tab].token.clone();
        match self.pick(run) {
            Action::Create => {
                let boardroom = popular_boardroom(&mut self.rng, run.setup.boardroom_ids.len());
                let hour = self.fresh_hour(run);
                let body = booking_body(run, boardroom, hour, hour + 1, 2);
                let (status, value) = send(
                    run,
                    user,
                    &token,
                    GooseMethod::Post,
                    "/api/bookings",
                    "create booking",
                    Some(body),
                    201,
                )
                .await;
                // A 409 here means another generator booked this hour: counted as a conflict.
                if run.rec.stats.action(Action::Create, status, 201)
                    && let Some(id) = value["id"].as_i64()
                {
                    self.owned.push(Owned {
                        id,
                        boardroom,
                        hour,
                    });
                }
            }
            Action::Conflict => {
                let i = self.rng.random_range(0..self.owned.len());
                let (boardroom, hour) = (self.owned[i].boardroom, self.owned[i].hour);
                // Starts inside an existing booking: must be refused.
                let mut body = booking_body(run, boardroom, hour, hour + 1, 1);
                body["startTime"] = json!(instant_at(hour, 30));
                body["endTime"] = json!(instant_at(hour + 1, 30));
                let (status, _) = send(
                    run,
                    user,
                    &token,
                    GooseMethod::Post,
                    "/api/bookings",
                    "create booking (conflict)",
                    Some(body),
                    409,
                )
                .await;
                run.rec.stats.action(Action::Conflict, status, 409);
            }
            Action::Update => {
                let i = self.rng.random_range(0..self.owned.len());
                let id = self.owned[i].id;
                // The user edits the booking before saving it: the room hears "editing".
                let boardroom = self.owned[i].boardroom;
                if run.tabs[tab]
                    .signal_editing(run.setup.boardroom_ids[boardroom], id)
                    .await
                {
                    run.rec
                        .volatile
                        .sent(&run.setup.plan, boardroom, run.tabs[tab].plan.page);
                }
                // What the booking becomes once the server says 200; until then it is unchanged.
                let mut after = self.owned[i].clone();
                let change = match self.rng.random_range(0..3) {
                    0 => {
                        let hour = self.fresh_hour(run);
                        after.hour = hour;
                        json!({ "startTime": instant(hour), "endTime": instant(hour + 1) })
                    }
                    1 => json!({ "attendees": attendees(self.rng.random_range(1..5)) }),
                    _ => {
                        let boardroom =
                            popular_boardroom(&mut self.rng, run.setup.boardroom_ids.len());
                        after.boardroom = boardroom;
                        json!({ "boardroomId": run.setup.boardroom_ids[boardroom], "title": "Moved" })
                    }
                };
                let path = format!("/api/bookings/{id}");
                let (status, _) = send(
                    run,
                    user,
                    &token,
                    GooseMethod::Patch,
                    &path,
                    "update booking",
                    Some(change),
                    200,
                )
                .await;
                run.rec.stats.action(Action::Update, status, 200);
                self.updated(i, after, status);
            }
            action @ (Action::Cancel | Action::Delete) => {
                let i = self.rng.random_range(0..self.owned.len());
                let owned = self.owned.swap_remove(i);
                let (method, path, name) = if action == Action::Cancel {
                    let path = format!("/api/bookings/{}/cancel", owned.id);
                    (GooseMethod::Post, path, "cancel booking")
                } else {
                    let path = format!("/api/bookings/{}", owned.id);
                    (GooseMethod::Delete, path, "delete booking")
                };
                let (status, _) = send(run, user, &token, method, &path, name, None, 200).await;
                run.rec.stats.action(action, status, 200);
            }
        }
    }
}

/// RFC 3339 of an hour since the epoch (UTC), plus `minute`.
fn instant_at(hour: i64, minute: u32) -> String {
    crate::record::latency::rfc3339(hour * 3600 + i64::from(minute) * 60)
}

fn instant(hour: i64) -> String {
    instant_at(hour, 0)
}

fn attendees(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("guest-{i}")).collect()
}

fn booking_body(
    run: &Run,
    boardroom: usize,
    start_hour: i64,
    end_hour: i64,
    people: usize,
) -> Value {
    json!({
        "boardroomId": run.setup.boardroom_ids[boardroom],
        "title": format!("Load test {start_hour}"),
        "startTime": instant(start_hour),
        "endTime": instant(end_hour),
        "attendees": attendees(people),
    })
}

/// Sends one REST action through goose (so goose times and reports it); returns the status and
/// body, and records when the request was sent against the `seq` it logged.
#[allow(clippy::too_many_arguments)]
async fn send(
    run: &Run,
    user: &mut GooseUser,
    token: &str,
    method: GooseMethod,
    path: &str,
    name: &str,
    body: Option<Value>,
    expect: u16,
) -> (Option<u16>, Value) {
    let Ok(mut builder) = user.get_request_builder(&method, path) else {
        return (None, Value::Null);
    };
    builder = builder.bearer_auth(token);
    if let Some(body) = &body {
        builder = builder.json(body);
    }
    let request = GooseRequest::builder()
        .method(method)
        .path(path)
        .name(name)
        .expect_status_code(expect)
        .set_request_builder(builder)
        .build();
    let sent_us = now_us();
    let Ok(response) = user.request(request).await else {
        return (None, Value::Null);
    };
    let Ok(response) = response.response else {
        return (None, Value::Null);
    };
    let status = response.status().as_u16();
    let seq = response
        .headers()
        .get(EVENT_SEQ_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok());
    if let Some(seq) = seq {
        run.rec.latency.sent(seq, sent_us);
    }
    if response.status().is_success() {
        run.rec.fault.write_ok();
        if let Some(seq) = seq {
            run.rec.acked(seq);
        }
    }
    let value = response.json::<Value>().await.unwrap_or(Value::Null);
    (Some(status), value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_format_as_rfc3339() {
        assert_eq!(instant(0), "1970-01-01T00:00:00Z");
        assert_eq!(instant(BASE_HOUR), "2030-01-01T00:00:00Z");
        assert_eq!(
            instant_at(BASE_HOUR + 24 * 59 + 13, 30),
            "2030-03-01T13:30:00Z"
        );
        let far = BASE_HOUR + 5_000 * HOURS_PER_RUN;
        assert_eq!(instant(far), "7733-12-22T08:00:00Z");
    }

    fn actor_owning(hours: &[i64]) -> Actor {
        Actor {
            ordinal: 0,
            rng: StdRng::seed_from_u64(1),
            next_ticket: 0,
            next_slot: 0,
            owned: hours
                .iter()
                .map(|&hour| Owned {
                    id: hour,
                    boardroom: 0,
                    hour,
                })
                .collect(),
        }
    }

    fn hours(actor: &Actor) -> Vec<i64> {
        actor.owned.iter().map(|o| o.hour).collect()
    }

    #[test]
    fn an_update_moves_the_booking_only_when_the_server_says_it_did() {
        let moved = |id| Owned {
            id,
            boardroom: 1,
            hour: 99,
        };
        let mut actor = actor_owning(&[10, 20, 30]);
        actor.updated(1, moved(20), Some(200));
        assert_eq!(hours(&actor), [10, 99, 30]);
        assert_eq!(actor.owned[1].boardroom, 1);

        // Refused (overlap, validation): the booking stays where it was.
        actor.updated(0, moved(10), Some(409));
        actor.updated(0, moved(10), Some(422));
        assert_eq!(hours(&actor), [10, 99, 30]);

        // No answer, or 503: it may or may not have moved, so the actor forgets it.
        actor.updated(0, moved(10), None);
        assert_eq!(hours(&actor), [30, 99]);
        actor.updated(1, moved(99), Some(503));
        assert_eq!(hours(&actor), [30]);
    }
}
