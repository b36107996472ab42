//! Generator-side truth (DESIGN.md, "two sources of truth"): what an app run owes is decided
//! from what the generator itself did and saw, with no help from the app. Each publish
//! carries a marker the generator chose (`lgm-<run>-<seq>`), and is logged with the instant
//! it was sent; each room membership is logged with when its join was sent and when the tab
//! counted as in the room (the ack, or `settle` after the join without one). A tab is owed a
//! publish when it was in a room of the publish's audience before the publish was sent;
//! joins still in flight then are a grey zone, neither owed nor unexpected, and counted.
//! A tab whose connection dropped before the publish is not owed it either: what it missed is
//! counted apart. The judge is plain data in, counts out.

use std::collections::{BTreeMap, HashMap};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::judge::verify::DeliveryCounts;
use crate::record::latency::histogram;

/// The marker's prefix: `lgm-<run: 8 hex digits>-<seq>`.
pub const MARKER_PREFIX: &str = "lgm-";

pub fn marker(run: u32, seq: u64) -> String {
    format!("{MARKER_PREFIX}{run:08x}-{seq}")
}

/// What a marker found in a payload says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// One of this run's publishes.
    Ours(u64),
    /// A marker of another run (an earlier one, or another generator's).
    Foreign,
    /// No marker in the text.
    None,
}

/// Finds the marker inside `text` (it may sit in a longer string, `"Standup lgm-..."`).
pub fn find_marker(text: &str, run: u32) -> Found {
    let Some(at) = text.find(MARKER_PREFIX) else {
        return Found::None;
    };
    let rest = &text[at + MARKER_PREFIX.len()..];
    let (Some(hex), Some(tail)) = (rest.get(..8), rest.get(8..)) else {
        return Found::Foreign;
    };
    let (Ok(of), Some(digits)) = (u32::from_str_radix(hex, 16), tail.strip_prefix('-')) else {
        return Found::Foreign;
    };
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    match digits[..end].parse() {
        Ok(seq) if of == run => Found::Ours(seq),
        _ => Found::Foreign,
    }
}

/// The value at a dotted path (`booking.title`, `items.0.text`) of a payload; `$` is the
/// payload itself.
pub fn at_path<'a>(value: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    if path == "$" {
        return Some(value);
    }
    path.split('.').try_fold(value, |v, key| match v {
        serde_json::Value::Array(items) => items.get(key.parse::<usize>().ok()?),
        v => v.get(key),
    })
}

/// Who must receive a publish's event.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Audience {
    /// Every tab in the rooms.
    #[default]
    Room,
    /// Every tab in the rooms but the one that published.
    RoomExceptSender,
    /// Only the tab that published.
    Sender,
}

/// One publish, as logged before it was sent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Publish {
    pub seq: u64,
    /// Index of its publisher in the file.
    pub publisher: usize,
    pub tab: usize,
    /// The publish's own room (order is judged per publisher and room) and every room of its
    /// audience.
    pub room: String,
    pub rooms: Vec<String>,
    pub audience: Audience,
    pub sent_us: i64,
    /// By when the app had it: its ack or HTTP answer came, or `settle` after an emit without
    /// an ack. A join sent before this may have reached the app first (none: at `sent_us`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered_us: Option<i64>,
    /// Whether the app took it (2xx, or the emit went out / was acked).
    pub ok: bool,
}

/// A tab in a room: from when the join was sent, in the room from `in_us` (its ack, or
/// `settle` after an unacknowledged join), none if the join failed; and, once it left (a
/// closing tab of `--stages`), from when the leave was sent, out of the room from `out_us`
/// (its ack, or `settle` after).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Membership {
    pub room: String,
    pub join_sent_us: i64,
    pub in_us: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leave_sent_us: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_us: Option<i64>,
    /// It ended because the connection dropped (not by a leave): from then on, until a new
    /// membership of the room takes over, what it is owed is missed while disconnected.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dropped: bool,
}

impl Membership {
    /// Where a publish sent at `sent` and in the app's hands by `answered` finds the tab: owed,
    /// grey (a join or a leave in flight), down (its connection had dropped), or not in the
    /// room. A join sent while the publish was on its way may be handled first: grey too.
    fn state_at(&self, sent: i64, answered: i64) -> Option<State> {
        if let Some(left) = self.leave_sent_us
            && left <= sent
        {
            if self.dropped {
                return self.in_us.map(|_| State::Down);
            }
            return match self.out_us {
                Some(out) if out <= sent => None,
                _ => Some(State::Grey),
            };
        }
        match self.in_us {
            Some(at) if at < sent => Some(State::Owed),
            _ if self.join_sent_us <= answered.max(sent) => Some(State::Grey),
            _ => None,
        }
    }
}

/// What the judge reads of one tab (and what a shard ships of it to `loadgen merge`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TabRecord {
    /// When it got the namespace CONNECT, and when it was in every room.
    #[serde(default)]
    pub connected_us: Option<i64>,
    #[serde(default)]
    pub joined_us: Option<i64>,
    /// When `--stages` closed it (it had left its rooms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub left_us: Option<i64>,
    pub memberships: Vec<Membership>,
    /// When its connection was down: (dropped, back; none: never back).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub down: Vec<(i64, Option<i64>)>,
    /// Receipts of this run's markers, in arrival order: (publish seq, when).
    pub receipts: Vec<(u64, i64)>,
    /// Markers of this run found by the app's replay (the app file's `replay`), which the tab
    /// asked for after it reconnected.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replayed: Vec<u64>,
}

/// A publisher as the judge and the report know it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PublisherMeta {
    pub name: String,
    /// The event each publish must cause, and the room family it goes to.
    pub event: String,
    pub room: String,
    /// Publishes per second, the whole run's.
    pub rate: f64,
}

/// What one generator of an app run did and saw, whole: a sharded run's generators ship it
/// in their reports, and `loadgen merge` judges all of them as one generator would.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct AppLog {
    pub publishers: Vec<PublisherMeta>,
    pub publishes: Vec<Publish>,
    /// (plan index, its record) of the generator's own tabs.
    pub tabs: Vec<(usize, TabRecord)>,
    /// The wall clock (µs) the timeline counts from: the start of the tabs.
    pub zero_us: i64,
    /// The wall clock (µs) publishing started at (time zero of `--stages`).
    #[serde(default)]
    pub actions_us: i64,
    /// The app file names a replay: what a tab missed while down is owed, recovered when the
    /// replay had it, else lost.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replay: bool,
}

impl AppLog {
    /// The records by plan index, `tabs` of them (tabs of no log are empty: in no room).
    pub fn records(&self, tabs: usize) -> Vec<TabRecord> {
        let mut out = vec![TabRecord::default(); tabs];
        for (i, r) in &self.tabs {
            if let Some(slot) = out.get_mut(*i) {
                *slot = r.clone();
            }
        }
        out
    }
}

/// The generator-side verdict.
#[derive(Debug, Clone)]
pub struct Judged {
    pub total: DeliveryCounts,
    /// By publisher (index in the file).
    pub by_publisher: Vec<DeliveryCounts>,
    /// (tab, publish) pairs in a join's grey zone, and how many of them arrived anyway.
    pub grey: u64,
    pub grey_received: u64,
    /// Owed pairs not received by tabs whose connection had dropped before the publish (with
    /// no replay to check; with one they are owed, recovered or lost).
    pub missed_disconnected: u64,
    /// Receipts of publishes the app refused (neither owed nor unexpected).
    pub of_failed_publishes: u64,
    /// Receipts of other shards' publishes (a partial judgement: `loadgen merge` judges them).
    pub of_other_generators: u64,
    /// Publish sent -> receipt, every first receipt of an owed pair (µs), overall and by
    /// publisher.
    pub fanout: Histogram<u64>,
    pub fanout_by_publisher: Vec<Histogram<u64>>,
    /// Publish sent -> last owed receipt, and first -> last owed receipt, per publish.
    pub action: Histogram<u64>,
    pub spread: Histogram<u64>,
    /// Lost pairs by the publish's sent time, for the timeline.
    pub lost_at_us: Vec<i64>,
    /// Per publish seq: its last owed receipt (for the timeline's action latency).
    pub last_receipt: HashMap<u64, i64>,
    /// A few lost (tab, seq) and unexpected (tab, seq) pairs.
    pub lost_examples: Vec<(usize, i64)>,
    pub unexpected_examples: Vec<(usize, i64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum State {
    Down,
    Grey,
    Owed,
}

const EXAMPLES: usize = 10;

/// How [`judge`] reads a log.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rules {
    /// The publishes of other generators (shards) are not among those judged, so a receipt of
    /// a marker not among them is theirs, not unexpected.
    pub partial: bool,
    /// The app has a replay the tabs asked after reconnecting: a pair missed while down is
    /// owed (recovered when the replay had it, else lost), not counted apart. With or without
    /// it, an owed pair not received live but found by a replay is recovered.
    pub replay: bool,
}

/// Judges `publishes` (any order) against what `tabs` logged; `publishers` is how many the
/// file has.
pub fn judge(publishes: &[Publish], tabs: &[TabRecord], publishers: usize, rules: Rules) -> Judged {
    let partial = rules.partial;
    let mut j = Judged {
        by_publisher: vec![DeliveryCounts::default(); publishers],
        fanout: histogram(),
        fanout_by_publisher: (0..publishers).map(|_| histogram()).collect(),
        action: histogram(),
        spread: histogram(),
        total: DeliveryCounts::default(),
        grey: 0,
        grey_received: 0,
        missed_disconnected: 0,
        of_failed_publishes: 0,
        of_other_generators: 0,
        lost_at_us: Vec::new(),
        last_receipt: HashMap::new(),
        lost_examples: Vec::new(),
        unexpected_examples: Vec::new(),
    };
    // Room -> its (tab, membership) pairs.
    let mut members: HashMap<&str, Vec<(usize, &Membership)>> = HashMap::new();
    for (t, tab) in tabs.iter().enumerate() {
        for m in &tab.memberships {
            members.entry(m.room.as_str()).or_default().push((t, m));
        }
    }
    // Per tab, per seq: (receipts, first).
    let received: Vec<HashMap<u64, (u64, i64)>> = tabs
        .iter()
        .map(|tab| {
            let mut map: HashMap<u64, (u64, i64)> = HashMap::new();
            for &(seq, at) in &tab.receipts {
                let e = map.entry(seq).or_insert((0, at));
                e.0 += 1;
            }
            map
        })
        .collect();
    let replayed: Vec<std::collections::HashSet<u64>> = tabs
        .iter()
        .map(|tab| tab.replayed.iter().copied().collect())
        .collect();
    let by_seq: HashMap<u64, &Publish> = publishes.iter().map(|p| (p.seq, p)).collect();
    // (tab, seq) pairs accounted for as owed or grey.
    let mut accounted: Vec<std::collections::HashSet<u64>> = vec![Default::default(); tabs.len()];
    for p in publishes.iter().filter(|p| p.ok) {
        let mut audience: BTreeMap<usize, State> = BTreeMap::new();
        if p.audience == Audience::Sender {
            let down = tabs[p.tab]
                .down
                .iter()
                .any(|&(from, until)| from <= p.sent_us && until.is_none_or(|u| p.sent_us < u));
            audience.insert(p.tab, if down { State::Down } else { State::Owed });
        } else {
            for room in &p.rooms {
                for &(t, m) in members.get(room.as_str()).into_iter().flatten() {
                    let answered = p.answered_us.unwrap_or(p.sent_us);
                    if let Some(s) = m.state_at(p.sent_us, answered) {
                        let e = audience.entry(t).or_insert(s);
                        *e = (*e).max(s);
                    }
                }
            }
            if p.audience == Audience::RoomExceptSender {
                audience.remove(&p.tab);
            }
        }
        let counts = &mut j.by_publisher[p.publisher];
        let (mut first, mut last) = (None::<i64>, None::<i64>);
        for (t, state) in audience {
            accounted[t].insert(p.seq);
            let got = received[t].get(&p.seq).copied();
            if state == State::Grey {
                j.grey += 1;
                if let Some((n, _)) = got {
                    j.grey_received += 1;
                    counts.duplicated += n - 1;
                }
                continue;
            }
            if got.is_none() && replayed[t].contains(&p.seq) {
                counts.owed += 1;
                counts.recovered += 1;
                continue;
            }
            if state == State::Down && got.is_none() && !rules.replay {
                j.missed_disconnected += 1;
                continue;
            }
            match got {
                Some((n, at)) => {
                    counts.owed += 1;
                    counts.delivered += 1;
                    counts.duplicated += n - 1;
                    let us = (at - p.sent_us).max(1) as u64;
                    let _ = j.fanout.record(us);
                    let _ = j.fanout_by_publisher[p.publisher].record(us);
                    first = Some(first.map_or(at, |f| f.min(at)));
                    last = Some(last.map_or(at, |l| l.max(at)));
                }
                None => {
                    counts.owed += 1;
                    counts.lost += 1;
                    j.lost_at_us.push(p.sent_us);
                    if j.lost_examples.len() < EXAMPLES {
                        j.lost_examples.push((t, p.seq as i64));
                    }
                }
            }
        }
        if let (Some(f), Some(l)) = (first, last) {
            let _ = j.action.record((l - p.sent_us).max(1) as u64);
            let _ = j.spread.record((l - f).max(1) as u64);
            j.last_receipt.insert(p.seq, l);
        }
    }
    for (t, tab) in tabs.iter().enumerate() {
        // Out of order: within one publisher tab and room, seqs must arrive increasing.
        let mut high: HashMap<(usize, &str), u64> = HashMap::new();
        for &(seq, _) in &tab.receipts {
            let Some(p) = by_seq.get(&seq) else { continue };
            let h = high.entry((p.tab, p.room.as_str())).or_insert(0);
            if seq < *h {
                j.by_publisher[p.publisher].out_of_order += 1;
            } else {
                *h = seq;
            }
        }
        for (&seq, &(n, _)) in &received[t] {
            if accounted[t].contains(&seq) {
                continue;
            }
            match by_seq.get(&seq) {
                Some(p) if !p.ok => j.of_failed_publishes += n,
                Some(p) => {
                    j.by_publisher[p.publisher].unexpected += n;
                    if j.unexpected_examples.len() < EXAMPLES {
                        j.unexpected_examples.push((t, seq as i64));
                    }
                }
                None if partial => j.of_other_generators += n,
                // A seq this run never published: a marker forged or mangled by the app.
                None => {
                    if let Some(c) = j.by_publisher.first_mut() {
                        c.unexpected += n;
                    }
                }
            }
        }
    }
    for c in &j.by_publisher {
        j.total.add(c);
    }
    j
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_found_inside_text_and_other_runs_are_foreign() {
        let m = marker(0xab, 42);
        assert_eq!(m, "lgm-000000ab-42");
        assert_eq!(
            find_marker(&format!("Standup {m} (room 3)"), 0xab),
            Found::Ours(42)
        );
        assert_eq!(find_marker(&m, 0xac), Found::Foreign);
        assert_eq!(find_marker("lgm-zz", 0xab), Found::Foreign);
        assert_eq!(find_marker("no marker", 0xab), Found::None);
        let v = serde_json::json!({"booking": {"title": "x"}, "items": [{"t": 1}]});
        assert_eq!(at_path(&v, "booking.title"), Some(&serde_json::json!("x")));
        assert_eq!(at_path(&v, "items.0.t"), Some(&serde_json::json!(1)));
        assert_eq!(at_path(&v, "booking.nope"), None);
        assert_eq!(
            at_path(&serde_json::json!("hi"), "$"),
            Some(&serde_json::json!("hi"))
        );
    }

    fn member(room: &str, sent: i64, in_us: Option<i64>) -> Membership {
        Membership {
            room: room.into(),
            join_sent_us: sent,
            in_us,
            leave_sent_us: None,
            out_us: None,
            dropped: false,
        }
    }

    #[test]
    fn after_a_drop_the_tab_misses_apart_until_its_new_join_makes_it_owed_again() {
        let before = Membership {
            leave_sent_us: Some(100),
            out_us: Some(100),
            dropped: true,
            ..member("r", 0, Some(10))
        };
        let again = member("r", 150, Some(160));
        let tabs = vec![TabRecord {
            memberships: vec![before, again],
            down: vec![(100, Some(150))],
            receipts: vec![(1, 60), (4, 210)],
            ..TabRecord::default()
        }];
        let publishes = [
            publish(1, 1, 50, Audience::Room),
            publish(2, 1, 120, Audience::Room),
            publish(3, 1, 155, Audience::Room),
            publish(4, 1, 200, Audience::Room),
            publish(5, 1, 210, Audience::Room),
        ];
        let j = judge(&publishes, &tabs, 1, Rules::default());
        // 1 and 4 delivered, 5 lost (in the room again), 2 missed while down, 3 grey.
        assert_eq!((j.total.owed, j.total.delivered, j.total.lost), (3, 2, 1));
        assert_eq!((j.missed_disconnected, j.grey), (1, 1));
        let sender_down = judge(
            &[publish(6, 0, 120, Audience::Sender)],
            &tabs,
            1,
            Rules::default(),
        );
        assert_eq!(
            (sender_down.missed_disconnected, sender_down.total.owed),
            (1, 0)
        );
    }

    #[test]
    fn with_a_replay_what_a_tab_missed_while_down_is_recovered_or_lost() {
        let before = Membership {
            leave_sent_us: Some(100),
            out_us: Some(100),
            dropped: true,
            ..member("r", 0, Some(10))
        };
        let tab = |replayed: Vec<u64>| TabRecord {
            memberships: vec![before.clone(), member("r", 150, Some(160))],
            down: vec![(100, Some(150))],
            // 1 live; 3 was lost live while connected; 2 and 4 were sent while it was down.
            receipts: vec![(1, 60)],
            replayed,
            ..TabRecord::default()
        };
        let publishes = [
            publish(1, 1, 50, Audience::Room),
            publish(3, 1, 70, Audience::Room),
            publish(2, 1, 110, Audience::Room),
            publish(4, 1, 130, Audience::Room),
        ];
        let replay = Rules {
            replay: true,
            ..Rules::default()
        };
        // The replay had 2 and 3 (not 4, and 9 is no publish of this judge's).
        let j = judge(&publishes, &[tab(vec![2, 3, 9])], 1, replay);
        let t = j.total;
        assert_eq!((t.owed, t.delivered, t.recovered, t.lost), (4, 1, 2, 1));
        assert_eq!(j.missed_disconnected, 0);
        assert_eq!(j.lost_examples, vec![(0, 4)]);
        // Without a replay in the file, the pairs sent while down are counted apart; a replay's
        // find still counts as recovered.
        let j = judge(&publishes, &[tab(vec![3])], 1, Rules::default());
        let t = j.total;
        assert_eq!((t.owed, t.delivered, t.recovered, t.lost), (2, 1, 1, 0));
        assert_eq!(j.missed_disconnected, 2);
    }

    #[test]
    fn a_leave_in_flight_is_grey_and_after_it_the_tab_is_out() {
        let left = Membership {
            leave_sent_us: Some(200),
            out_us: Some(220),
            ..member("r", 0, Some(10))
        };
        assert_eq!(left.state_at(150, 150), Some(State::Owed));
        assert_eq!(left.state_at(200, 200), Some(State::Grey));
        assert_eq!(left.state_at(219, 219), Some(State::Grey));
        assert_eq!(left.state_at(220, 220), None);
        let tabs = vec![TabRecord {
            memberships: vec![left],
            receipts: vec![(1, 160), (2, 210), (3, 300)],
            ..TabRecord::default()
        }];
        let publishes = [
            publish(1, 1, 150, Audience::Room),
            publish(2, 1, 205, Audience::Room),
            publish(3, 1, 250, Audience::Room),
        ];
        let j = judge(&publishes, &tabs, 1, Rules::default());
        assert_eq!((j.total.owed, j.total.delivered), (1, 1));
        assert_eq!((j.grey, j.grey_received), (1, 1));
        assert_eq!(j.total.unexpected, 1);
    }

    fn publish(seq: u64, tab: usize, sent_us: i64, audience: Audience) -> Publish {
        Publish {
            seq,
            publisher: 0,
            tab,
            room: "r".into(),
            rooms: vec!["r".into()],
            audience,
            sent_us,
            answered_us: None,
            ok: true,
        }
    }

    /// Seen in CI: a tab's join sent just after a publish was sent reached the app before the
    /// publish did, and its receipt was counted unexpected. Until the publish is answered, a
    /// join sent is in flight with it: grey; one sent after the answer is out.
    #[test]
    fn a_join_sent_while_a_publish_is_on_its_way_is_grey_and_one_after_its_answer_is_out() {
        let joined = member("r", 120, Some(130));
        assert_eq!(joined.state_at(100, 125), Some(State::Grey));
        assert_eq!(joined.state_at(100, 100), None);
        assert_eq!(joined.state_at(140, 150), Some(State::Owed));
        let tabs = vec![TabRecord {
            memberships: vec![joined],
            receipts: vec![(1, 135), (2, 136)],
            ..TabRecord::default()
        }];
        let publishes = [
            Publish {
                answered_us: Some(125),
                ..publish(1, 1, 100, Audience::Room)
            },
            Publish {
                answered_us: Some(110),
                ..publish(2, 1, 100, Audience::Room)
            },
        ];
        let j = judge(&publishes, &tabs, 1, Rules::default());
        assert_eq!((j.grey, j.grey_received), (1, 1));
        assert_eq!(
            j.total.unexpected, 1,
            "publish 2 was answered before the join was sent"
        );
    }

    #[test]
    fn owed_grey_lost_duplicated_unexpected_and_out_of_order_are_told_apart() {
        let tabs = vec![
            // 0: in the room from 10; gets 1 twice, 3 before 2.
            TabRecord {
                memberships: vec![member("r", 5, Some(10))],
                receipts: vec![(1, 110), (1, 111), (3, 130), (2, 140)],
                ..TabRecord::default()
            },
            // 1: its join was acked at 150: publishes 1-3 (sent 100-120) are grey; it got 2.
            TabRecord {
                memberships: vec![member("r", 50, Some(150))],
                receipts: vec![(2, 160)],
                ..TabRecord::default()
            },
            // 2: never joined, yet got 1; in the room; misses 2.
            TabRecord {
                memberships: vec![member("other", 5, Some(10))],
                receipts: vec![(1, 115)],
                ..TabRecord::default()
            },
            // 3: in the room, dropped at 105: misses 2 and 3 while down, got 1.
            TabRecord {
                memberships: vec![Membership {
                    leave_sent_us: Some(105),
                    out_us: Some(105),
                    dropped: true,
                    ..member("r", 5, Some(10))
                }],
                receipts: vec![(1, 104)],
                down: vec![(105, None)],
                ..TabRecord::default()
            },
        ];
        let publishes = vec![
            publish(1, 0, 100, Audience::Room),
            publish(2, 0, 110, Audience::Room),
            publish(3, 0, 120, Audience::RoomExceptSender),
        ];
        let j = judge(&publishes, &tabs, 1, Rules::default());
        // Owed: tab 0 gets 1, 2 (3 excludes the sender); tab 3 gets 1, 2, 3.
        assert_eq!(j.total.owed, 3, "{:?}", j.total);
        assert_eq!(j.total.delivered, 3);
        assert_eq!(j.total.lost, 0);
        assert_eq!(j.missed_disconnected, 2);
        assert_eq!(j.total.duplicated, 1);
        assert_eq!((j.grey, j.grey_received), (3, 1));
        // Tab 0 received 3 though it sent it (except-sender), and tab 2 never joined.
        assert_eq!(j.total.unexpected, 2);
        assert_eq!(j.total.out_of_order, 1);
        assert_eq!(j.fanout.len(), 3);
    }

    #[test]
    fn a_missing_owed_receipt_is_lost_and_a_refused_publish_owes_nothing() {
        let tabs = vec![TabRecord {
            memberships: vec![member("r", 0, Some(1))],
            receipts: vec![(2, 50)],
            ..TabRecord::default()
        }];
        let mut refused = publish(2, 0, 20, Audience::Room);
        refused.ok = false;
        let j = judge(
            &[publish(1, 0, 10, Audience::Sender), refused],
            &tabs,
            1,
            Rules::default(),
        );
        assert_eq!((j.total.owed, j.total.lost), (1, 1));
        assert_eq!(j.lost_examples, vec![(0, 1)]);
        assert_eq!((j.of_failed_publishes, j.total.unexpected), (1, 0));
    }
}
