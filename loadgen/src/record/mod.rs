//! Record: what the generator keeps of a run while it goes, small and cheap on the hot path.
//! `ledger` what each tab received (bitmaps, no payloads); `latency` the HDR histograms;
//! `stats` the counters; `timeline` the run second by second; `saturation` whether the
//! generator itself was the bottleneck; `traces` receive spans; `metrics` and `app_metrics`
//! the loadgen's own `/metrics` during a booking run and an app run; `goose_feed` the tabs'
//! records waiting for goose's report.

pub mod app_metrics;
pub mod goose_feed;
pub mod latency;
pub mod ledger;
pub mod metrics;
pub mod saturation;
pub mod stats;
pub mod timeline;
pub mod traces;
