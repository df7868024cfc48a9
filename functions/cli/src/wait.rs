//! Starting executions and `--wait`: poll the execution until it ends, showing where it is (the
//! state it entered last, and what the catalog document says) on a spinner, or as one line per
//! change when stderr is not a terminal.

use crate::error::CliError;
use crate::render::note;
use aws_sdk_sfn::error::DisplayErrorContext;
use aws_sdk_sfn::types::ExecutionStatus;
use brfed_adapters::SfnExecutions;
use brfed_adapters::sfn_executions::execution_arn;
use brfed_core::ports::{Executions, Started};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use std::future::Future;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// How often a wait asks.
const POLL: Duration = Duration::from_secs(1);

/// An execution that ended.
#[derive(Debug, Clone)]
pub struct Finished {
    /// `SUCCEEDED`, `FAILED`, `ABORTED`, `TIMED_OUT`.
    pub status: String,
    /// Output (on success).
    pub output: Option<Value>,
    /// Error name (otherwise).
    pub error: Option<String>,
    /// Cause (otherwise).
    pub cause: Option<String>,
}

impl Finished {
    /// Whether it succeeded.
    pub fn succeeded(&self) -> bool {
        self.status == "SUCCEEDED"
    }

    /// `Error: cause` of a failed execution.
    pub fn failure(&self) -> String {
        match (&self.error, &self.cause) {
            (Some(e), Some(c)) if !c.is_empty() => format!("{e}: {c}"),
            (Some(e), _) => e.clone(),
            (None, Some(c)) => c.clone(),
            (None, None) => format!("the execution ended {}", self.status),
        }
    }
}

fn unavailable(what: &str, e: impl std::error::Error) -> CliError {
    CliError::failed(
        "StepFunctionsUnavailable",
        format!("{what}: {}", DisplayErrorContext(e)),
    )
}

/// Starts execution `name` of `state_machine`; an execution of that name that exists already is
/// `exists` (e.g. `BackupExists`), with its status.
pub async fn start(
    executions: &SfnExecutions,
    state_machine: &str,
    name: &str,
    input: &Value,
    exists: &str,
) -> Result<String, CliError> {
    match executions.start(state_machine, name, input).await? {
        Started::New(arn) => Ok(arn),
        Started::AlreadyExists => {
            let status = executions
                .status(state_machine, name)
                .await?
                .unwrap_or_else(|| "unknown".into());
            Err(CliError::failed(
                exists,
                format!(
                    "an execution named `{name}` exists already ({status}): {}; names are used once",
                    execution_arn(state_machine, name)
                ),
            ))
        }
    }
}

/// Describes an execution: `None` while it runs.
async fn ended(sfn: &aws_sdk_sfn::Client, arn: &str) -> Result<Option<Finished>, CliError> {
    let d = sfn
        .describe_execution()
        .execution_arn(arn)
        .send()
        .await
        .map_err(|e| unavailable(&format!("DescribeExecution {arn}"), e))?;
    if d.status() == &ExecutionStatus::Running {
        return Ok(None);
    }
    Ok(Some(Finished {
        status: d.status().as_str().to_string(),
        output: d.output().and_then(|o| serde_json::from_str(o).ok()),
        error: d.error().map(String::from),
        cause: d.cause().map(String::from),
    }))
}

/// The state the execution entered last (best effort: `None` when history cannot be read). The
/// newest events first, and of those the one with the highest id: an emulator that ignores
/// `reverseOrder` still answers right for a history of up to 100 events.
async fn current_state(sfn: &aws_sdk_sfn::Client, arn: &str) -> Option<String> {
    let page = sfn
        .get_execution_history()
        .execution_arn(arn)
        .reverse_order(true)
        .max_results(100)
        .send()
        .await
        .ok()?;
    page.events()
        .iter()
        .filter_map(|e| {
            e.state_entered_event_details()
                .map(|d| (e.id(), d.name().to_string()))
        })
        .max_by_key(|(id, _)| *id)
        .map(|(_, name)| name)
}

/// Waits until execution `arn` ends, at most `timeout`. `progress` says what the catalog
/// shows (called once a second).
pub async fn wait<F, Fut>(
    sfn: &aws_sdk_sfn::Client,
    arn: &str,
    what: &str,
    timeout: Option<Duration>,
    mut progress: F,
) -> Result<Finished, CliError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<String>>,
{
    let tty = std::io::stderr().is_terminal();
    let bar = if tty {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    } else {
        ProgressBar::hidden()
    };
    let started = Instant::now();
    let mut last = String::new();
    let result = loop {
        match ended(sfn, arn).await {
            Ok(Some(done)) => break Ok(done),
            Ok(None) => {}
            Err(e) => break Err(e),
        }
        let state = current_state(sfn, arn).await;
        let shown = progress().await;
        let msg = [Some(what.to_string()), state, shown]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" · ");
        if msg != last {
            if tty {
                bar.set_message(msg.clone());
            } else {
                note(&format!("{:>4}s {msg}", started.elapsed().as_secs()));
            }
            last = msg;
        }
        if let Some(t) = timeout
            && started.elapsed() >= t
        {
            break Err(CliError::failed(
                "WaitTimedOut",
                format!(
                    "{what} is still running after {}; it goes on (execution {arn}); \
                     follow it with describe",
                    humantime::format_duration(t)
                ),
            ));
        }
        tokio::time::sleep(POLL).await;
    };
    bar.finish_and_clear();
    result
}
