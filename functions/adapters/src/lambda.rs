//! Lambda glue: run a step handler under the Lambda runtime, with the step's error name as
//! `errorType` (what Step Functions `Retry`/`Catch` match), never a Rust type name; and logging
//! in which every line of a step carries its execution.
//!
//! Logs: every invocation runs in the runtime's span (`requestId`, `xrayTraceId`) and in a `step`
//! span whose `execution` is the Step Functions execution ARN found in the input (see
//! [`execution_of`]); the data-plane calls of `KubeRegistry` run in a `data_plane` span with
//! `cluster`. With the function's log format `JSON` (Lambda then sets `AWS_LAMBDA_LOG_FORMAT`)
//! each line is one flat JSON object, `{"timestamp", "level", "message", <event fields>,
//! "requestId", "execution", "cluster", ...}`; otherwise it is lambda_runtime's text format, the
//! span fields in front of the message. The level is `AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG`,
//! else INFO.

use brfed_core::StepError;
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::fmt;
use std::future::Future;
use tracing::field::{Field, Visit};
use tracing::{Event, Instrument, Subscriber};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// A step error as the Lambda runtime reports it.
pub fn diagnostic(e: &StepError) -> Diagnostic {
    Diagnostic {
        error_type: e.name().to_string(),
        error_message: e.to_string(),
    }
}

/// The Step Functions execution ARN a step's input carries: `execution` (start steps),
/// `backup.execution`, `restore.execution`, `deletion.execution` (the context of the later
/// steps), or `detail.executionArn` (the status-change event of `backup-abort`).
pub fn execution_of(input: &Value) -> Option<&str> {
    [
        &input["execution"],
        &input["backup"]["execution"],
        &input["restore"]["execution"],
        &input["deletion"]["execution"],
        &input["detail"]["executionArn"],
    ]
    .into_iter()
    .find_map(|v| v.as_str().filter(|s| !s.is_empty()))
}

/// Runs `handler` for every invocation: the event is deserialized into `I` (a malformed event is
/// `InvalidSpec`), the output serialized, errors reported by name; all inside a `step` span
/// carrying the input's execution.
pub async fn serve<I, O, F, Fut>(handler: F) -> Result<(), lambda_runtime::Error>
where
    I: DeserializeOwned + Send + 'static,
    O: Serialize + Send + 'static,
    F: Fn(I, lambda_runtime::Context) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O, StepError>> + Send,
{
    let handler = &handler;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            let (payload, context) = event.into_parts();
            let span = tracing::info_span!("step", execution = tracing::field::Empty);
            if let Some(execution) = execution_of(&payload) {
                span.record("execution", execution);
            }
            async move {
                let input: I = serde_json::from_value(payload).map_err(|e| {
                    let err = StepError::InvalidSpec(format!("step input does not match: {e}"));
                    tracing::error!(error = %err, "bad input");
                    diagnostic(&err)
                })?;
                // Boxed: a step's future can be deep enough that the compiler's layout query of
                // the whole service future overflows its depth limit.
                match Box::pin(handler(input, context)).await {
                    Ok(out) => Ok(out),
                    Err(e) => {
                        tracing::warn!(error.name = e.name(), error = %e, "step failed");
                        Err(diagnostic(&e))
                    }
                }
            }
            .instrument(span)
            .await
        },
    ))
    .await
}

/// The whole `main` of a step function: logging per the Lambda log settings ([`init_tracing`]),
/// then on a multi-threaded tokio runtime the clients and configuration built once by `load`
/// (`Runtime::load` or `SchedulerRuntime::load`: a failure ends the cold start, named), and
/// [`serve`] with `step` given its own handle on them (a clone of an `Arc`) for every invocation.
pub fn run<R, L, I, O, F, Fut>(
    load: impl FnOnce() -> L,
    step: F,
) -> Result<(), lambda_runtime::Error>
where
    R: Clone + Send + Sync + 'static,
    L: Future<Output = Result<R, StepError>>,
    I: DeserializeOwned + Send + 'static,
    O: Serialize + Send + 'static,
    F: Fn(R, I, lambda_runtime::Context) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O, StepError>> + Send,
{
    init_tracing();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            let runtime = load().await?;
            serve(move |input, ctx| step(runtime.clone(), input, ctx)).await
        })
}

/// Initialises logging per the Lambda log settings: [`FlatJson`] lines when
/// `AWS_LAMBDA_LOG_FORMAT` is `JSON`, else lambda_runtime's default (text) subscriber.
pub fn init_tracing() {
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    if !json {
        lambda_runtime::tracing::init_default_subscriber();
        return;
    }
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|l| l.parse::<tracing::level_filters::LevelFilter>().ok())
        .unwrap_or(tracing::level_filters::LevelFilter::INFO);
    tracing_subscriber::fmt()
        .with_max_level(level)
        .fmt_fields(JsonFields::new())
        .event_format(FlatJson)
        .with_writer(std::io::stdout)
        .init();
}

/// One JSON object per line with the event's fields and those of every span it is in at the
/// top level (inner spans win over outer ones, the event's own fields over all): what CloudWatch
/// Logs Insights discovers as fields, and what Lambda reads `level` and `timestamp` from.
#[derive(Debug, Clone, Copy, Default)]
pub struct FlatJson;

impl<S> FormatEvent<S, JsonFields> for FlatJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = Map::new();
        line.insert(
            "timestamp".into(),
            chrono::Utc::now()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                .into(),
        );
        line.insert("level".into(), event.metadata().level().as_str().into());
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let ext = span.extensions();
                if let Some(fields) = ext.get::<FormattedFields<JsonFields>>()
                    && let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(fields)
                {
                    line.extend(fields);
                }
            }
        }
        event.record(&mut Fields(&mut line));
        writeln!(writer, "{}", Value::Object(line))
    }
}

/// Collects an event's fields as JSON values.
struct Fields<'a>(&'a mut Map<String, Value>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.insert(field.name().into(), value.to_string().into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn lines(buffer: &Buffer) -> Vec<Value> {
        String::from_utf8(buffer.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn the_execution_is_found_in_every_step_input_shape() {
        let arn = "arn:aws:states:us-west-2:1:execution:volume-backup:bk1";
        for input in [
            json!({"input": {}, "execution": arn}),
            json!({"backup": {"name": "bk1", "execution": arn}, "failure": null}),
            json!({"restore": {"execution": arn}}),
            json!({"deletion": {"execution": arn}, "cursor": 0}),
            json!({"detail": {"executionArn": arn, "status": "ABORTED"}}),
        ] {
            assert_eq!(execution_of(&input), Some(arn), "{input}");
        }
        assert_eq!(execution_of(&json!({"namespace": "br", "name": "s"})), None);
        assert_eq!(execution_of(&json!({"execution": ""})), None);
    }

    #[test]
    fn a_json_line_carries_the_execution_and_the_cluster_at_the_top_level() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(JsonFields::new())
            .event_format(FlatJson)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let invoke = tracing::info_span!("Lambda runtime invoke", requestId = "r-1");
            let _i = invoke.enter();
            let step = tracing::info_span!("step", execution = tracing::field::Empty);
            step.record("execution", "arn:x");
            let _s = step.enter();
            tracing::info!(detail_type = "VolumeBackup Complete", "event sent");
            let plane = tracing::info_span!("data_plane", cluster = "dp2");
            let _p = plane.enter();
            tracing::warn!(
                what = "get Backup",
                attempts = 3_u64,
                "data plane call failed"
            );
        });
        let lines = lines(&buffer);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[0]["level"], "INFO");
        assert_eq!(lines[0]["message"], "event sent");
        assert_eq!(lines[0]["detail_type"], "VolumeBackup Complete");
        assert_eq!(lines[0]["execution"], "arn:x");
        assert_eq!(lines[0]["requestId"], "r-1");
        assert!(lines[0].get("cluster").is_none());
        assert_eq!(lines[1]["level"], "WARN");
        assert_eq!(lines[1]["execution"], "arn:x");
        assert_eq!(lines[1]["cluster"], "dp2");
        assert_eq!(lines[1]["attempts"], 3);
        assert!(
            chrono::DateTime::parse_from_rfc3339(lines[1]["timestamp"].as_str().unwrap()).is_ok(),
            "Lambda takes an RFC 3339 timestamp"
        );
    }
}
