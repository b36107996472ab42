//! `--stages`: a run shaped in stages, as k6 and Artillery users write them, e.g.
//! `30s:500,2m:5000,30s:5000@50,1m:0`. Each stage ramps the tab count linearly from the last
//! stage's target (0 at first) to its own over its duration; `@RATE` ramps the action rate the
//! same way (from `--actions-per-sec` at first), and a stage without one keeps the last rate.
//!
//! Time zero is the start of actions. Tab `k` of the plan is open while the target count is
//! above `k`: the plan's first tabs open first and close last. A closing tab takes a cutoff,
//! the last committed `seq`, `--settle` before its time, stays in its rooms meanwhile, then
//! leaves them and disconnects; it is owed each room's events up to the cutoff or the leave's
//! ack (the `seq` its server had emitted through), the lower. The count may rise and then
//! fall, not rise again: a tab that closed does not come back.
//!
//! Actions follow the stages' rate whether or not the acting tab's socket is open (its
//! requests go over REST), so the rate is what the stages say. The report has one row per
//! stage: what was sent, delivered and lost in it, and its fan-out and action latency, so a
//! steady state is judged apart from the ramps (`--gate-stage`); those rows are made in
//! `report::stages`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// One stage: over `duration`, tabs ramp to `tabs`, and the action rate to `rate` (if given).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stage {
    pub duration: Duration,
    pub tabs: usize,
    pub rate: Option<f64>,
}

/// The stages of a run, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Stages(pub Vec<Stage>);

impl FromStr for Stages {
    type Err = String;

    fn from_str(text: &str) -> Result<Stages, String> {
        let mut stages = Vec::new();
        for (i, part) in text.split(',').map(str::trim).enumerate() {
            let bad = |why: &str| {
                format!(
                    "stage {} `{part}`: {why} (expected DURATION:TABS or DURATION:TABS@ACTIONS_PER_SEC, e.g. 2m:5000@50)",
                    i + 1
                )
            };
            let (duration, rest) = part.split_once(':').ok_or_else(|| bad("no `:`"))?;
            let duration = booking_server::config::parse_duration(duration.trim())
                .map_err(|e| bad(&e.to_string()))?;
            let (tabs, rate) = match rest.split_once('@') {
                Some((tabs, rate)) => (tabs, Some(rate)),
                None => (rest, None),
            };
            let tabs = tabs
                .trim()
                .parse::<usize>()
                .map_err(|_| bad("the tab count is not a whole number"))?;
            let rate = rate
                .map(|r| r.trim().parse::<f64>())
                .transpose()
                .map_err(|_| bad("the action rate is not a number"))?;
            if rate.is_some_and(|r| !r.is_finite() || r < 0.0) {
                return Err(bad("the action rate must not be negative"));
            }
            stages.push(Stage {
                duration,
                tabs,
                rate,
            });
        }
        let stages = Stages(stages);
        stages.check()?;
        Ok(stages)
    }
}

impl fmt::Display for Stages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            write!(f, "{sep}{}s:{}", s.duration.as_secs_f64(), s.tabs)?;
            if let Some(rate) = s.rate {
                write!(f, "@{rate}")?;
            }
        }
        Ok(())
    }
}

impl Stages {
    fn check(&self) -> Result<(), String> {
        if self.total().is_zero() {
            return Err("the stages last no time at all".into());
        }
        if self.peak_tabs() == 0 {
            return Err("no stage has a tab".into());
        }
        let mut fell = None;
        let mut last = 0;
        for (i, s) in self.0.iter().enumerate() {
            if s.tabs < last {
                fell = fell.or(Some(i));
            } else if s.tabs > last
                && let Some(at) = fell
            {
                return Err(format!(
                    "stage {}: the tab count rises again after it fell in stage {} (a tab that closed does not come back: run the shapes as separate runs)",
                    i + 1,
                    at + 1
                ));
            }
            last = s.tabs;
        }
        Ok(())
    }

    pub fn total(&self) -> Duration {
        self.0.iter().map(|s| s.duration).sum()
    }

    pub fn peak_tabs(&self) -> usize {
        self.0.iter().map(|s| s.tabs).max().unwrap_or(0)
    }

    /// The highest action rate of any stage, starting from `base` (`--actions-per-sec`).
    pub fn peak_rate(&self, base: f64) -> f64 {
        self.0.iter().filter_map(|s| s.rate).fold(base, f64::max)
    }

    /// Actions the stages offer in all, starting from `base` actions per second.
    pub fn offered(&self, base_rate: f64) -> f64 {
        self.0
            .iter()
            .zip(self.targets(base_rate))
            .map(|(s, ((_, r0), (_, r1)))| (r0 + r1) / 2.0 * s.duration.as_secs_f64())
            .sum()
    }

    /// Each stage's (start, end) from time zero.
    pub fn bounds(&self) -> Vec<(Duration, Duration)> {
        let mut at = Duration::ZERO;
        self.0
            .iter()
            .map(|s| {
                let start = at;
                at += s.duration;
                (start, at)
            })
            .collect()
    }

    /// Each stage's (tabs, actions per second) at its start and at its end.
    pub fn targets(&self, base_rate: f64) -> Vec<((usize, f64), (usize, f64))> {
        let (mut tabs, mut rate) = (0, base_rate);
        self.0
            .iter()
            .map(|s| {
                let from = (tabs, rate);
                tabs = s.tabs;
                rate = s.rate.unwrap_or(rate);
                (from, (tabs, rate))
            })
            .collect()
    }

    /// When plan tab `k` opens and when it closes, from time zero (`None`: it stays open to
    /// the end); `None` when no stage has more than `k` tabs.
    pub fn window(&self, k: usize) -> Option<(Duration, Option<Duration>)> {
        let mut up = None;
        let stages = self
            .bounds()
            .into_iter()
            .zip(&self.0)
            .zip(self.targets(0.0));
        for (((start, _), stage), ((a, _), (b, _))) in stages {
            let at = |share: f64| start + stage.duration.mul_f64(share);
            if up.is_none() && a <= k && k < b {
                up = Some(at((k - a) as f64 / (b - a) as f64));
            }
            if let Some(up) = up
                && b <= k
                && k < a
            {
                return Some((up, Some(at((a - k) as f64 / (a - b) as f64))));
            }
        }
        up.map(|up| (up, None))
    }

    /// When action ticket `n` (0-based, of the whole plan) is due, from time zero: when the
    /// stages' rate, ramping linearly, has offered `n + 0.5` actions. `None` past the end.
    pub fn ticket_at(&self, n: u64, base_rate: f64) -> Option<Duration> {
        let mut left = n as f64 + 0.5;
        let stages = self
            .bounds()
            .into_iter()
            .zip(&self.0)
            .zip(self.targets(base_rate));
        for (((start, _), stage), ((_, r0), (_, r1))) in stages {
            let d = stage.duration.as_secs_f64();
            let offered = (r0 + r1) / 2.0 * d;
            if offered > 0.0 && left <= offered {
                // r0 t + (r1 - r0) t^2 / 2d = left, in the form that stays exact as r1 -> r0.
                let a = (r1 - r0) / (2.0 * d);
                let t = 2.0 * left / (r0 + (r0 * r0 + 4.0 * a * left).max(0.0).sqrt());
                return Some(start + Duration::from_secs_f64(t.clamp(0.0, d)));
            }
            left -= offered;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn stages_parse_and_bad_ones_say_why() {
        let s: Stages = "30s:500, 2m:5000,30s:5000@50,1m:0".parse().unwrap();
        assert_eq!(s.0.len(), 4);
        assert_eq!(s.total(), secs(240.0));
        assert_eq!(s.peak_tabs(), 5000);
        assert_eq!(s.0[2].rate, Some(50.0));
        assert_eq!(s.peak_rate(20.0), 50.0);
        assert_eq!(s.to_string(), "30s:500,120s:5000,30s:5000@50,60s:0");
        assert_eq!(s.to_string().parse::<Stages>().unwrap(), s);
        for (bad, why) in [
            ("30s", "no `:`"),
            ("30x:5", "stage 1 `30x:5`"),
            ("30s:five", "not a whole number"),
            ("30s:5@fast", "not a number"),
            ("30s:5@-1", "must not be negative"),
            ("0s:5", "no time"),
            ("10s:0", "no stage has a tab"),
            ("10s:5,10s:2,10s:4", "stage 3: the tab count rises again"),
        ] {
            let e = bad.parse::<Stages>().unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn tabs_open_in_plan_order_and_close_in_reverse() {
        let s: Stages = "10s:10,10s:10,5s:0".parse().unwrap();
        // Rising 0 -> 10 over 10 s: tab k opens at k seconds.
        assert_eq!(s.window(0), Some((secs(0.0), Some(secs(25.0)))));
        assert_eq!(s.window(3).unwrap().0, secs(3.0));
        // Falling 10 -> 0 over 5 s from 20 s: tab 9 closes first, at 20.5 s; tab 0 at the end.
        assert_eq!(s.window(9), Some((secs(9.0), Some(secs(20.5)))));
        assert_eq!(s.window(10), None);
        let held: Stages = "0s:4,10s:4".parse().unwrap();
        assert_eq!(
            held.window(3),
            Some((secs(0.0), None)),
            "a jump opens at once"
        );
        // At every instant the open tabs are as many as the target count (within one).
        let shape: Stages = "7s:13,3s:20,9s:6".parse().unwrap();
        for tenth in 0..190 {
            let t = secs(tenth as f64 / 10.0 + 0.05);
            let open = (0..30)
                .filter_map(|k| shape.window(k))
                .filter(|(up, down)| *up <= t && down.is_none_or(|d| t < d))
                .count() as f64;
            let target = target_at(&shape, t.as_secs_f64());
            assert!(
                (open - target).abs() <= 1.0,
                "t {t:?}: {open} open, {target}"
            );
        }
    }

    fn target_at(s: &Stages, t: f64) -> f64 {
        let mut from = 0.0;
        for ((start, end), stage) in s.bounds().into_iter().zip(&s.0) {
            let (a, b) = (start.as_secs_f64(), end.as_secs_f64());
            if t < b {
                return from + (stage.tabs as f64 - from) * (t - a) / (b - a);
            }
            from = stage.tabs as f64;
        }
        from
    }

    #[test]
    fn tickets_follow_the_ramped_rate() {
        // 10/s flat for 10 s, then a ramp to 30/s over 10 s (200 actions), then 30/s for 10 s.
        let s: Stages = "10s:5,10s:5@30,10s:5".parse().unwrap();
        let due = |n| s.ticket_at(n, 10.0).map(|d| d.as_secs_f64());
        assert!((due(0).unwrap() - 0.05).abs() < 1e-9);
        assert!((due(99).unwrap() - 9.95).abs() < 1e-9);
        // Offered by t in the ramp: 10 t + t^2 (t from 10 s); 100 of them at t = 8.54 s.
        let t = due(199).unwrap() - 10.0;
        assert!((10.0 * t + t * t - 99.5).abs() < 1e-6, "{t}");
        assert!((due(300).unwrap() - 20.0).abs() < 0.04);
        assert_eq!(due(600), None, "600 actions offered in all");
        let count = (0..1000).take_while(|n| due(*n).is_some()).count();
        assert_eq!(count, 600);
        assert_eq!(s.offered(10.0), 600.0);
        // Tickets are due in order.
        let times: Vec<f64> = (0..600).map(|n| due(n).unwrap()).collect();
        assert!(times.windows(2).all(|w| w[0] < w[1]));
        // A ramp down to nothing offers its triangle and no more.
        let down: Stages = "10s:1@0".parse().unwrap();
        let count = (0..100)
            .take_while(|n| down.ticket_at(*n, 4.0).is_some())
            .count();
        assert_eq!(count, 20);
        assert_eq!("10s:1@0".parse::<Stages>().unwrap().ticket_at(0, 0.0), None);
    }
}
