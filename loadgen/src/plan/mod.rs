//! The seeded plan of a run: which rooms each tab shows, which tabs act, how big each
//! boardroom's audience is. Pure, so a seed reproduces it exactly.

//! Plan: what a run will do, decided before it starts and pure, so a seed reproduces it.
//! This file is the booking workload's plan; `stages` is `--stages`' shape and schedule;
//! `app_file` reads and checks an app file, `template` its templates, `app` an app run's plan.

pub mod app;
pub mod app_file;
pub mod stages;
pub mod template;

use std::fmt;
use std::str::FromStr;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// The share of a run's tabs one generator runs (`--shard i/n`): tab `t` of the plan is
/// shard `t % n`'s. Generators with the same seed and flags and shards `0/n` to `n-1/n` run
/// the whole plan once between them, each its own tabs, users and actors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Default for Shard {
    fn default() -> Self {
        Shard { index: 0, count: 1 }
    }
}

impl Shard {
    pub fn owns(&self, tab: usize) -> bool {
        tab % self.count == self.index
    }

    /// The plan's index of this shard's tab `local` (its tabs are the plan's `t` with
    /// `t % n == i`, in order).
    pub fn plan_index(&self, local: usize) -> usize {
        local * self.count + self.index
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(text: &str) -> Result<Shard, String> {
        let bad = || format!("`{text}`: expected i/n with 0 <= i < n, e.g. 0/3");
        let (i, n) = text.split_once('/').ok_or_else(bad)?;
        let index: usize = i.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

/// What page a tab shows, and so which rooms it joins (plus its own `user-<id>` always).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// The dashboard: room `bookings`.
    Dashboard,
    /// The calendar of one boardroom (index into the run's boardrooms).
    Calendar(usize),
}

#[derive(Debug, Clone)]
pub struct TabPlan {
    pub page: Page,
    /// Whether this tab also makes bookings.
    pub actor: bool,
    /// Index of the server this tab talks to.
    pub host: usize,
}

/// A boardroom index in `0..n`, popular ones more often: Zipf-like, weight 1/(k+1).
pub fn popular_boardroom(rng: &mut impl Rng, n: usize) -> usize {
    let weight = |k: usize| 1.0 / (k as f64 + 1.0);
    let mut pick = rng.random::<f64>() * (0..n).map(weight).sum::<f64>();
    let mut k = 0;
    while k + 1 < n && pick >= weight(k) {
        pick -= weight(k);
        k += 1;
    }
    k
}

/// Audience size classes of a room, a bounded breakdown for reports.
pub const ROOM_CLASSES: [&str; 5] = [
    "bookings",
    "boardroom-large",
    "boardroom-medium",
    "boardroom-small",
    "user",
];
pub const CLASS_BOOKINGS: usize = 0;
pub const CLASS_USER: usize = 4;

#[derive(Debug, Clone)]
pub struct Plan {
    pub tabs: Vec<TabPlan>,
    /// Calendar tabs per boardroom index.
    pub audience: Vec<usize>,
    pub actors: usize,
}

impl Plan {
    /// Draws the plan. Boardroom popularity is Zipf-like (weight 1/(k+1)), so a few rooms are
    /// large; actors are spread at random over all tabs, at most `max_actors` of them.
    pub fn draw(
        seed: u64,
        tabs: usize,
        boardrooms: usize,
        hosts: usize,
        dashboard_share: f64,
        (actor_share, max_actors): (f64, usize),
    ) -> Plan {
        let mut rng = StdRng::seed_from_u64(seed);
        let dashboards = (tabs as f64 * dashboard_share).round() as usize;
        let actors = ((tabs as f64 * actor_share).round() as usize)
            .min(max_actors)
            .clamp(1, tabs);
        let mut order: Vec<usize> = (0..tabs).collect();
        order.shuffle(&mut rng);
        let mut is_actor = vec![false; tabs];
        for &i in &order[..actors] {
            is_actor[i] = true;
        }
        let mut audience = vec![0; boardrooms];
        let tabs = (0..tabs)
            .map(|i| {
                let page = if i < dashboards {
                    Page::Dashboard
                } else {
                    let k = popular_boardroom(&mut rng, boardrooms);
                    audience[k] += 1;
                    Page::Calendar(k)
                };
                TabPlan {
                    page,
                    actor: is_actor[i],
                    host: i % hosts.max(1),
                }
            })
            .collect();
        Plan {
            tabs,
            audience,
            actors,
        }
    }

    /// The size class of boardroom `k`'s room by its planned audience.
    pub fn boardroom_class(&self, k: usize) -> usize {
        match self.audience.get(k).copied().unwrap_or(0) {
            n if n >= 100 => 1,
            n if n >= 10 => 2,
            _ => 3,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_and_split_the_tabs_once() {
        let shards: Vec<Shard> = ["0/3", "1/3", "2/3"].map(|s| s.parse().unwrap()).to_vec();
        for tab in 0..10 {
            assert_eq!(shards.iter().filter(|s| s.owns(tab)).count(), 1);
        }
        assert_eq!(shards[1].to_string(), "1/3");
        for bad in ["3/3", "1", "a/3", "0/0", "-1/2"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_seed_reproduces_the_plan() {
        let a = Plan::draw(7, 500, 10, 2, 0.2, (0.1, 500));
        let b = Plan::draw(7, 500, 10, 2, 0.2, (0.1, 500));
        assert_eq!(a.audience, b.audience);
        let c = Plan::draw(8, 500, 10, 2, 0.2, (0.1, 500));
        assert_ne!(a.audience, c.audience);
    }

    #[test]
    fn shares_and_skew_hold() {
        let plan = Plan::draw(1, 1000, 10, 3, 0.2, (0.1, 1000));
        let dashboards = plan
            .tabs
            .iter()
            .filter(|t| t.page == Page::Dashboard)
            .count();
        assert_eq!(dashboards, 200);
        assert_eq!(plan.tabs.iter().filter(|t| t.actor).count(), 100);
        assert_eq!(plan.audience.iter().sum::<usize>(), 800);
        assert!(
            plan.audience[0] > 3 * plan.audience[9],
            "{:?}",
            plan.audience
        );
        assert_eq!(plan.boardroom_class(0), 1, "the most popular room is large");
        assert_eq!(plan.tabs.iter().filter(|t| t.host == 2).count(), 333);
    }

    #[test]
    fn actors_are_capped() {
        let plan = Plan::draw(1, 5000, 10, 1, 0.2, (0.1, 24));
        assert_eq!(plan.actors, 24);
        assert_eq!(plan.tabs.iter().filter(|t| t.actor).count(), 24);
    }

    #[test]
    fn one_tab_still_gets_an_actor() {
        let plan = Plan::draw(1, 1, 1, 1, 0.0, (0.0, 0));
        assert!(plan.tabs[0].actor);
        assert_eq!(plan.tabs[0].page, Page::Calendar(0));
    }
}
