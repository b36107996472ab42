//! Runs against runs: the figures a comparison reads from a JSON report, the regression rules
//! (`fanout_p99=20%,deliveries_per_s=10%`) that turn a baseline into gates, the check that two
//! runs had the same workload, and the side-by-side table of `loadgen compare` (text or
//! Markdown, for a pull-request comment).

use std::fmt::Write as _;
use std::path::Path;

use crate::config::{CompareArgs, Format};
use crate::report::{Gate, Report, StageReport};

/// Whether a bigger value of a figure is better or worse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Higher,
    Lower,
}

/// One figure of a report that runs are compared by.
#[derive(Debug)]
pub struct Figure {
    /// The name rules use, e.g. `fanout_p99`.
    pub key: &'static str,
    /// The name tables and gates show.
    pub label: &'static str,
    pub better: Better,
    /// Measured on the generator's clock (a saturated generator makes it unreliable).
    pub timed: bool,
    read: fn(&Report) -> f64,
    /// The same figure within one stage of a staged run; none: it is a whole-run figure.
    in_stage: Option<fn(&StageReport) -> f64>,
}

impl Figure {
    pub fn of(&self, report: &Report) -> f64 {
        (self.read)(report)
    }

    /// Within stage `stage` (1-based) when one is given and the figure has a per-stage value,
    /// else over the whole run; none when the report has no such stage.
    pub fn of_stage(&self, report: &Report, stage: Option<usize>) -> Option<f64> {
        match (stage, self.in_stage) {
            (Some(n), Some(read)) => report.stages.get(n.checked_sub(1)?).map(read),
            _ => Some(self.of(report)),
        }
    }

    /// The label, naming the stage when the figure is read within one.
    pub fn label_in(&self, stage: Option<usize>) -> String {
        match (stage, self.in_stage) {
            (Some(n), Some(_)) => format!("{} (stage {n})", self.label),
            _ => self.label.to_string(),
        }
    }
}

macro_rules! figure {
    ($key:literal, $label:literal, $better:ident, $timed:literal, |$r:ident| $read:expr) => {
        Figure {
            key: $key,
            label: $label,
            better: Better::$better,
            timed: $timed,
            read: |$r: &Report| $read as f64,
            in_stage: None,
        }
    };
    ($key:literal, $label:literal, $better:ident, $timed:literal, |$r:ident| $read:expr,
     |$s:ident| $staged:expr) => {
        Figure {
            in_stage: Some(|$s: &StageReport| $staged as f64),
            ..figure!($key, $label, $better, $timed, |$r| $read)
        }
    };
}

/// A latency percentile: lower is better, timed, and read within a stage too.
macro_rules! percentile {
    ($key:literal, $label:literal, $whole:ident, $staged:ident, $p:ident) => {
        figure!($key, $label, Lower, true, |r| r.latency_ms.$whole.$p, |s| s
            .$staged
            .$p)
    };
}

/// Every figure a rule may name, in the order tables show them.
pub const FIGURES: &[Figure] = &[
    figure!(
        "deliveries_per_s",
        "deliveries/s",
        Higher,
        true,
        |r| r.throughput.deliveries_per_s,
        |s| s.deliveries_per_s
    ),
    figure!(
        "actions_per_s",
        "actions/s",
        Higher,
        true,
        |r| r.throughput.actions_per_s,
        |s| s.actions_per_s
    ),
    percentile!("fanout_p50", "fan-out p50 ms", fanout, fanout_ms, p50),
    percentile!("fanout_p95", "fan-out p95 ms", fanout, fanout_ms, p95),
    percentile!("fanout_p99", "fan-out p99 ms", fanout, fanout_ms, p99),
    percentile!("action_p50", "action p50 ms", action, action_ms, p50),
    percentile!("action_p99", "action p99 ms", action, action_ms, p99),
    figure!("owed", "owed", Higher, false, |r| r.delivery.owed),
    figure!("lost", "lost", Lower, false, |r| r.delivery.lost, |s| s
        .lost),
    figure!("duplicated", "duplicated", Lower, false, |r| r
        .delivery
        .duplicated),
    figure!("unexpected", "unexpected", Lower, false, |r| r
        .delivery
        .unexpected),
    figure!("out_of_order", "out of order", Lower, false, |r| r
        .delivery
        .out_of_order),
    figure!("action_errors", "action errors", Lower, false, |r| r
        .actions
        .errors
        + r.actions.unavailable),
    figure!(
        "generator_saturated_s",
        "generator saturated s",
        Lower,
        false,
        |r| r.generator.saturated_s
    ),
    figure!(
        "generator_cpu_us_per_delivery",
        "generator CPU µs/delivery",
        Lower,
        false,
        |r| r.generator.cpu_s * 1e6 / r.delivery.delivered.max(1) as f64
    ),
];

/// The figure a rule names.
pub fn figure(key: &str) -> Option<&'static Figure> {
    FIGURES.iter().find(|f| f.key == key)
}

/// "At most this much worse than the baseline", for one figure.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub figure: &'static Figure,
    /// Allowed regression, in percent of the baseline's value.
    pub max_pct: f64,
}

/// The rules a baseline gets when none are given.
pub use crate::config::DEFAULT_RULES;

/// Parses `fanout_p99=20%,deliveries_per_s=10%` (the `%` is optional).
pub fn parse_rules(text: &str) -> Result<Vec<Rule>, String> {
    let names = || FIGURES.iter().map(|f| f.key).collect::<Vec<_>>().join(", ");
    let mut rules = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, pct) = part
            .split_once('=')
            .ok_or_else(|| format!("regression rule `{part}`: expected FIGURE=PERCENT%"))?;
        let figure = figure(key.trim()).ok_or_else(|| {
            format!(
                "regression rule `{part}`: unknown figure `{}` (one of: {})",
                key.trim(),
                names()
            )
        })?;
        let pct = pct.trim();
        let max_pct: f64 = pct
            .strip_suffix('%')
            .unwrap_or(pct)
            .trim()
            .parse()
            .map_err(|_| format!("regression rule `{part}`: `{pct}` is not a percentage"))?;
        if !max_pct.is_finite() || max_pct < 0.0 {
            return Err(format!(
                "regression rule `{part}`: the percentage must be 0 or more"
            ));
        }
        rules.push(Rule { figure, max_pct });
    }
    if rules.is_empty() {
        return Err("no regression rules given".into());
    }
    Ok(rules)
}

/// Change from `base` to `value` in percent of `base`; `None` when `base` is 0.
pub fn change_pct(base: f64, value: f64) -> Option<f64> {
    (base != 0.0).then(|| (value - base) / base.abs() * 100.0)
}

impl Rule {
    /// The gate this rule makes of `current` against `baseline`: its limit is the baseline's
    /// value moved by the allowed share in the worse direction (a baseline of 0 allows 0).
    pub fn gate(&self, baseline: &Report, current: &Report) -> Gate {
        self.gate_in(baseline, current, None)
    }

    /// [`Rule::gate`] on stage `stage` of both runs (`--gate-stage`, `compare --stage`) for a
    /// figure that has per-stage values. A run without that stage fails the gate, which says
    /// so (`Baseline::load` and `compare_files` refuse such runs before this).
    pub fn gate_in(&self, baseline: &Report, current: &Report, stage: Option<usize>) -> Gate {
        let read = |r: &Report| self.figure.of_stage(r, stage);
        let (Some(base), Some(observed)) = (read(baseline), read(current)) else {
            let mut gate = Gate::at_most("", 0.0, 1.0);
            gate.name = format!(
                "{} vs baseline: a run has no stage {}",
                self.figure.label_in(stage),
                stage.unwrap_or_default()
            );
            return gate;
        };
        let pct = self.max_pct / 100.0;
        let (sign, mut gate) = match self.figure.better {
            Better::Lower => ('+', Gate::at_most("", base * (1.0 + pct), observed)),
            Better::Higher => ('-', Gate::at_least("", base * (1.0 - pct), observed)),
        };
        gate.name = format!(
            "{} vs baseline ({sign}{}%)",
            self.figure.label_in(stage),
            self.max_pct
        );
        gate.baseline = Some(base);
        gate.change_pct = change_pct(base, observed);
        gate.unreliable_if(self.figure.timed && current.generator.saturated())
    }
}

/// Reads a loadgen JSON report.
pub fn read_report(path: &Path) -> Result<Report, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("could not read {}: {e}", path.display()))?;
    serde_json::from_str(&text)
        .map_err(|e| format!("{} is not a loadgen JSON report: {e}", path.display()))
}

/// What differs between two runs' workloads (`field: a vs b`): runs that differ here are not
/// comparable. A report without a workload record (older loadgen) cannot be checked.
pub fn workload_differences(a: &Report, b: &Report) -> Result<Vec<String>, String> {
    match (&a.run, &b.run) {
        (Some(ra), Some(rb)) => Ok(crate::report::Workload::differences(
            &ra.workload,
            &rb.workload,
        )),
        _ => Err("a report has no workload record (written by an older loadgen)".into()),
    }
}

/// What differs between two runs besides the workload and may still explain a difference:
/// the seed, the loadgen version, the machine's cores, the servers.
pub fn context_differences(a: &Report, b: &Report) -> Vec<String> {
    let mut out = Vec::new();
    if a.seed != b.seed {
        out.push(format!("seed: {} vs {}", a.seed, b.seed));
    }
    if let (Some(ra), Some(rb)) = (&a.run, &b.run) {
        if ra.version != rb.version {
            out.push(format!("loadgen version: {} vs {}", ra.version, rb.version));
        }
        if ra.cores != rb.cores {
            out.push(format!("cores: {} vs {}", ra.cores, rb.cores));
        }
    }
    if a.embedded_server != b.embedded_server || a.hosts.len() != b.hosts.len() {
        let servers = |r: &Report| {
            if r.embedded_server {
                "embedded".to_string()
            } else {
                format!("{} host(s)", r.hosts.len())
            }
        };
        out.push(format!("servers: {} vs {}", servers(a), servers(b)));
    }
    out
}

/// The outcome of comparing runs with the first one: the table and whether every rule held.
#[derive(Debug)]
pub struct Comparison {
    pub table: String,
    /// The table's cells, header first.
    pub rows: Vec<Vec<String>>,
    pub gates: Vec<(String, Gate)>,
}

impl Comparison {
    pub fn passed(&self) -> bool {
        self.gates.iter().all(|(_, g)| g.passed)
    }
}

/// Compares every run with the first (the baseline): one column per run, each later column
/// with its change from the baseline, and each rule judged per later run. With `stage`, the
/// figures that have per-stage values are read within that stage of every run.
pub fn compare(
    runs: &[(String, Report)],
    rules: &[Rule],
    format: Format,
    stage: Option<usize>,
) -> Comparison {
    let mut gates = Vec::new();
    let Some((_, base)) = runs.first() else {
        return Comparison {
            table: String::new(),
            rows: Vec::new(),
            gates,
        };
    };
    let ruled = |f: &Figure| rules.iter().find(|r| std::ptr::eq(r.figure, f));
    let mut head = vec!["figure".to_string()];
    head.extend(runs.iter().map(|(name, _)| name.clone()));
    let mut rows = vec![head];
    for f in FIGURES {
        let mut row = vec![match ruled(f) {
            Some(rule) => format!("{} (rule {}%)", f.label_in(stage), rule.max_pct),
            None => f.label_in(stage),
        }];
        for (i, (name, r)) in runs.iter().enumerate() {
            let Some(of_r) = f.of_stage(r, stage) else {
                row.push("no such stage".into());
                continue;
            };
            let value = number(of_r);
            if i == 0 {
                row.push(value);
                continue;
            }
            let change = f
                .of_stage(base, stage)
                .and_then(|b| change_pct(b, of_r))
                .map_or(String::new(), |c| format!(" ({c:+.1}%)"));
            let mark = match ruled(f).map(|rule| rule.gate_in(base, r, stage)) {
                Some(gate) => {
                    let mark = match (gate.passed, gate.unreliable) {
                        (true, _) => "",
                        (false, false) => " FAIL",
                        (false, true) => " FAIL (generator saturated)",
                    };
                    gates.push((name.clone(), gate));
                    mark
                }
                None => "",
            };
            row.push(format!("{value}{change}{mark}"));
        }
        rows.push(row);
    }
    let mut table = render(&rows, format);
    let verdict = if gates.iter().all(|(_, g)| g.passed) {
        "every rule held"
    } else {
        "a rule failed"
    };
    let _ = writeln!(
        table,
        "{}{verdict}: {} of {} rule checks passed",
        if format == Format::Markdown { "\n" } else { "" },
        gates.iter().filter(|(_, g)| g.passed).count(),
        gates.len()
    );
    Comparison { table, rows, gates }
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else if v.abs() >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn render(rows: &[Vec<String>], format: Format) -> String {
    let mut out = String::new();
    match format {
        Format::Markdown => {
            for (i, row) in rows.iter().enumerate() {
                let _ = writeln!(out, "| {} |", row.join(" | "));
                if i == 0 {
                    let _ = writeln!(out, "|{}", "---|".repeat(row.len()));
                }
            }
        }
        Format::Text => {
            let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
            let widths: Vec<usize> = (0..columns)
                .map(|c| {
                    rows.iter()
                        .filter_map(|r| r.get(c))
                        .map(|s| s.chars().count())
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            for row in rows {
                let cells: Vec<String> = row
                    .iter()
                    .enumerate()
                    .map(|(c, s)| format!("{s:<w$}", w = widths[c]))
                    .collect();
                let _ = writeln!(out, "{}", cells.join("  ").trim_end());
            }
        }
    }
    out
}

/// A baseline run (`--baseline`) and the rules this run is held to against it.
#[derive(Debug)]
pub struct Baseline {
    pub path: std::path::PathBuf,
    pub report: Report,
    pub rules: Vec<Rule>,
    /// `--gate-stage`: the rules' per-stage figures are read within this stage of both runs.
    pub stage: Option<usize>,
}

impl Baseline {
    /// Reads the baseline and checks, before anything runs, that its workload is this run's
    /// (unless `allow_different` says otherwise: the differences are then only printed) and
    /// that it has stage `stage` when the rules are to be judged within one.
    pub fn load(
        path: &Path,
        rules: &str,
        workload: &crate::report::Workload,
        allow_different: bool,
        stage: Option<usize>,
    ) -> Result<Baseline, String> {
        let rules = parse_rules(rules)?;
        let report = read_report(path)?;
        let Some(run) = &report.run else {
            return Err(format!(
                "--baseline {}: the report has no workload record (written by an older loadgen); run the baseline again",
                path.display()
            ));
        };
        let differences = crate::report::Workload::differences(&run.workload, workload);
        if !differences.is_empty() {
            let list = differences.join("; ");
            if !allow_different {
                return Err(format!(
                    "--baseline {}: it ran a different workload ({list}); compare like with like, or pass --allow-different-workload",
                    path.display()
                ));
            }
            eprintln!(
                "loadgen: --baseline {} ran a different workload ({list}): compared anyway (--allow-different-workload)",
                path.display()
            );
        }
        if let Some(n) = stage {
            missing_stage(&report, n).map_err(|e| format!("--baseline {}: {e}", path.display()))?;
        }
        Ok(Baseline {
            path: path.to_path_buf(),
            report,
            rules,
            stage,
        })
    }

    /// Adds one gate per rule to `report` and judges its verdict again.
    pub fn judge(&self, report: &mut Report) {
        let gates: Vec<Gate> = self
            .rules
            .iter()
            .map(|r| r.gate_in(&self.report, report, self.stage))
            .collect();
        report.gates.extend(gates);
        report.decide();
    }
}

/// An error when `report` has no stage `n` (1-based), naming the stages it has.
fn missing_stage(report: &Report, n: usize) -> Result<(), String> {
    if n >= 1 && n <= report.stages.len() {
        return Ok(());
    }
    Err(match report.stages.len() {
        0 => format!("it has no stage {n}: it was not a staged run (--stages)"),
        k => format!("it has no stage {n}: its stages are numbered 1 to {k}"),
    })
}

/// What `loadgen compare` prints and writes.
#[derive(Debug)]
pub struct Compared {
    pub text: String,
    pub passed: bool,
    pub html: String,
}

/// `loadgen compare`: reads the reports, refuses runs of different workloads (unless allowed),
/// and returns what to print and whether every rule held.
pub fn compare_files(args: &CompareArgs) -> Result<Compared, String> {
    let rules = parse_rules(&args.max_regression).map_err(|e| format!("--max-regression: {e}"))?;
    let mut runs = Vec::new();
    for path in &args.reports {
        let name = path.file_stem().map_or_else(
            || path.display().to_string(),
            |s| s.to_string_lossy().into_owned(),
        );
        runs.push((name, read_report(path)?));
    }
    if let Some(n) = args.stage {
        for (name, run) in &runs {
            missing_stage(run, n).map_err(|e| format!("--stage {n}: {name}: {e}"))?;
        }
    }
    let mut notes = Vec::new();
    let (base_name, base) = &runs[0];
    for (name, run) in &runs[1..] {
        match workload_differences(base, run) {
            Ok(differences) if differences.is_empty() => {}
            Ok(differences) => {
                let list = differences.join("; ");
                if !args.allow_different_workload {
                    return Err(format!(
                        "{name} ran a different workload from {base_name} ({list}): compare like with like, or pass --allow-different-workload"
                    ));
                }
                notes.push(format!("different workload, {base_name} vs {name}: {list}"));
            }
            Err(e) if args.allow_different_workload => {
                notes.push(format!("workload not checked, {base_name} vs {name}: {e}"));
            }
            Err(e) => {
                return Err(format!(
                    "{base_name} vs {name}: {e}; pass --allow-different-workload to compare anyway"
                ));
            }
        }
        for difference in context_differences(base, run) {
            notes.push(format!("{base_name} vs {name}: {difference}"));
        }
        if run.generator.saturated() {
            notes.push(format!(
                "{name}: the generator was saturated for {} s: its timed figures may be its own backlog",
                run.generator.saturated_s
            ));
        }
    }
    let comparison = compare(&runs, &rules, args.format, args.stage);
    let mut out = String::new();
    for note in &notes {
        let _ = writeln!(
            out,
            "{}note: {note}",
            if args.format == Format::Markdown {
                "> "
            } else {
                ""
            }
        );
    }
    if !notes.is_empty() {
        out.push('\n');
    }
    out.push_str(&comparison.table);
    let named: Vec<(String, &Report)> = runs.iter().map(|(n, r)| (n.clone(), r)).collect();
    Ok(Compared {
        text: out,
        passed: comparison.passed(),
        html: crate::report::html::compare_page(&named, &comparison.rows, comparison.passed()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{RunInfo, Workload};

    fn report(fanout_p99: f64, deliveries_per_s: f64, lost: u64) -> Report {
        let mut r = Report::default();
        r.latency_ms.fanout.p99 = fanout_p99;
        r.throughput.deliveries_per_s = deliveries_per_s;
        r.delivery.lost = lost;
        r.run = Some(RunInfo {
            workload: Workload {
                tabs: 200,
                ..Workload::default()
            },
            ..RunInfo::default()
        });
        r
    }

    #[test]
    fn rules_parse_with_or_without_percent_signs() {
        let rules = parse_rules("fanout_p99=20%, deliveries_per_s = 10").unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].figure.key, "fanout_p99");
        assert_eq!(rules[0].max_pct, 20.0);
        assert_eq!(rules[1].figure.key, "deliveries_per_s");
        assert_eq!(rules[1].max_pct, 10.0);
        assert_eq!(parse_rules(DEFAULT_RULES).unwrap().len(), 3);
    }

    #[test]
    fn bad_rules_say_what_is_wrong() {
        let unknown = parse_rules("fanout_p98=20%").unwrap_err();
        assert!(unknown.contains("unknown figure `fanout_p98`"), "{unknown}");
        assert!(
            unknown.contains("fanout_p99"),
            "lists the figures: {unknown}"
        );
        assert!(
            parse_rules("fanout_p99")
                .unwrap_err()
                .contains("FIGURE=PERCENT")
        );
        assert!(
            parse_rules("fanout_p99=lots")
                .unwrap_err()
                .contains("not a percentage")
        );
        assert!(
            parse_rules("fanout_p99=-5%")
                .unwrap_err()
                .contains("0 or more")
        );
        assert!(
            parse_rules(" , ")
                .unwrap_err()
                .contains("no regression rules")
        );
    }

    #[test]
    fn a_latency_rule_allows_its_share_above_the_baseline() {
        let rule = parse_rules("fanout_p99=20%").unwrap()[0];
        let base = report(10.0, 1000.0, 0);
        let held = rule.gate(&base, &report(11.9, 1000.0, 0));
        assert!(held.passed, "{held:?}");
        assert_eq!(held.baseline, Some(10.0));
        assert!((held.limit - 12.0).abs() < 1e-9);
        let failed = rule.gate(&base, &report(12.5, 1000.0, 0));
        assert!(!failed.passed);
        assert!((failed.change_pct.unwrap() - 25.0).abs() < 1e-9);
        assert!(failed.name.contains("fan-out p99 ms vs baseline (+20%)"));
        assert!(
            failed.figures().contains("baseline 10 (+25.0%)"),
            "{}",
            failed.figures()
        );
    }

    #[test]
    fn a_throughput_rule_allows_its_share_below_the_baseline() {
        let rule = parse_rules("deliveries_per_s=10%").unwrap()[0];
        let base = report(10.0, 1000.0, 0);
        assert!(rule.gate(&base, &report(10.0, 901.0, 0)).passed);
        assert!(rule.gate(&base, &report(10.0, 5000.0, 0)).passed);
        let failed = rule.gate(&base, &report(10.0, 899.0, 0));
        assert!(!failed.passed);
        assert!((failed.limit - 900.0).abs() < 1e-9);
        assert!(failed.name.contains("(-10%)"), "{}", failed.name);
    }

    #[test]
    fn a_baseline_of_zero_allows_zero() {
        let rule = parse_rules("lost=50%").unwrap()[0];
        let base = report(10.0, 1000.0, 0);
        assert!(rule.gate(&base, &report(10.0, 1000.0, 0)).passed);
        let failed = rule.gate(&base, &report(10.0, 1000.0, 1));
        assert!(!failed.passed);
        assert_eq!(failed.change_pct, None);
    }

    #[test]
    fn a_timed_rule_is_unreliable_when_the_generator_was_saturated() {
        let mut saturated = report(50.0, 1000.0, 0);
        saturated.generator.sampled_s = 30;
        saturated.generator.saturated_s = 10;
        assert!(saturated.generator.saturated());
        let base = report(10.0, 1000.0, 0);
        let latency = parse_rules("fanout_p99=20%").unwrap()[0].gate(&base, &saturated);
        assert!(!latency.passed && latency.unreliable);
        let loss = parse_rules("lost=0%").unwrap()[0].gate(&base, &saturated);
        assert!(!loss.unreliable);
    }

    #[test]
    fn judging_against_a_baseline_adds_gates_and_can_fail_the_verdict() {
        let baseline = Baseline {
            path: "base.json".into(),
            report: report(10.0, 1000.0, 0),
            rules: parse_rules(DEFAULT_RULES).unwrap(),
            stage: None,
        };
        let mut current = report(30.0, 1000.0, 0);
        current.verdict = "pass".into();
        baseline.judge(&mut current);
        assert_eq!(current.gates.len(), 3);
        assert_eq!(current.verdict, "fail");
        let failed: Vec<_> = current.gates.iter().filter(|g| !g.passed).collect();
        assert_eq!(failed.len(), 1);
        assert!(failed[0].name.starts_with("fan-out p99"));
    }

    /// A staged run whose stage 1 (a ramp) is slow and whose stage 2 (the steady state) has
    /// fan-out p99 `steady_p99` and `steady_per_s` deliveries a second.
    fn staged(steady_p99: f64, steady_per_s: f64) -> Report {
        let mut r = report(100.0, 500.0, 0);
        let stage = |n: u64, p99: f64, per_s: f64| {
            let mut s = StageReport {
                stage: n,
                deliveries_per_s: per_s,
                ..StageReport::default()
            };
            s.fanout_ms.p99 = p99;
            s
        };
        r.stages = vec![stage(1, 100.0, 200.0), stage(2, steady_p99, steady_per_s)];
        r
    }

    #[test]
    fn a_rule_within_a_stage_reads_that_stage_of_both_runs() {
        let rule = parse_rules("fanout_p99=20%").unwrap()[0];
        let base = staged(10.0, 1000.0);
        // The whole run is ten times the steady state's p99: only stage 2 is judged.
        let held = rule.gate_in(&base, &staged(11.0, 1000.0), Some(2));
        assert!(held.passed, "{held:?}");
        assert_eq!(held.name, "fan-out p99 ms (stage 2) vs baseline (+20%)");
        assert_eq!(held.baseline, Some(10.0));
        assert!((held.limit - 12.0).abs() < 1e-9);
        let failed = rule.gate_in(&base, &staged(13.0, 1000.0), Some(2));
        assert!(!failed.passed);
        assert!((failed.change_pct.unwrap() - 30.0).abs() < 1e-9);
        // Stage 1 of both is the same: it holds there.
        assert!(rule.gate_in(&base, &staged(13.0, 1000.0), Some(1)).passed);

        let rate = parse_rules("deliveries_per_s=10%").unwrap()[0];
        assert!(!rate.gate_in(&base, &staged(10.0, 850.0), Some(2)).passed);
        assert!(rate.gate_in(&base, &staged(10.0, 950.0), Some(2)).passed);

        // A whole-run figure stays whole-run.
        let owed = parse_rules("owed=0%").unwrap()[0];
        let gate = owed.gate_in(&base, &staged(10.0, 1000.0), Some(2));
        assert_eq!(gate.name, "owed vs baseline (-0%)");

        let unstaged = report(10.0, 1000.0, 0);
        let missing = rule.gate_in(&unstaged, &staged(10.0, 1000.0), Some(2));
        assert!(!missing.passed);
        assert!(
            missing.name.contains("a run has no stage 2"),
            "{}",
            missing.name
        );
    }

    #[test]
    fn the_table_within_a_stage_names_it_and_judges_there() {
        let runs = vec![
            ("base".to_string(), staged(10.0, 1000.0)),
            ("slow".to_string(), staged(15.0, 1000.0)),
        ];
        let rules = parse_rules("fanout_p99=20%,deliveries_per_s=10%").unwrap();
        let table = compare(&runs, &rules, Format::Text, Some(2));
        assert!(!table.passed());
        let row = |label: &str| {
            table
                .table
                .lines()
                .find(|l| l.starts_with(label))
                .unwrap_or_else(|| panic!("no {label} row in\n{}", table.table))
                .to_string()
        };
        let fanout = row("fan-out p99 ms (stage 2) (rule 20%)");
        assert!(
            fanout.contains("10  ") && fanout.contains("15 (+50.0%) FAIL"),
            "{fanout}"
        );
        assert!(row("deliveries/s (stage 2)").contains("1000 (+0.0%)"));
        assert!(
            row("owed").starts_with("owed  "),
            "whole-run figures keep their label"
        );
        // Over the whole run both have the same p99: the rule holds there.
        assert!(compare(&runs, &rules, Format::Text, None).passed());
    }

    #[test]
    fn a_stage_a_run_lacks_is_refused_by_name() {
        assert!(missing_stage(&staged(10.0, 1.0), 2).is_ok());
        let beyond = missing_stage(&staged(10.0, 1.0), 3).unwrap_err();
        assert_eq!(beyond, "it has no stage 3: its stages are numbered 1 to 2");
        let unstaged = missing_stage(&report(10.0, 1.0, 0), 1).unwrap_err();
        assert!(unstaged.contains("not a staged run"), "{unstaged}");

        let dir = std::env::temp_dir().join(format!("loadgen-stage-base-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("base.json");
        std::fs::write(&path, serde_json::to_string(&report(10.0, 1.0, 0)).unwrap()).unwrap();
        let workload = report(10.0, 1.0, 0).run.unwrap().workload;
        let load = |stage| Baseline::load(&path, DEFAULT_RULES, &workload, false, stage);
        assert_eq!(load(None).unwrap().stage, None);
        let refused = load(Some(2)).unwrap_err();
        assert!(
            refused.contains("base.json: it has no stage 2") && refused.contains("not a staged"),
            "{refused}"
        );
        let args = |stage| CompareArgs {
            reports: vec![path.clone(), path.clone()],
            max_regression: DEFAULT_RULES.into(),
            format: Format::Text,
            allow_different_workload: false,
            report_html: None,
            stage,
        };
        assert!(compare_files(&args(None)).unwrap().passed);
        let refused = compare_files(&args(Some(1))).unwrap_err();
        assert!(
            refused.starts_with("--stage 1: base: it has no stage 1"),
            "{refused}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn workloads_that_differ_are_named_field_by_field() {
        let a = report(10.0, 1000.0, 0);
        let mut b = report(10.0, 1000.0, 0);
        assert!(workload_differences(&a, &b).unwrap().is_empty());
        b.run.as_mut().unwrap().workload.tabs = 3000;
        b.run.as_mut().unwrap().workload.actions_per_s = 60.0;
        let differences = workload_differences(&a, &b).unwrap();
        assert_eq!(differences.len(), 2, "{differences:?}");
        assert!(differences.contains(&"tabs: 200 vs 3000".to_string()));
        b.run = None;
        assert!(workload_differences(&a, &b).is_err());
    }

    #[test]
    fn the_table_shows_each_run_against_the_first_and_marks_failed_rules() {
        let runs = vec![
            ("base".to_string(), report(10.0, 1000.0, 0)),
            ("slow".to_string(), report(15.0, 1000.0, 0)),
        ];
        let rules = parse_rules("fanout_p99=20%,deliveries_per_s=10%").unwrap();
        let text = compare(&runs, &rules, Format::Text, None);
        assert!(!text.passed());
        let row = text
            .table
            .lines()
            .find(|l| l.starts_with("fan-out p99 ms"))
            .unwrap();
        assert!(
            row.contains("(rule 20%)") && row.contains("15 (+50.0%) FAIL"),
            "{row}"
        );
        assert!(
            text.table
                .contains("a rule failed: 1 of 2 rule checks passed")
        );
        let markdown = compare(&runs, &rules, Format::Markdown, None);
        assert!(
            markdown
                .table
                .starts_with("| figure | base | slow |\n|---|---|---|\n")
        );
        let same = vec![runs[0].clone(), ("again".to_string(), runs[0].1.clone())];
        assert!(compare(&same, &rules, Format::Text, None).passed());
    }
}
