//! W3C trace context for booking changes. A change continues the caller's `traceparent`
//! header when it sent one, or starts a trace; the events it causes carry a child context, so
//! a receiver can link what it got to the request that caused it. With OpenTelemetry on, the
//! request's own span is that context.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use rand::Rng;

/// The trace context a request's events will carry.
#[derive(Debug, Clone)]
pub struct TraceContext {
    pub trace_id: String,
    pub span_id: String,
}

impl TraceContext {
    /// Parses a `traceparent` (version 00) header.
    pub fn parse(header: &str) -> Option<(String, String)> {
        let mut parts = header.trim().split('-');
        let (version, trace_id, parent_id, _flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
        let valid = version == "00"
            && hex(trace_id, 32)
            && hex(parent_id, 16)
            && trace_id.bytes().any(|b| b != b'0')
            && parts.next().is_none();
        valid.then(|| {
            (
                trace_id.to_ascii_lowercase(),
                parent_id.to_ascii_lowercase(),
            )
        })
    }

    /// A new span in the caller's trace, or in a new one.
    pub fn child_of(header: Option<&str>) -> Self {
        let mut rng = rand::rng();
        let trace_id = header
            .and_then(Self::parse)
            .map(|(trace, _)| trace)
            .unwrap_or_else(|| format!("{:032x}", rng.random::<u128>() | 1));
        let span_id = format!("{:016x}", rng.random::<u64>() | 1);
        Self { trace_id, span_id }
    }

    pub fn traceparent(&self) -> String {
        format!("00-{}-{}-01", self.trace_id, self.span_id)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for TraceContext {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        // With traces on, the request's own span (which already continues the header).
        let current = super::otel::traceparent_of(&tracing::Span::current());
        if let Some((trace_id, span_id)) = current.as_deref().and_then(Self::parse) {
            return Ok(Self { trace_id, span_id });
        }
        let header = parts
            .headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok());
        Ok(Self::child_of(header))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_parent_keeps_its_trace_id() {
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let ctx = TraceContext::child_of(Some(parent));
        assert_eq!(ctx.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(ctx.span_id, "00f067aa0ba902b7");
        assert!(TraceContext::parse(&ctx.traceparent()).is_some());
    }

    #[test]
    fn invalid_parents_start_a_new_trace() {
        for bad in [
            "",
            "00-xyz-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert!(TraceContext::parse(bad).is_none(), "{bad}");
            let ctx = TraceContext::child_of(Some(bad));
            assert_eq!(ctx.trace_id.len(), 32);
        }
    }
}
