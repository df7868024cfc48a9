//! Emitting the [`crate::signals`] of an ended backup, restore or deletion, from the thin Lambda
//! crates after their core step returned: the EMF line on stdout (Lambda ships stdout to
//! CloudWatch Logs, which extracts the metrics: no SDK call) and the event on EventBridge
//! (`PutEvents` on `BRFED_EVENT_BUS`, default `default`). Neither may change a step's result: a
//! failure to emit is logged (`warn`) and the step returns what it returned. Delivery is at least
//! once: a step that Step Functions retries after it succeeded emits again (the `execution` in
//! the event and in the EMF document tells the two apart).

use crate::Runtime;
use crate::signals::{self, EVENT_SOURCE, EndedDoc, Event, Signal};
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_smithy_types::error::display::DisplayErrorContext;
use brfed_core::StepError;
use brfed_core::backup::spec::BackupRequest;
use brfed_core::backup::status::VolumeBackupDoc;
use brfed_core::backup::status::vbk;
use brfed_core::backup::steps::AbortReport;
use brfed_core::backup::steps::{BackupContext, FinalizeOutput};
use brfed_core::catalog::Catalog;
use brfed_core::delete::status::DeleteResult;
use brfed_core::delete::steps::{DeleteContext, DeleteStepInput};
use brfed_core::execution::ExecutionStatusChange;
use brfed_core::member::MemberView;
use brfed_core::ports::{DataPlanes, MemberKind, Observation};
use brfed_core::restore::steps::RestoreFinalizeOutput;
use brfed_core::schedule::steps::SweepOutput;
use chrono::Utc;
use std::io::Write;
use std::time::Duration;

/// Longest wait for `PutEvents` (the SDK's own retries included): the step has done its work.
const PUT_TIMEOUT: Duration = Duration::from_secs(5);

/// The failure names only `backup-abort` writes.
const ABORT_FAILURES: &[&str] = &["ExecutionAborted", "ExecutionTimedOut", "ExecutionFailed"];

/// brfed's events on one EventBridge bus.
#[derive(Clone, Debug)]
pub struct EventBus {
    client: aws_sdk_eventbridge::Client,
    bus: String,
}

impl EventBus {
    /// Events on bus `bus` (a name or an ARN).
    pub fn new(sdk: &aws_config::SdkConfig, bus: &str) -> Self {
        Self {
            client: aws_sdk_eventbridge::Client::new(sdk),
            bus: bus.into(),
        }
    }

    /// Puts one event (source [`EVENT_SOURCE`]; the execution ARN as its resource).
    pub async fn put(&self, event: &Event) -> Result<(), String> {
        let detail = serde_json::to_string(&event.detail).map_err(|e| e.to_string())?;
        let resource = Some(event.detail.execution.as_str()).filter(|e| e.starts_with("arn:"));
        self.put_raw(EVENT_SOURCE, &event.detail_type, detail, resource)
            .await
    }

    /// Puts one event of `source` and `detail_type` (`detail` a JSON object as text).
    pub async fn put_raw(
        &self,
        source: &str,
        detail_type: &str,
        detail: String,
        resource: Option<&str>,
    ) -> Result<(), String> {
        let mut entry = PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(source)
            .detail_type(detail_type)
            .detail(detail);
        if let Some(r) = resource {
            entry = entry.resources(r);
        }
        let out = self
            .client
            .put_events()
            .entries(entry.build())
            .send()
            .await
            .map_err(|e| DisplayErrorContext(e).to_string())?;
        match out.entries().first() {
            Some(e) if e.error_code().is_some() || out.failed_entry_count() > 0 => Err(format!(
                "{}: {}",
                e.error_code().unwrap_or("FailedEntry"),
                e.error_message().unwrap_or_default()
            )),
            _ => Ok(()),
        }
    }
}

/// What the thin Lambda crates call after their step returned ([`Runtime::signals`]).
pub struct Emitter<'a> {
    runtime: &'a Runtime,
}

impl<'a> Emitter<'a> {
    /// Emitting with `runtime`'s event bus and catalog.
    pub fn new(runtime: &'a Runtime) -> Self {
        Self { runtime }
    }

    /// `backup-finalize`: the backup ended `Complete` or `Failed`.
    pub async fn backup_ended(&self, out: &FinalizeOutput) {
        self.ended(&out.document, out.error.as_deref(), out.cause.as_deref())
            .await;
    }

    /// A backup or a restore ended, with the finalize step's `error` and `cause`.
    async fn ended(&self, doc: &impl EndedDoc, error: Option<&str>, cause: Option<&str>) {
        let stack = self.runtime.catalog_bucket();
        self.emit(signals::ended(doc, error, cause, stack, Utc::now()))
            .await;
    }

    /// `backup-abort`: when this invocation marked the backup `Failed` (it tore it down, or
    /// failed after marking it; a retry then finds it ended and emits nothing), the backup's
    /// `VolumeBackup Failed` and metrics, read back from the catalog.
    pub async fn backup_aborted(
        &self,
        event: &ExecutionStatusChange,
        result: &Result<AbortReport, StepError>,
    ) {
        if result.as_ref().is_ok_and(|r| r.action != "torn-down") {
            return;
        }
        let Some(req) = event
            .detail
            .input
            .as_deref()
            .and_then(|i| serde_json::from_str(i).ok())
            .and_then(|v| BackupRequest::from_value(v).ok())
        else {
            return;
        };
        let env = self.runtime.env();
        let catalog: Catalog<'_, _, VolumeBackupDoc> = Catalog::new(env.store, env.catalog_bucket);
        match catalog.get(&req.metadata.namespace, req.name()).await {
            Ok(Some((doc, _)))
                if doc.brfed.execution == event.detail.execution_arn
                    && doc.status.progress.phase.as_deref() == Some(vbk::FAILED)
                    && doc.status.progress.conditions.iter().any(|c| {
                        c.type_ == vbk::FAILED
                            && c.reason
                                .as_deref()
                                .is_some_and(|r| ABORT_FAILURES.contains(&r))
                    }) =>
            {
                self.ended(&doc, None, None).await;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "no signal: the catalog document is unreadable"),
        }
    }

    /// `restore-finalize`: the restore ended `Complete` or `Failed`.
    pub async fn restore_ended(&self, out: &RestoreFinalizeOutput) {
        self.ended(&out.document, out.error.as_deref(), out.cause.as_deref())
            .await;
    }

    /// `backup-delete-finish`, before its step: when this deletion was asked (`requestedAt` of
    /// the catalog's deletion record, which the step removes when the backup is cleaned).
    pub async fn deletion_requested_at(&self, input: &DeleteStepInput) -> Option<String> {
        let ctx = input.deletion.as_ref()?;
        let env = self.runtime.env();
        let catalog: Catalog<'_, _, VolumeBackupDoc> = Catalog::new(env.store, env.catalog_bucket);
        match catalog.get(&ctx.namespace, &ctx.name).await {
            Ok(doc) => doc
                .and_then(|(d, _)| d.brfed.deletion)
                .filter(|d| d.execution == ctx.execution && !d.requested_at.is_empty())
                .map(|d| d.requested_at),
            Err(e) => {
                tracing::warn!(error = %e, "cleanup time unknown: the catalog document is unreadable");
                None
            }
        }
    }

    /// `backup-delete-finish`, after its step: the deletion ended `Cleaned` or `CleanFailed`.
    pub async fn cleanup_ended(
        &self,
        ctx: Option<&DeleteContext>,
        out: &DeleteResult,
        requested_at: Option<&str>,
    ) {
        if let Some(ctx) = ctx {
            let stack = self.runtime.catalog_bucket();
            self.emit(signals::cleanup_ended(
                ctx,
                out,
                requested_at,
                stack,
                Utc::now(),
            ))
            .await;
        }
    }

    async fn emit(&self, signal: Option<Signal>) {
        let Some(s) = signal else { return };
        if let Err(e) = write_line(&s.metrics.line()) {
            tracing::warn!(error = %e, "metrics not written");
        }
        let detail_type = s.event.detail_type.as_str();
        match tokio::time::timeout(PUT_TIMEOUT, self.runtime.events().put(&s.event)).await {
            Ok(Ok(())) => tracing::info!(detail_type, "event sent"),
            Ok(Err(e)) => tracing::warn!(detail_type, error = %e, "event not sent"),
            Err(_) => tracing::warn!(
                detail_type,
                timeout_s = PUT_TIMEOUT.as_secs(),
                "event not sent: PutEvents timed out"
            ),
        }
    }
}

/// `backup-observe`, after its step returned: [`signals::gc_paused`] of the backup, from one
/// read of its initialize member (the step's own observations stay inside the core step), with
/// this function's name (`AWS_LAMBDA_FUNCTION_NAME`) as the alarm's dimension. Writes nothing
/// when the member does not hold the pause or cannot be read, and never changes the step's
/// result. Not an event: only the metric line.
pub async fn gc_paused(runtime: &Runtime, ctx: &BackupContext) {
    let Some(init) = ctx.members.first() else {
        return;
    };
    let obs = runtime
        .env()
        .planes
        .observe_members(
            MemberKind::Backup,
            std::slice::from_ref(init),
            Duration::ZERO,
            &|_: &[Observation]| true,
        )
        .await;
    let view = match obs.first() {
        Some(Observation::Present(obj)) => MemberView::from_object(obj),
        Some(Observation::Unreachable(e)) => {
            tracing::warn!(error = %e, "GC pause not measured: the initialize member cannot be read");
            return;
        }
        _ => return,
    };
    let function =
        std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "backup-observe".to_string());
    if let Some(m) = signals::gc_paused(ctx, &view, &function, Utc::now())
        && let Err(e) = write_line(&m.line())
    {
        tracing::warn!(error = %e, "GC pause metric not written");
    }
}

/// `retention-sweep`, after its step returned: [`signals::schedule_rpo`] of its output, by
/// `stack` = the catalog bucket (as the ends' metrics), one line each. Only metrics, never an
/// event; a line that cannot be written is logged and the sweep's result is unchanged.
pub fn schedule_rpo(stack: &str, out: &SweepOutput) {
    for doc in signals::schedule_rpo(out, stack, Utc::now()) {
        if let Err(e) = write_line(&doc.line()) {
            tracing::warn!(error = %e, "RPO metric not written");
        }
    }
}

/// Writes `line` to stdout as one whole line: CloudWatch Logs reads each line as one log event.
fn write_line(line: &str) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")?;
    stdout.flush()
}
