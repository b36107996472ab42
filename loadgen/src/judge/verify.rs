//! The verdict on deliveries, from the event log and what each tab received.
//!
//! A tab is owed every event of a room it joined whose `seq` is above that join's watermark
//! (DESIGN.md, "the delivery watermark"). Each owed (tab, event) pair ends delivered (live),
//! recovered (by replay after a reconnect) or lost; besides, a tab's receipts may be
//! duplicated, out of order, or unexpected (of an event none of whose rooms it joined).
//! Only events up to the last `seq` read from the log are judged, so events of other
//! generators still in flight at the end are not miscounted.
//!
//! With several servers, each owed pair is also classed by the path the event took: committed
//! on the node the tab was on then (same-node), on another (cross-node, through the servers'
//! fan-out link), or unknown (a server that does not say which node it is).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::plan::ROOM_CLASSES;
use crate::record::ledger::{Judged, Late, Ledger, insert_sorted, remove_sorted};

/// A room as the verifier compares it: users interned to numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RoomRef {
    Bookings,
    Boardroom(i64),
    User(u32),
}

/// An event of the log, reduced to what the verdict needs.
#[derive(Debug, Clone)]
pub struct LogEvent {
    pub seq: i64,
    /// Index in `BookingEventKind::ALL`.
    pub kind: usize,
    pub rooms: Vec<RoomRef>,
    /// The node that committed it, interned; `None` when the server did not say.
    pub node: Option<u32>,
}

/// The paths an event takes to a tab, in report order.
pub const PATHS: [&str; 3] = ["same-node", "cross-node", "unknown"];
pub const PATH_SAME: usize = 0;
pub const PATH_CROSS: usize = 1;
pub const PATH_UNKNOWN: usize = 2;

/// The path of an event committed on `event_node` to a tab on `tab_node`.
pub fn path<T: PartialEq>(event_node: Option<T>, tab_node: Option<T>) -> usize {
    match (event_node, tab_node) {
        (Some(e), Some(t)) if e == t => PATH_SAME,
        (Some(_), Some(_)) => PATH_CROSS,
        _ => PATH_UNKNOWN,
    }
}

/// The node a tab was on for event `seq`, from its segments `(from_seq, node)` in join
/// order: the last segment that starts below `seq` (the first one for earlier events).
pub fn node_at(segments: &[(i64, Option<u32>)], seq: i64) -> Option<u32> {
    let after = segments.partition_point(|(from, _)| *from < seq);
    segments.get(after.saturating_sub(1)).and_then(|(_, n)| *n)
}

/// A room a tab joined: from `watermark` on, it is owed the room's events, up to `until`.
#[derive(Debug, Clone, Copy)]
pub struct Joined {
    pub room: RoomRef,
    pub watermark: i64,
    /// Owed up to here (`--stages` closes tabs: the lower of the tab's cutoff and its leave's
    /// ack); later events of the room are not owed, and not unexpected either. `i64::MAX`
    /// while joined.
    pub until: i64,
    /// Index in `ROOM_CLASSES`, for the breakdown.
    pub class: usize,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeliveryCounts {
    pub owed: u64,
    pub delivered: u64,
    pub recovered: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub unexpected: u64,
    pub out_of_order: u64,
}

/// The owed side of [`DeliveryCounts`], for breakdowns where receipts are not split.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct OwedCounts {
    pub owed: u64,
    pub delivered: u64,
    pub recovered: u64,
    pub lost: u64,
}

impl OwedCounts {
    pub fn add(&mut self, o: &OwedCounts) {
        self.owed += o.owed;
        self.delivered += o.delivered;
        self.recovered += o.recovered;
        self.lost += o.lost;
    }
}

impl From<DeliveryCounts> for OwedCounts {
    fn from(d: DeliveryCounts) -> Self {
        Self {
            owed: d.owed,
            delivered: d.delivered,
            recovered: d.recovered,
            lost: d.lost,
        }
    }
}

impl DeliveryCounts {
    pub fn add(&mut self, o: &DeliveryCounts) {
        self.owed += o.owed;
        self.delivered += o.delivered;
        self.recovered += o.recovered;
        self.lost += o.lost;
        self.duplicated += o.duplicated;
        self.unexpected += o.unexpected;
        self.out_of_order += o.out_of_order;
    }

    /// Takes back counts [`DeliveryCounts::add`] added.
    fn sub(&mut self, o: &DeliveryCounts) {
        self.owed -= o.owed;
        self.delivered -= o.delivered;
        self.recovered -= o.recovered;
        self.lost -= o.lost;
        self.duplicated -= o.duplicated;
        self.unexpected -= o.unexpected;
        self.out_of_order -= o.out_of_order;
    }
}

#[derive(Debug, Clone, Default)]
pub struct Verdict {
    pub total: DeliveryCounts,
    pub by_kind: [DeliveryCounts; 4],
    pub by_class: [DeliveryCounts; ROOM_CLASSES.len()],
    /// Owed pairs by [`PATHS`].
    pub by_path: [DeliveryCounts; PATHS.len()],
    /// A few (tab, seq) pairs that were lost, for the report.
    pub lost_examples: Vec<(usize, i64)>,
    pub unexpected_examples: Vec<(usize, i64)>,
    /// Lost and recovered owed deliveries by event `seq` (for the timeline).
    pub lost_by_seq: BTreeMap<i64, u64>,
    pub recovered_by_seq: BTreeMap<i64, u64>,
}

const EXAMPLES: usize = 10;

impl Verdict {
    pub fn merge(&mut self, other: &Verdict) {
        self.total.add(&other.total);
        for (a, b) in self.by_kind.iter_mut().zip(&other.by_kind) {
            a.add(b);
        }
        for (a, b) in self.by_class.iter_mut().zip(&other.by_class) {
            a.add(b);
        }
        for (a, b) in self.by_path.iter_mut().zip(&other.by_path) {
            a.add(b);
        }
        for (mine, theirs) in [
            (&mut self.lost_by_seq, &other.lost_by_seq),
            (&mut self.recovered_by_seq, &other.recovered_by_seq),
        ] {
            for (seq, n) in theirs {
                *mine.entry(*seq).or_default() += n;
            }
        }
        for (mine, theirs) in [
            (&mut self.lost_examples, &other.lost_examples),
            (&mut self.unexpected_examples, &other.unexpected_examples),
        ] {
            let room = EXAMPLES.saturating_sub(mine.len());
            mine.extend(theirs.iter().take(room));
        }
    }
}

/// What one tab is judged by: its rooms, the nodes it was on, and the log (`events`
/// ascending by `seq`).
#[derive(Clone, Copy)]
pub struct TabView<'a> {
    pub tab: usize,
    pub joined: &'a [Joined],
    /// The tab's node segments (see [`node_at`]).
    pub nodes: &'a [(i64, Option<u32>)],
    pub events: &'a [LogEvent],
}

/// How an owed pair ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Delivered,
    Recovered,
    Lost,
}

impl Outcome {
    fn counts(self) -> DeliveryCounts {
        let one = |o| u64::from(self == o);
        DeliveryCounts {
            owed: 1,
            delivered: one(Outcome::Delivered),
            recovered: one(Outcome::Recovered),
            lost: one(Outcome::Lost),
            ..Default::default()
        }
    }
}

impl TabView<'_> {
    /// The join that owes the tab `event`, if any.
    fn owed_by(&self, event: &LogEvent) -> Option<&Joined> {
        self.joined.iter().find(|j| {
            event.seq > j.watermark && event.seq <= j.until && event.rooms.contains(&j.room)
        })
    }

    fn event(&self, seq: i64) -> Option<&LogEvent> {
        let at = self.events.binary_search_by_key(&seq, |e| e.seq).ok()?;
        Some(&self.events[at])
    }

    /// Whether `event` is of a room the tab joined at all (a receipt of it is not unexpected).
    fn expects(&self, event: Option<&LogEvent>) -> bool {
        event.is_some_and(|e| self.joined.iter().any(|j| e.rooms.contains(&j.room)))
    }
}

impl Verdict {
    /// Counts the owed pair (tab, `event`), owed through `j`, as `outcome` (`undo`: takes a
    /// count of it back).
    fn count(
        &mut self,
        view: &TabView,
        event: &LogEvent,
        j: &Joined,
        outcome: Outcome,
        undo: bool,
    ) {
        let counts = outcome.counts();
        let path = path(event.node, node_at(view.nodes, event.seq));
        for c in [
            &mut self.total,
            &mut self.by_kind[event.kind],
            &mut self.by_class[j.class],
            &mut self.by_path[path],
        ] {
            if undo { c.sub(&counts) } else { c.add(&counts) }
        }
        let (tab, seq) = (view.tab, event.seq);
        let by_seq = match outcome {
            Outcome::Delivered => return,
            Outcome::Recovered => &mut self.recovered_by_seq,
            Outcome::Lost => &mut self.lost_by_seq,
        };
        if undo {
            if let Some(n) = by_seq.get_mut(&seq) {
                *n -= 1;
                if *n == 0 {
                    by_seq.remove(&seq);
                }
            }
            if outcome == Outcome::Lost {
                self.lost_examples.retain(|pair| *pair != (tab, seq));
            }
        } else {
            *by_seq.entry(seq).or_default() += 1;
            if outcome == Outcome::Lost && self.lost_examples.len() < EXAMPLES {
                self.lost_examples.push((tab, seq));
            }
        }
    }

    fn unexpected(&mut self, tab: usize, seq: i64, event: Option<&LogEvent>) {
        self.total.unexpected += 1;
        if let Some(e) = event {
            self.by_kind[e.kind].unexpected += 1;
        }
        if self.unexpected_examples.len() < EXAMPLES {
            self.unexpected_examples.push((tab, seq));
        }
    }
}

/// Judges the tab's `seq`s in (`from`, `to`] (`to` at most the log's end): each owed pair
/// ends delivered, recovered or lost, and each live receipt of an event none of whose rooms
/// the tab joined is unexpected. With `judged`, notes the `seq`s a later receipt could still
/// change (see [`Judged`]), in ascending order.
pub fn judge_span(
    view: &TabView,
    ledger: &Ledger,
    (from, to): (i64, i64),
    v: &mut Verdict,
    mut judged: Option<&mut Judged>,
) {
    if let Some(lowest) = view.joined.iter().map(|j| j.watermark).min() {
        let from = from.max(lowest);
        let start = view.events.partition_point(|e| e.seq <= from);
        for event in view.events[start..].iter().take_while(|e| e.seq <= to) {
            let Some(j) = view.owed_by(event) else {
                continue;
            };
            let outcome = if ledger.got_live(event.seq) {
                Outcome::Delivered
            } else if ledger.got_replayed(event.seq) {
                Outcome::Recovered
            } else {
                Outcome::Lost
            };
            v.count(view, event, j, outcome, false);
            if let Some(judged) = judged.as_deref_mut() {
                match outcome {
                    Outcome::Delivered => {}
                    Outcome::Recovered => judged.recovered.push(event.seq),
                    Outcome::Lost => judged.lost.push(event.seq),
                }
            }
        }
    }
    for seq in ledger
        .live_seqs()
        .skip_while(|s| *s <= from)
        .take_while(|s| *s <= to)
    {
        let event = view.event(seq);
        if !view.expects(event) {
            v.unexpected(view.tab, seq, event);
        }
        if let Some(judged) = judged.as_deref_mut()
            && event.and_then(|e| view.owed_by(e)).is_none()
        {
            judged.not_owed.push(seq);
        }
    }
}

/// Judges receipts that came for `seq`s already judged ([`Late`]), as the whole bitmap would
/// have: a live receipt turns a lost or recovered pair delivered, and is a duplicate of a
/// delivered one; a replayed one turns a lost pair recovered; a live receipt of an event the
/// tab was not owed is a duplicate if one came before, and otherwise unexpected unless the
/// event is of a room the tab joined. `judged` is updated.
pub fn judge_late(view: &TabView, late: &[(i64, Late)], judged: &mut Judged, v: &mut Verdict) {
    for &(seq, how) in late {
        let event = view.event(seq);
        let owed = event.and_then(|e| view.owed_by(e).map(|j| (e, j)));
        match (how, owed) {
            (Late::Live, Some((e, j))) => {
                let was = if remove_sorted(&mut judged.lost, seq) {
                    Outcome::Lost
                } else if remove_sorted(&mut judged.recovered, seq) {
                    Outcome::Recovered
                } else {
                    v.total.duplicated += 1;
                    continue;
                };
                v.count(view, e, j, was, true);
                v.count(view, e, j, Outcome::Delivered, false);
            }
            (Late::Live, None) => {
                if !insert_sorted(&mut judged.not_owed, seq) {
                    v.total.duplicated += 1;
                } else if !view.expects(event) {
                    v.unexpected(view.tab, seq, event);
                }
            }
            (Late::Replayed, Some((e, j))) => {
                if remove_sorted(&mut judged.lost, seq) {
                    insert_sorted(&mut judged.recovered, seq);
                    v.count(view, e, j, Outcome::Lost, true);
                    v.count(view, e, j, Outcome::Recovered, false);
                }
            }
            (Late::Replayed, None) => {}
        }
    }
}

/// Judges what is left of one tab at the end of the run into `v` (which holds what was
/// judged of it as the run went, if anything was): its late receipts, everything above the
/// ledger's base up to `log_end` (the last `seq` read from the log), its receipts of events
/// before the run, and its duplicate and order counters. With a ledger never advanced, this
/// is the whole tab's verdict.
pub fn judge_tab(view: &TabView, ledger: &Ledger, log_end: i64, v: &mut Verdict) {
    v.total.duplicated += ledger.duplicates;
    v.total.out_of_order += ledger.out_of_order;
    let mut judged = ledger.judged.clone();
    judge_late(view, ledger.late(), &mut judged, v);
    judge_span(view, ledger, (ledger.base(), log_end), v, None);
    for &seq in ledger.before_start() {
        v.unexpected(view.tab, seq, None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judge_tab(
        tab: usize,
        joined: &[Joined],
        nodes: &[(i64, Option<u32>)],
        ledger: &Ledger,
        events: &[LogEvent],
        log_end: i64,
    ) -> Verdict {
        let view = TabView {
            tab,
            joined,
            nodes,
            events,
        };
        let mut v = Verdict::default();
        super::judge_tab(&view, ledger, log_end, &mut v);
        v
    }

    fn event(seq: i64, rooms: &[RoomRef]) -> LogEvent {
        LogEvent {
            seq,
            kind: 0,
            rooms: rooms.to_vec(),
            node: Some(seq as u32 % 2),
        }
    }

    const B1: RoomRef = RoomRef::Boardroom(1);
    const B2: RoomRef = RoomRef::Boardroom(2);
    const ME: RoomRef = RoomRef::User(7);

    fn log() -> Vec<LogEvent> {
        vec![
            event(11, &[RoomRef::Bookings, B1, RoomRef::User(1)]),
            event(12, &[RoomRef::Bookings, B2, RoomRef::User(1)]),
            event(13, &[RoomRef::Bookings, B1, ME]),
            event(14, &[RoomRef::Bookings, B2, B1, RoomRef::User(1)]),
            event(15, &[RoomRef::Bookings, B2, RoomRef::User(2)]),
        ]
    }

    fn calendar(wm: i64) -> Vec<Joined> {
        vec![
            Joined {
                room: B1,
                watermark: wm,
                until: i64::MAX,
                class: 3,
            },
            Joined {
                room: ME,
                watermark: wm,
                until: i64::MAX,
                class: 4,
            },
        ]
    }

    #[test]
    fn every_owed_event_is_delivered_recovered_or_lost() {
        let mut ledger = Ledger::new(10);
        ledger.record_live(11);
        ledger.record_replayed(13);
        let v = judge_tab(0, &calendar(10), &[], &ledger, &log(), 15);
        assert_eq!(v.total.owed, 3, "11, 13 and 14 are boardroom-1 or mine");
        assert_eq!(
            (v.total.delivered, v.total.recovered, v.total.lost),
            (1, 1, 1)
        );
        assert_eq!(v.lost_examples, vec![(0, 14)]);
        assert_eq!(
            v.by_class[3].owed, 3,
            "owed through the boardroom room first"
        );
    }

    #[test]
    fn the_watermark_and_the_log_end_bound_what_is_owed() {
        let ledger = Ledger::new(10);
        let v = judge_tab(0, &calendar(11), &[], &ledger, &log(), 13);
        assert_eq!(
            v.total.owed, 1,
            "only 13: 11 is at the watermark, 14 past the log end"
        );
    }

    #[test]
    fn a_room_left_owes_up_to_its_leave_and_later_receipts_are_not_unexpected() {
        let mut ledger = Ledger::new(10);
        // Left boardroom-1 and the user room acked through 13; 14 still came, as it may.
        ledger.record_live(11);
        ledger.record_live(14);
        let left: Vec<Joined> = calendar(10)
            .into_iter()
            .map(|j| Joined { until: 13, ..j })
            .collect();
        let v = judge_tab(0, &left, &[], &ledger, &log(), 15);
        assert_eq!(v.total.owed, 2, "11 and 13; 14 is past the leave");
        assert_eq!((v.total.delivered, v.total.lost), (1, 1));
        assert_eq!(v.lost_examples, vec![(0, 13)]);
        assert_eq!(v.total.unexpected, 0, "14 is of a room the tab had joined");
    }

    #[test]
    fn receipts_of_rooms_never_joined_are_unexpected() {
        let mut ledger = Ledger::new(10);
        for seq in [11, 12, 13, 14, 99] {
            ledger.record_live(seq);
        }
        ledger.record_live(11);
        let v = judge_tab(3, &calendar(10), &[], &ledger, &log(), 15);
        assert_eq!(
            v.total.unexpected, 1,
            "12 is boardroom-2 only; 99 is past the log end"
        );
        assert_eq!(v.unexpected_examples, vec![(3, 12)]);
        assert_eq!(v.total.duplicated, 1);
        assert_eq!(v.total.lost, 0);
    }

    #[test]
    fn out_of_order_receipts_are_counted() {
        let mut ledger = Ledger::new(10);
        ledger.record_live(13);
        ledger.record_live(11);
        let v = judge_tab(0, &calendar(10), &[], &ledger, &log(), 15);
        assert_eq!(v.total.out_of_order, 1);
    }

    #[test]
    fn owed_pairs_are_split_by_the_node_the_tab_was_on_then() {
        // Events alternate nodes: odd seqs on node 1, even on node 0. The tab is on node 1
        // until it moves to node 0 with a join at watermark 12.
        let mut ledger = Ledger::new(10);
        for seq in [11, 13, 14] {
            ledger.record_live(seq);
        }
        let nodes = [(10, Some(1)), (12, Some(0))];
        let v = judge_tab(0, &calendar(10), &nodes, &ledger, &log(), 15);
        assert_eq!(v.total.owed, 3);
        let same = v.by_path[PATH_SAME];
        let cross = v.by_path[PATH_CROSS];
        assert_eq!(
            (same.owed, same.delivered),
            (2, 2),
            "11 on node 1, 14 on node 0"
        );
        assert_eq!(
            (cross.owed, cross.delivered),
            (1, 1),
            "13 on node 1, tab on 0"
        );
        let unknown = judge_tab(0, &calendar(10), &[(10, None)], &ledger, &log(), 15);
        assert_eq!(unknown.by_path[PATH_UNKNOWN].owed, 3, "a node-less server");
    }

    #[test]
    fn paths_and_segments() {
        assert_eq!(path(Some("a"), Some("a")), PATH_SAME);
        assert_eq!(path(Some("a"), Some("b")), PATH_CROSS);
        assert_eq!(path(None, Some("b")), PATH_UNKNOWN);
        assert_eq!(path(Some("a"), None), PATH_UNKNOWN);
        let segs = [(10, Some(1)), (20, Some(2)), (30, None)];
        assert_eq!(node_at(&segs, 5), Some(1), "before the first: the first");
        assert_eq!(node_at(&segs, 11), Some(1));
        assert_eq!(
            node_at(&segs, 20),
            Some(1),
            "the watermark itself is not owed by it"
        );
        assert_eq!(node_at(&segs, 21), Some(2));
        assert_eq!(node_at(&segs, 31), None);
        assert_eq!(node_at(&[], 31), None);
    }
}
