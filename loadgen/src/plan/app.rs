//! The seeded plan of an app run: each tab's variables, auth, headers and query, the rooms it
//! is in (and who puts it there), which tabs publish for each publisher, and when each
//! publish is due. Pure, so a seed reproduces it exactly.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use crate::plan::app_file::{AppFile, JoinedBy};
use crate::plan::template::{render, render_value};

/// One tab's share of the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct TabPlan {
    pub index: usize,
    /// The CSV row the tab takes its `{csv.*}` from (rows cycle).
    pub csv_row: Option<usize>,
    pub auth: Option<Value>,
    pub headers: Vec<(String, String)>,
    pub query: Vec<(String, String)>,
    pub rooms: Vec<RoomPick>,
}

/// A room a tab is in.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomPick {
    /// Index of its family in the file's `rooms`.
    pub family: usize,
    pub n: u64,
    pub name: String,
    pub joined_by: JoinedBy,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PublisherPlan {
    /// The tabs that publish for it, in ticket order.
    pub tabs: Vec<usize>,
    /// Publishes per second.
    pub rate: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub tabs: Vec<TabPlan>,
    pub publishers: Vec<PublisherPlan>,
}

/// What templates of tab `index` read, besides the names a caller adds.
pub struct TabVars<'a> {
    pub index: usize,
    pub run: &'a str,
    pub csv: Option<&'a Csv>,
    pub csv_row: Option<usize>,
}

impl TabVars<'_> {
    pub fn get(&self, name: &str) -> Option<String> {
        match name {
            "tab" => Some(self.index.to_string()),
            "run" => Some(self.run.to_string()),
            _ => {
                let column = name.strip_prefix("csv.")?;
                self.csv?.value(self.csv_row?, column).map(str::to_string)
            }
        }
    }
}

/// The rows of `auth_csv`: a header line of column names, then one row per tab.
#[derive(Debug, Clone, PartialEq)]
pub struct Csv {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Csv {
    /// Plain comma-separated text (no quoting), blank lines skipped.
    pub fn parse(text: &str) -> Result<Csv, String> {
        let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
        let header = lines.next().ok_or("is empty: it needs a header line")?;
        let columns: Vec<String> = header.split(',').map(|c| c.trim().to_string()).collect();
        let mut rows = Vec::new();
        for (i, line) in lines.enumerate() {
            let row: Vec<String> = line.split(',').map(|c| c.trim().to_string()).collect();
            if row.len() != columns.len() {
                return Err(format!(
                    "line {}: {} values for {} columns",
                    i + 2,
                    row.len(),
                    columns.len()
                ));
            }
            rows.push(row);
        }
        if rows.is_empty() {
            return Err("has a header and no rows".into());
        }
        Ok(Csv { columns, rows })
    }

    pub fn value(&self, row: usize, column: &str) -> Option<&str> {
        let c = self.columns.iter().position(|x| x == column)?;
        Some(self.rows[row % self.rows.len()][c].as_str())
    }
}

/// Plans `tabs` tabs of `file` (of which this shard runs those with `index % count == shard`,
/// the caller's choice) with `seed`; `default_rate` is a publisher's rate when the file gives
/// none.
pub fn plan(
    file: &AppFile,
    csv: Option<&Csv>,
    tabs: usize,
    seed: u64,
    run: &str,
    default_rate: f64,
) -> Result<Plan, String> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(tabs);
    for index in 0..tabs {
        let csv_row = csv.map(|c| index % c.rows.len());
        let vars = TabVars {
            index,
            run,
            csv,
            csv_row,
        };
        let get = |name: &str| vars.get(name);
        let auth = match &file.auth {
            Some(a) => Some(render_value(a, &get).map_err(|e| format!("auth: {e}"))?),
            None => None,
        };
        let pairs = |map: &std::collections::BTreeMap<String, String>, what: &str| {
            map.iter()
                .map(|(k, v)| {
                    Ok((
                        k.clone(),
                        render(v, &get).map_err(|e| format!("{what}.{k}: {e}"))?,
                    ))
                })
                .collect::<Result<Vec<_>, String>>()
        };
        let headers = pairs(&file.headers, "headers")?;
        let query = pairs(&file.query, "query")?;
        let mut rooms = Vec::new();
        for (family, r) in file.rooms.iter().enumerate() {
            if !rng.random_bool(r.share) {
                continue;
            }
            let picks = sample(&mut rng, r.count as usize, r.per_tab as usize);
            let mut ns: Vec<u64> = picks.into_iter().map(|i| i as u64 + 1).collect();
            ns.sort_unstable();
            for n in ns {
                let name = render(&r.name, &|k| match k {
                    "n" => Some(n.to_string()),
                    k => vars.get(k),
                })
                .map_err(|e| format!("rooms[{family}].name: {e}"))?;
                rooms.push(RoomPick {
                    family,
                    n,
                    name,
                    joined_by: r.joined_by,
                });
            }
        }
        out.push(TabPlan {
            index,
            csv_row,
            auth,
            headers,
            query,
            rooms,
        });
    }
    let publishers = file
        .publishers
        .iter()
        .map(|p| {
            let k = ((p.share * tabs as f64).round() as usize).clamp(1, tabs);
            let mut chosen: Vec<usize> = sample(&mut rng, tabs, k).into_iter().collect();
            chosen.sort_unstable();
            PublisherPlan {
                tabs: chosen,
                rate: p.rate.unwrap_or(default_rate),
            }
        })
        .collect();
    Ok(Plan {
        tabs: out,
        publishers,
    })
}

impl PublisherPlan {
    /// When each publish is due, from the start of publishing, over `window`: tickets at
    /// `i / rate`, handed to the publisher's tabs in turn.
    pub fn tickets(&self, window: Duration) -> impl Iterator<Item = (Duration, usize)> + '_ {
        let count = (window.as_secs_f64() * self.rate).floor() as usize;
        (0..count).map(move |i| {
            (
                Duration::from_secs_f64(i as f64 / self.rate),
                self.tabs[i % self.tabs.len()],
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> AppFile {
        crate::plan::app_file::parse(text, "app.yaml").unwrap()
    }

    const CHAT: &str = r#"
name: chat
auth: { name: "tab-{tab}" }
rooms:
  - { name: "room-{n}", count: 5, per_tab: 2 }
  - { name: "user:tab-{tab}", joined_by: server }
publishers:
  - share: 0.5
    rate: 4
    room: "room-{n}"
    emit: { event: message, args: [{ room: "{room}", text: "{marker}" }] }
    expect: { event: message, marker: text, audience: room-except-sender }
"#;

    #[test]
    fn a_seed_reproduces_the_plan_and_each_tab_gets_its_rooms_and_auth() {
        let f = file(CHAT);
        let a = plan(&f, None, 10, 7, "r", 20.0).unwrap();
        assert_eq!(a, plan(&f, None, 10, 7, "r", 20.0).unwrap());
        assert_ne!(a, plan(&f, None, 10, 8, "r", 20.0).unwrap());
        for t in &a.tabs {
            assert_eq!(
                t.auth,
                Some(serde_json::json!({"name": format!("tab-{}", t.index)}))
            );
            let own: Vec<_> = t.rooms.iter().filter(|r| r.family == 0).collect();
            assert_eq!(own.len(), 2);
            assert!(own[0].n < own[1].n && own.iter().all(|r| (1..=5).contains(&r.n)));
            assert_eq!(own[0].name, format!("room-{}", own[0].n));
            let user = t.rooms.iter().find(|r| r.family == 1).unwrap();
            assert_eq!(
                (user.name.as_str(), user.joined_by),
                (format!("user:tab-{}", t.index).as_str(), JoinedBy::Server)
            );
        }
        assert_eq!(a.publishers[0].tabs.len(), 5);
        let tickets: Vec<_> = a.publishers[0].tickets(Duration::from_secs(2)).collect();
        assert_eq!(tickets.len(), 8);
        assert_eq!(tickets[1].0, Duration::from_millis(250));
        assert_eq!(tickets[5].1, a.publishers[0].tabs[0]);
    }

    #[test]
    fn csv_rows_cycle_over_tabs_and_bad_csv_is_refused() {
        let csv = Csv::parse("user,token\nann,a1\nbob,b2\n").unwrap();
        assert_eq!(csv.value(2, "user"), Some("ann"));
        assert_eq!(csv.value(1, "token"), Some("b2"));
        assert_eq!(csv.value(1, "nope"), None);
        assert!(Csv::parse("a,b\n1\n").unwrap_err().contains("line 2"));
        assert!(Csv::parse("a,b\n").unwrap_err().contains("no rows"));
    }
}
