//! Lambda glue: run a step handler under the Lambda runtime, with the step's error name as
//! `errorType` (what Step Functions `Retry`/`Catch` match), never a Rust type name.

use brfed_core::StepError;
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::future::Future;

/// A step error as the Lambda runtime reports it.
pub fn diagnostic(e: &StepError) -> Diagnostic {
    Diagnostic {
        error_type: e.name().to_string(),
        error_message: e.to_string(),
    }
}

/// Runs `handler` for every invocation: the event is deserialized into `I` (a malformed event is
/// `InvalidSpec`), the output serialized, errors reported by name.
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
            let input: I = serde_json::from_value(payload).map_err(|e| {
                let err = StepError::InvalidSpec(format!("step input does not match: {e}"));
                tracing::error!(error = %err, "bad input");
                diagnostic(&err)
            })?;
            let request_id = context.request_id.clone();
            match handler(input, context).await {
                Ok(out) => Ok(out),
                Err(e) => {
                    tracing::warn!(error.name = e.name(), error = %e, request_id, "step failed");
                    Err(diagnostic(&e))
                }
            }
        },
    ))
    .await
}

/// Initialises JSON/text logging per the Lambda log settings.
pub fn init_tracing() {
    lambda_runtime::tracing::init_default_subscriber();
}
