//! Latency bookkeeping, in microseconds on the loadgen's clock, in HDR histograms sharded by
//! tab so Socket.IO callbacks rarely contend: fan-out per event type and room class; and per
//! event the first and last receipt and, for this run's own actions, when it was sent.

use std::collections::HashMap;
use std::sync::Mutex;

use booking_server::realtime::protocol::BookingEventKind;
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::plan::ROOM_CLASSES;

/// How many locks the receipts' histograms and timings are spread over: two for each core
/// (receipts come on the runtime's worker threads, one a core), 2 to 16. Each shard's grid
/// of fan-out histograms is about 400 KB, so 16 on a 2-core machine held 6.6 MB for nothing.
fn shards() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    (2 * cores).clamp(2, 16)
}
/// Largest latency kept exactly: a minute; anything slower is clamped to it.
const MAX_MICROS: u64 = 60_000_000;

/// Wall clock, µs since the Unix epoch: the clock of `emittedAt` and of every receipt.
pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// Unix seconds as RFC 3339 UTC (`2030-01-01T00:00:00Z`), without a date library.
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MICROS, 2).expect("valid histogram bounds")
}

/// A histogram in HDR histogram's V2 serialized form, base64: lossless, so the reports of
/// several generators merge exactly.
pub fn encode(h: &Histogram<u64>) -> String {
    use base64::Engine as _;
    use hdrhistogram::serialization::Serializer as _;
    let mut bytes = Vec::new();
    match hdrhistogram::serialization::V2Serializer::new().serialize(h, &mut bytes) {
        Ok(_) => base64::engine::general_purpose::STANDARD.encode(bytes),
        Err(_) => String::new(),
    }
}

/// A histogram from [`encode`]'s form (empty text: an empty histogram).
pub fn decode(text: &str) -> Result<Histogram<u64>, String> {
    use base64::Engine as _;
    if text.is_empty() {
        return Ok(histogram());
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| format!("not base64: {e}"))?;
    let h: Histogram<u64> = hdrhistogram::serialization::Deserializer::new()
        .deserialize(&mut std::io::Cursor::new(bytes))
        .map_err(|e| format!("not an HDR histogram: {e:?}"))?;
    // Widen to this loadgen's bounds so histograms of every shard add up.
    let mut wide = histogram();
    wide.add(&h).map_err(|e| format!("out of bounds: {e:?}"))?;
    Ok(wide)
}

/// The sum of histograms in [`encode`]d form (the reports of several shards, say).
pub fn decode_sum<'a>(texts: impl Iterator<Item = &'a str>) -> Result<Histogram<u64>, String> {
    let mut all = histogram();
    for text in texts {
        all.add(decode(text)?)
            .map_err(|e| format!("histograms do not add: {e:?}"))?;
    }
    Ok(all)
}

pub fn kind_index(kind: BookingEventKind) -> usize {
    BookingEventKind::ALL
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(0)
}

/// Fan-out histograms by event type and room class.
pub struct FanoutGrid(pub Vec<Vec<Histogram<u64>>>);

impl FanoutGrid {
    fn new() -> Self {
        Self(
            (0..4)
                .map(|_| (0..ROOM_CLASSES.len()).map(|_| histogram()).collect())
                .collect(),
        )
    }

    pub fn record(&mut self, kind: usize, class: usize, micros: u64) {
        let _ = self.0[kind][class].record(micros.clamp(1, MAX_MICROS));
    }

    pub fn add(&mut self, other: &FanoutGrid) {
        for (row, other_row) in self.0.iter_mut().zip(&other.0) {
            for (h, o) in row.iter_mut().zip(other_row) {
                let _ = h.add(o);
            }
        }
    }

    /// All fan-out samples merged.
    pub fn total(&self) -> Histogram<u64> {
        let mut all = histogram();
        for h in self.0.iter().flatten() {
            let _ = all.add(h);
        }
        all
    }

    pub fn by_kind(&self, kind: usize) -> Histogram<u64> {
        let mut all = histogram();
        for h in &self.0[kind] {
            let _ = all.add(h);
        }
        all
    }

    pub fn by_class(&self, class: usize) -> Histogram<u64> {
        let mut all = histogram();
        for row in &self.0 {
            let _ = all.add(&row[class]);
        }
        all
    }
}

/// Timing of one event across the tabs of this run.
#[derive(Debug, Default, Clone, Copy)]
pub struct EventTiming {
    pub first_receipt_us: Option<i64>,
    pub last_receipt_us: Option<i64>,
    /// When this run's action that caused it was sent (wall clock, µs).
    pub sent_us: Option<i64>,
}

pub struct Latency {
    fanout: Vec<Mutex<FanoutGrid>>,
    timings: Vec<Mutex<HashMap<i64, EventTiming>>>,
}

impl Default for Latency {
    fn default() -> Self {
        Self::new()
    }
}

impl Latency {
    pub fn new() -> Self {
        let shards = shards();
        Self {
            fanout: (0..shards).map(|_| Mutex::new(FanoutGrid::new())).collect(),
            timings: (0..shards).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    fn timing_shard(&self, seq: i64) -> &Mutex<HashMap<i64, EventTiming>> {
        &self.timings[seq.rem_euclid(self.timings.len() as i64) as usize]
    }

    /// A live receipt by tab `tab` of event `seq` at `now_us`, emitted at `emitted_us`.
    pub fn receipt(
        &self,
        tab: usize,
        kind: usize,
        class: usize,
        seq: i64,
        emitted_us: i64,
        now_us: i64,
    ) {
        let fanout = (now_us - emitted_us).max(0) as u64;
        self.fanout[tab % self.fanout.len()]
            .lock()
            .expect("poisoned")
            .record(kind, class, fanout);
        let mut timings = self.timing_shard(seq).lock().expect("poisoned");
        let t = timings.entry(seq).or_default();
        t.first_receipt_us = Some(t.first_receipt_us.map_or(now_us, |f| f.min(now_us)));
        t.last_receipt_us = Some(t.last_receipt_us.map_or(now_us, |l| l.max(now_us)));
    }

    /// This run sent the action that logged `seq` at `sent_us`.
    pub fn sent(&self, seq: i64, sent_us: i64) {
        let mut timings = self.timing_shard(seq).lock().expect("poisoned");
        timings.entry(seq).or_default().sent_us = Some(sent_us);
    }

    pub fn fanout(&self) -> FanoutGrid {
        let mut grid = FanoutGrid::new();
        for shard in &self.fanout {
            grid.add(&shard.lock().expect("poisoned"));
        }
        grid
    }

    pub fn timings(&self) -> HashMap<i64, EventTiming> {
        let mut all = HashMap::new();
        for shard in &self.timings {
            all.extend(
                shard
                    .lock()
                    .expect("poisoned")
                    .iter()
                    .map(|(k, v)| (*k, *v)),
            );
        }
        all
    }
}

/// Percentiles of a histogram in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct Percentiles {
    pub count: u64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        if h.is_empty() {
            return Self::default();
        }
        Self {
            count: h.len(),
            p50: ms(h.value_at_quantile(0.50)),
            p95: ms(h.value_at_quantile(0.95)),
            p99: ms(h.value_at_quantile(0.99)),
            max: ms(h.max()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_seconds_are_written_in_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_893_456_000), "2030-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400 + 3_723), "2000-02-29T01:02:03Z");
    }

    #[test]
    fn histograms_survive_their_text_form_exactly() {
        let mut h = histogram();
        for us in [1, 250, 3_000, 3_001, 90_000, 29_000_000] {
            h.record(us).unwrap();
        }
        let back = decode(&encode(&h)).unwrap();
        assert_eq!(back, h);
        assert_eq!(back.value_at_quantile(0.99), h.value_at_quantile(0.99));
        assert!(decode("").unwrap().is_empty());
        assert!(decode("not base64!").unwrap_err().contains("base64"));
        assert!(decode("aGVsbG8=").is_err());
    }

    #[test]
    fn receipts_feed_fanout_and_event_timings() {
        let lat = Latency::new();
        lat.receipt(0, 0, 1, 7, 1_000, 3_000);
        lat.receipt(1, 0, 1, 7, 1_000, 5_000);
        lat.receipt(2, 2, 0, 8, 1_000, 1_500);
        lat.sent(7, 500);
        let grid = lat.fanout();
        let p = Percentiles::of(&grid.total());
        assert_eq!(p.count, 3);
        assert!((p.max - 4.0).abs() < 0.05, "{p:?}");
        assert_eq!(Percentiles::of(&grid.by_kind(2)).count, 1);
        assert_eq!(Percentiles::of(&grid.by_class(1)).count, 2);
        let t = lat.timings()[&7];
        assert_eq!(
            (t.first_receipt_us, t.last_receipt_us, t.sent_us),
            (Some(3_000), Some(5_000), Some(500))
        );
    }

    #[test]
    fn empty_histograms_report_zeros() {
        assert_eq!(Percentiles::of(&histogram()), Percentiles::default());
    }
}
