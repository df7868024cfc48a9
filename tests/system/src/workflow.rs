//! Helpers for tests that run brfed's workflows on the local world's Step Functions: start an
//! execution, wait for it, read its history, read the catalog.

use crate::dataplane::World;
use aws_sdk_sfn::operation::describe_execution::DescribeExecutionOutput;
use aws_sdk_sfn::types::{ExecutionStatus, HistoryEvent};
use serde_json::Value;
use std::time::{Duration, Instant};

/// Step Functions of the emulator, and the deployed state machines.
pub struct Workflows {
    /// Client.
    pub sfn: aws_sdk_sfn::Client,
    /// ARN of `volume-backup`.
    pub backup_arn: String,
    /// ARN of `volume-restore`.
    pub restore_arn: String,
}

/// The end of an execution.
#[derive(Debug, Clone)]
pub struct Finished {
    /// Execution ARN.
    pub arn: String,
    /// SUCCEEDED, FAILED, ABORTED, TIMED_OUT.
    pub status: String,
    /// Output document (on success).
    pub output: Option<Value>,
    /// Error name (on failure).
    pub error: Option<String>,
    /// Cause (on failure).
    pub cause: Option<String>,
}

impl Finished {
    /// Asserts that the execution FAILED with error `error` and a cause that mentions `part`.
    pub fn assert_failed_with(&self, error: &str, part: &str) {
        assert_eq!(self.status, "FAILED", "{self:?}");
        assert_eq!(self.error.as_deref(), Some(error), "{self:?}");
        let cause = self.cause.as_deref().unwrap_or_default();
        assert!(cause.contains(part), "the cause names {part}: {self:?}");
    }

    /// The end of execution `arn` as `DescribeExecution` tells it; `None` while it is RUNNING.
    pub fn of(arn: &str, d: &DescribeExecutionOutput) -> Option<Self> {
        (d.status() != &ExecutionStatus::Running).then(|| Self {
            arn: arn.to_string(),
            status: d.status().as_str().to_string(),
            output: d.output().and_then(|o| serde_json::from_str(o).ok()),
            error: d.error().map(String::from),
            cause: d.cause().map(String::from),
        })
    }
}

impl Workflows {
    /// From `AWS_ENDPOINT_URL`, `BRFED_VOLUME_BACKUP_STATE_MACHINE_ARN` and
    /// `BRFED_VOLUME_RESTORE_STATE_MACHINE_ARN` (default: the world's `volume-restore`).
    pub async fn from_env() -> Self {
        let sdk = aws_config::load_from_env().await;
        let backup_arn = std::env::var("BRFED_VOLUME_BACKUP_STATE_MACHINE_ARN").expect(
            "BRFED_VOLUME_BACKUP_STATE_MACHINE_ARN is not set: start the world with make world-up",
        );
        let restore_arn = std::env::var("BRFED_VOLUME_RESTORE_STATE_MACHINE_ARN")
            .unwrap_or_else(|_| state_machine("volume-restore"));
        Self {
            sfn: aws_sdk_sfn::Client::new(&sdk),
            backup_arn,
            restore_arn,
        }
    }

    /// Starts `state_machine` as [`Self::start`] does and waits for the end as [`Self::wait`]
    /// does.
    pub async fn run(
        &self,
        state_machine: &str,
        name: &str,
        input: &Value,
        timeout: Duration,
    ) -> Finished {
        let arn = self.start(state_machine, name, input).await;
        self.wait(&arn, timeout).await
    }

    /// Starts `state_machine` with execution name `name` (always named: the emulator collides unnamed ones).
    pub async fn start(&self, state_machine: &str, name: &str, input: &Value) -> String {
        let out = self
            .sfn
            .start_execution()
            .state_machine_arn(state_machine)
            .name(name)
            .input(input.to_string())
            .send()
            .await
            .expect("StartExecution");
        out.execution_arn().to_string()
    }

    /// `DescribeExecution` of `arn`.
    pub async fn describe(&self, arn: &str) -> Result<DescribeExecutionOutput, aws_sdk_sfn::Error> {
        Ok(self
            .sfn
            .describe_execution()
            .execution_arn(arn)
            .send()
            .await?)
    }

    /// Waits until the execution is no longer RUNNING.
    pub async fn wait(&self, arn: &str, timeout: Duration) -> Finished {
        let start = Instant::now();
        loop {
            let d = self.describe(arn).await.expect("DescribeExecution");
            if let Some(end) = Finished::of(arn, &d) {
                return end;
            }
            assert!(
                start.elapsed() < timeout,
                "execution {arn} still RUNNING after {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops a running execution.
    pub async fn stop(&self, arn: &str) {
        self.sfn
            .stop_execution()
            .execution_arn(arn)
            .error("TestStop")
            .cause("stopped by a test")
            .send()
            .await
            .expect("StopExecution");
    }

    /// Hands every event of the history of `arn` to `each`, in order, a page at a time; an
    /// error ends the walk (the events before it were handed over).
    pub async fn each_event(
        &self,
        arn: &str,
        mut each: impl FnMut(&HistoryEvent),
    ) -> Result<(), aws_sdk_sfn::Error> {
        let mut token = None;
        loop {
            let page = self
                .sfn
                .get_execution_history()
                .execution_arn(arn)
                .max_results(1000)
                .set_next_token(token)
                .send()
                .await?;
            page.events().iter().for_each(&mut each);
            token = page.next_token().map(String::from);
            if token.is_none() {
                return Ok(());
            }
        }
    }

    /// Names of the states entered, in order, and the number of history events.
    pub async fn entered_states(&self, arn: &str) -> (Vec<String>, usize) {
        let mut names = Vec::new();
        let mut count = 0;
        self.each_event(arn, |e| {
            count += 1;
            if let Some(d) = e.state_entered_event_details() {
                names.push(d.name().to_string());
            }
        })
        .await
        .expect("GetExecutionHistory");
        (names, count)
    }
}

/// The `status.conditions` of a catalog document (or an execution's output); panics when it has
/// none.
pub fn doc_conditions(doc: &Value) -> &[Value] {
    doc["status"]["conditions"]
        .as_array()
        .unwrap_or_else(|| panic!("no status.progress.conditions: {doc}"))
}

/// The types of [`doc_conditions`], in order.
pub fn doc_condition_types(doc: &Value) -> Vec<&str> {
    doc_conditions(doc)
        .iter()
        .map(|c| c["type"].as_str().expect("a condition type"))
        .collect()
}

/// The catalog document of `namespace/name`.
pub async fn catalog_doc(world: &World, namespace: &str, name: &str) -> Option<Value> {
    catalog_object(
        world,
        &brfed_core::backup::status::backup_key(namespace, name),
    )
    .await
}

/// The catalog document of restore `namespace/name`.
pub async fn catalog_restore_doc(world: &World, namespace: &str, name: &str) -> Option<Value> {
    catalog_object(
        world,
        &brfed_core::restore::status::restore_key(namespace, name),
    )
    .await
}

/// The JSON object `key` of the catalog bucket (`BRFED_CATALOG_BUCKET`, default the world's).
async fn catalog_object(world: &World, key: &str) -> Option<Value> {
    let bucket = std::env::var("BRFED_CATALOG_BUCKET").unwrap_or_else(|_| world.bucket.clone());
    match world
        .cloud
        .s3
        .get_object()
        .bucket(&bucket)
        .key(key)
        .send()
        .await
    {
        Ok(o) => {
            Some(serde_json::from_slice(&o.body.collect().await.unwrap().into_bytes()).unwrap())
        }
        Err(_) => None,
    }
}

/// ARN of a deployed state machine of `statemachines/{stem}.asl.json` (the emulator's account and
/// region).
pub fn state_machine(stem: &str) -> String {
    let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-west-2".into());
    format!("arn:aws:states:{region}:123456789012:stateMachine:{stem}")
}

/// Calls the emulator's control endpoint (`/_brfed/...`): `method` GET, POST, PUT or DELETE, an
/// optional JSON body; returns the JSON answer (`Null` when there is none).
pub fn emulator(method: &str, path: &str, body: Option<&Value>) -> Value {
    let url = format!(
        "{}{path}",
        std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL")
    );
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut resp = match method {
        "POST" => agent.post(&url).send(body.as_bytes()),
        "PUT" => agent.put(&url).send(body.as_bytes()),
        "DELETE" => agent.delete(&url).call(),
        _ => agent.get(&url).call(),
    }
    .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap_or(Value::Null)
}

/// The emulator's waits between the attempts of an asynchronous Lambda invocation (`PUT
/// /_brfed/async-retry`), put back to the world's default when dropped. The setting is the
/// emulator's, for every function: a test that sets it should not run beside one that counts on
/// Lambda's real waits.
pub struct RetryDelays;

impl RetryDelays {
    /// Seconds before the 2nd, 3rd, ... attempt (the last one repeats).
    pub fn set(delays: &[u64]) -> Self {
        let r = emulator(
            "PUT",
            "/_brfed/async-retry",
            Some(&serde_json::json!({ "delays": delays })),
        );
        assert!(r["delays"].is_array(), "PUT /_brfed/async-retry: {r}");
        Self
    }
}

impl Drop for RetryDelays {
    fn drop(&mut self) {
        emulator("DELETE", "/_brfed/async-retry", None);
    }
}

/// The emulator's delivery attempts of rule `rule` whose event is about execution `arn`
/// (`detail.executionArn`), in order (`GET /_brfed/deliveries`: `attempt`, `result.payload`,
/// `onFailure`, ...).
pub fn rule_deliveries(rule: &str, arn: &str) -> Vec<Value> {
    emulator("GET", &format!("/_brfed/deliveries?rule={rule}"), None)["deliveries"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|d| d["event"]["detail"]["executionArn"] == arn)
        .collect()
}
