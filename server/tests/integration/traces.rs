//! Traces: one booking change is one trace from the HTTP request (continuing the caller's
//! `traceparent`) through the database transaction to each emission, and the event payload
//! carries the emission span's context. Checked with an in-memory exporter.
//!
//! The subscriber is the process-wide default, set once: a thread-scoped one misses spans
//! whose callsites other test threads reached first. Spans of other tests land in the
//! exporter too; this test reads only its own trace.

use opentelemetry::trace::{SpanId, TraceId, TracerProvider as _};
use std::sync::OnceLock;

use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing_subscriber::layer::SubscriberExt;

use crate::support::{Backend, Tab, spawn_app};

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

/// The in-memory exporter behind the process-wide subscriber.
fn traces() -> &'static (InMemorySpanExporter, SdkTracerProvider) {
    static TRACES: OnceLock<(InMemorySpanExporter, SdkTracerProvider)> = OnceLock::new();
    TRACES.get_or_init(|| {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::set_global_default(subscriber).expect("no other global subscriber");
        (exporter, provider)
    })
}

#[tokio::test]
async fn a_booking_change_is_one_trace_from_request_to_emission() {
    let (exporter, provider) = traces();

    let app = spawn_app(Backend::Memory).await;
    let room = app.boardroom("Ada", 4).await;
    let alice = app.token("alice");
    let mut tab = Tab::connect(&app, &alice).await.unwrap();
    assert!(tab.join(&format!("boardroom-{room}")).await.ok);
    // A trace of this test's own: other tests' spans share the exporter.
    let trace = TraceId::from(rand::random::<u128>() | 1);
    let parent = format!("00-{trace}-00f067aa0ba902b7-01");
    let res = app.book_traced(&alice, room, 9, &parent).await;
    assert_eq!(res.status(), 201);
    let (_, event) = tab.next().await;
    // The request's span ends as its response goes out, maybe just after the client has it.
    let mut spans = Vec::new();
    for _ in 0..60 {
        provider.force_flush().unwrap();
        spans = exporter.get_finished_spans().unwrap();
        let ended = |name: &str| {
            spans
                .iter()
                .any(|s| s.span_context.trace_id() == trace && s.name == name)
        };
        if ended("http.request") && ended("socketio.emit") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let in_trace: Vec<&SpanData> = spans
        .iter()
        .filter(|s| s.span_context.trace_id() == trace)
        .collect();
    let find = |name: &str| {
        in_trace
            .iter()
            .copied()
            .find(|s| s.name == name)
            .unwrap_or_else(|| {
                let names: Vec<_> = spans.iter().map(|s| s.name.to_string()).collect();
                panic!("no `{name}` span in the caller's trace; spans: {names:?}")
            })
    };
    let http = find("http.request");
    assert_eq!(
        http.parent_span_id,
        SpanId::from_hex("00f067aa0ba902b7").unwrap(),
        "continues the caller"
    );
    assert_eq!(
        attribute(http, "http.route").as_deref(),
        Some("/api/bookings")
    );
    assert_eq!(
        attribute(http, "http.response.status_code").as_deref(),
        Some("201")
    );
    let tx = find("db.transaction");
    assert_eq!(tx.parent_span_id, http.span_context.span_id());
    let emit = find("socketio.emit");
    assert_eq!(emit.parent_span_id, http.span_context.span_id());
    assert_eq!(attribute(emit, "seq"), Some(event.seq.to_string()));
    assert_eq!(attribute(emit, "recipients").as_deref(), Some("1"));
    let expected = format!("00-{}-{}-01", trace, emit.span_context.span_id());
    assert_eq!(
        event.traceparent.as_deref(),
        Some(expected.as_str()),
        "receivers continue the emission span"
    );
    tab.close().await;
}
