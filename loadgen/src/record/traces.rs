//! Receive spans: with traces on (`OTEL_EXPORTER_OTLP_ENDPOINT`, as for the server), one live
//! receipt in `--trace-every` becomes a `socketio.receive` span whose parent is the server's
//! emission span (from the event's `traceparent`), from the server's `emittedAt` to the receipt,
//! so one trace shows a booking change reaching its tabs.

use std::time::{Duration, UNIX_EPOCH};

use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};

/// The remote span a `traceparent` names.
pub fn parse_traceparent(header: &str) -> Option<SpanContext> {
    let mut parts = header.split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if version != "00" || parts.next().is_some() {
        return None;
    }
    let flags = u8::from_str_radix(flags, 16).ok()?;
    let sc = SpanContext::new(
        TraceId::from_hex(trace).ok()?,
        SpanId::from_hex(span).ok()?,
        TraceFlags::new(flags),
        true,
        TraceState::default(),
    );
    sc.is_valid().then_some(sc)
}

pub struct ReceiveSpans {
    pub provider: SdkTracerProvider,
    tracer: SdkTracer,
    pub every: u64,
}

impl ReceiveSpans {
    pub fn new(provider: SdkTracerProvider, every: u64) -> Self {
        use opentelemetry::trace::TracerProvider as _;
        let tracer = provider.tracer("booking-loadgen");
        Self {
            provider,
            tracer,
            every: every.max(1),
        }
    }

    /// Records tab `tab`'s receipt of `seq` (emitted at `emitted_us`, received at `now_us`).
    pub fn receipt(&self, traceparent: &str, tab: usize, seq: i64, emitted_us: i64, now_us: i64) {
        let Some(parent) = parse_traceparent(traceparent) else {
            return;
        };
        let at = |us: i64| UNIX_EPOCH + Duration::from_micros(us.max(0) as u64);
        let cx = Context::new().with_remote_span_context(parent);
        let span = self
            .tracer
            .span_builder("socketio.receive")
            .with_kind(SpanKind::Consumer)
            .with_start_time(at(emitted_us.min(now_us)))
            .with_attributes([
                KeyValue::new("tab", tab as i64),
                KeyValue::new("seq", seq),
                KeyValue::new("fanout_us", now_us - emitted_us),
            ])
            .start_with_context(&self.tracer, &cx);
        let mut span = span;
        opentelemetry::trace::Span::end_with_timestamp(&mut span, at(now_us));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparents_parse() {
        let sc =
            parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(sc.span_id(), SpanId::from_hex("00f067aa0ba902b7").unwrap());
        assert!(sc.is_remote() && sc.is_sampled());
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-xyz-00f067aa0ba902b7-01",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad}");
        }
    }
}
