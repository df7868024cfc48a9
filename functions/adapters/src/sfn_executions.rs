//! [`Executions`] on Step Functions.

use aws_sdk_sfn::error::ProvideErrorMetadata;
use brfed_core::StepError;
use brfed_core::ports::{ExecutionFacts, Executions, Started};
use serde_json::Value;

/// Step Functions executions, named.
#[derive(Clone, Debug)]
pub struct SfnExecutions {
    client: aws_sdk_sfn::Client,
}

impl SfnExecutions {
    /// From the shared AWS config.
    pub fn new(sdk: &aws_config::SdkConfig) -> Self {
        Self {
            client: aws_sdk_sfn::Client::new(sdk),
        }
    }

    /// The underlying client.
    pub fn client(&self) -> &aws_sdk_sfn::Client {
        &self.client
    }
}

/// ARN of execution `name` of `state_machine`
/// (`arn:aws:states:R:A:stateMachine:M` -> `arn:aws:states:R:A:execution:M:name`).
pub fn execution_arn(state_machine: &str, name: &str) -> String {
    brfed_core::names::execution_arn(state_machine, name)
}

fn unavailable(what: &str, e: impl std::fmt::Debug) -> StepError {
    StepError::StepFunctionsUnavailable(format!("{what}: {e:?}"))
}

impl Executions for SfnExecutions {
    async fn start(
        &self,
        state_machine: &str,
        name: &str,
        input: &Value,
    ) -> Result<Started, StepError> {
        // Step Functions answers a repeated start of a running execution (same name and input)
        // with that execution, as if new: ask first, so that a repeat is reported as one. Two
        // concurrent first starts still make one execution.
        if self.status(state_machine, name).await?.is_some() {
            return Ok(Started::AlreadyExists);
        }
        match self
            .client
            .start_execution()
            .state_machine_arn(state_machine)
            .name(name)
            .input(input.to_string())
            .send()
            .await
        {
            Ok(out) => Ok(Started::New(out.execution_arn().to_string())),
            Err(e) if e.code() == Some("ExecutionAlreadyExists") => Ok(Started::AlreadyExists),
            Err(e)
                if e.code().is_some_and(|c| {
                    c.starts_with("Invalid") || c == "StateMachineDoesNotExist"
                }) =>
            {
                Err(StepError::Configuration(format!(
                    "StartExecution {name} on {state_machine}: {}",
                    e.message().unwrap_or_default()
                )))
            }
            Err(e) => Err(unavailable(&format!("StartExecution {name}"), e)),
        }
    }

    async fn status(&self, state_machine: &str, name: &str) -> Result<Option<String>, StepError> {
        Ok(self.describe(state_machine, name).await?.map(|f| f.status))
    }

    async fn describe(
        &self,
        state_machine: &str,
        name: &str,
    ) -> Result<Option<ExecutionFacts>, StepError> {
        match self
            .client
            .describe_execution()
            .execution_arn(execution_arn(state_machine, name))
            .send()
            .await
        {
            Ok(d) => Ok(Some(ExecutionFacts {
                status: d.status().as_str().to_string(),
                input: d.input().map(String::from),
                error: d.error().map(String::from),
                cause: d.cause().map(String::from),
            })),
            Err(e) if e.code() == Some("ExecutionDoesNotExist") => Ok(None),
            Err(e) => Err(unavailable(&format!("DescribeExecution {name}"), e)),
        }
    }
}
