//! `smoke-fn`: the smallest Lambda of the local world, used to prove that Step Functions
//! (moto's ASL interpreter), the invoke forwarding and the event pump reach real binaries.
//!
//! Input (a JSON object; anything else is wrapped as `{"input": <value>}`):
//! - `"fail": "SomeName"` → the invocation fails with a `Diagnostic` whose `error_type` is
//!   exactly `SomeName` (what Step Functions' Retry/Catch `ErrorEquals` match on).
//! - `"sleepMs": N` → sleeps N milliseconds first (concurrency and timeout checks).
//! - `"echoEnv": ["NAME", ...]` → adds `"env": {"NAME": value-or-null}` (env propagation checks).
//! - `"echoPid": true` → adds `"pid"` (which instance served the call).
//!
//! Otherwise it returns its input with `"echoed": true` added.

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::{Map, Value};
use std::time::Duration;

async fn handler(event: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
    let mut obj = match event.payload {
        Value::Object(map) => map,
        other => {
            let mut map = Map::new();
            map.insert("input".to_owned(), other);
            map
        }
    };

    if let Some(ms) = obj.get("sleepMs").and_then(Value::as_u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }

    if let Some(name) = obj.get("fail").and_then(Value::as_str) {
        return Err(Diagnostic {
            error_type: name.to_owned(),
            error_message: format!("smoke-fn was asked to fail with {name}"),
        });
    }

    if let Some(names) = obj.get("echoEnv").and_then(Value::as_array) {
        let env: Map<String, Value> = names
            .iter()
            .filter_map(Value::as_str)
            .map(|name| {
                let value = std::env::var(name)
                    .map(Value::String)
                    .unwrap_or(Value::Null);
                (name.to_owned(), value)
            })
            .collect();
        obj.insert("env".to_owned(), Value::Object(env));
    }

    if obj.get("echoPid").and_then(Value::as_bool) == Some(true) {
        obj.insert("pid".to_owned(), Value::from(std::process::id()));
    }

    obj.insert("echoed".to_owned(), Value::Bool(true));
    Ok(Value::Object(obj))
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::run(service_fn(handler)).await
}
