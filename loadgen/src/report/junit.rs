//! `--report-junit`: the gates as a JUnit XML test suite, one test case per gate, so a CI
//! system shows a failed gate the way it shows a failed test.

use std::fmt::Write as _;

use crate::report::{Report, escape};

/// The report's gates as one `<testsuite>`; a failed gate is a `<failure>` whose message says
/// what was observed against what limit (and the baseline, for a regression rule).
pub fn junit(report: &Report) -> String {
    let failures = report.gates.iter().filter(|g| !g.passed).count();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"loadgen\" tests=\"{}\" failures=\"{failures}\" time=\"{:.3}\">",
        report.gates.len(),
        report.duration_s
    );
    let _ = writeln!(
        out,
        "  <testsuite name=\"loadgen gates\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\" time=\"{:.3}\">",
        report.gates.len(),
        report.duration_s
    );
    let _ = writeln!(out, "    <properties>");
    let mut property = |name: &str, value: &str| {
        let _ = writeln!(
            out,
            "      <property name=\"{}\" value=\"{}\"/>",
            escape(name),
            escape(value)
        );
    };
    property("verdict", &report.verdict);
    property("seed", &report.seed.to_string());
    property("tabs", &report.tabs.to_string());
    property(
        "deliveries_per_s",
        &format!("{:.1}", report.throughput.deliveries_per_s),
    );
    property(
        "fanout_p99_ms",
        &format!("{:.2}", report.latency_ms.fanout.p99),
    );
    if let Some(run) = &report.run {
        property("loadgen_version", &run.version);
        property("cores", &run.cores.to_string());
    }
    let _ = writeln!(out, "    </properties>");
    for gate in &report.gates {
        let _ = write!(
            out,
            "    <testcase classname=\"loadgen.gates\" name=\"{}\" time=\"0\">",
            escape(&gate.name)
        );
        if !gate.passed {
            let _ = write!(
                out,
                "\n      <failure message=\"{}\" type=\"gate\"/>\n    ",
                escape(&format!("{}: {}", gate.name, gate.figures()))
            );
        }
        if gate.unreliable {
            let _ = write!(
                out,
                "\n      <system-out>{}</system-out>\n    ",
                escape(
                    "measured while the generator was saturated: the figure may be the generator's own backlog"
                )
            );
        }
        let _ = writeln!(out, "</testcase>");
    }
    let _ = writeln!(out, "  </testsuite>");
    let _ = writeln!(out, "</testsuites>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Gate;

    #[test]
    fn each_gate_is_a_test_case_and_a_failed_one_says_why() {
        let mut report = Report {
            verdict: "fail".into(),
            duration_s: 30.0,
            ..Report::default()
        };
        report.gates.push(Gate::at_most("lost", 0.0, 0.0));
        let mut slow = Gate::at_most("fan-out p99 ms vs baseline (+20%)", 12.0, 15.0);
        slow.baseline = Some(10.0);
        slow.change_pct = Some(50.0);
        report.gates.push(slow);
        report
            .gates
            .push(Gate::at_most("a <tricky> & \"quoted\" name", 1.0, 2.0));
        let xml = junit(&report);
        let doc = roxmltree::Document::parse(&xml).expect("well-formed XML");
        let suite = doc
            .descendants()
            .find(|n| n.has_tag_name("testsuite"))
            .unwrap();
        assert_eq!(suite.attribute("tests"), Some("3"));
        assert_eq!(suite.attribute("failures"), Some("2"));
        let cases: Vec<_> = suite
            .children()
            .filter(|n| n.has_tag_name("testcase"))
            .collect();
        assert_eq!(cases.len(), 3);
        assert_eq!(cases[0].attribute("name"), Some("lost"));
        assert!(!cases[0].children().any(|n| n.has_tag_name("failure")));
        let failure = cases[1]
            .children()
            .find(|n| n.has_tag_name("failure"))
            .unwrap();
        assert_eq!(
            failure.attribute("message"),
            Some("fan-out p99 ms vs baseline (+20%): observed 15 limit 12 baseline 10 (+50.0%)")
        );
        assert_eq!(
            cases[2].attribute("name"),
            Some("a <tricky> & \"quoted\" name")
        );
    }
}
