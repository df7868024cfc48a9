//! Function configuration: read once from the environment at start-up, typed, failing fast.

use brfed_core::StepError;
use std::time::Duration;

/// Configuration shared by the brfed functions.
#[derive(Debug, Clone)]
pub struct FunctionConfig {
    /// Where the data-plane kubeconfig is: a path, or `s3://bucket/key`.
    pub kubeconfig: String,
    /// Bucket of the catalog.
    pub catalog_bucket: String,
    /// Longest time one observe invocation watches.
    pub observe_budget: Duration,
    /// Whether S3 needs path-style addressing (emulators).
    pub s3_path_style: bool,
}

impl FunctionConfig {
    /// Reads `BRFED_KUBECONFIG`, `BRFED_CATALOG_BUCKET`, `BRFED_OBSERVE_BUDGET_SECONDS` (default 20),
    /// and `BRFED_S3_PATH_STYLE` (default: true when `AWS_ENDPOINT_URL` is set).
    pub fn from_env() -> Result<Self, StepError> {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let kubeconfig = get("BRFED_KUBECONFIG")
            .or_else(|| get("KUBECONFIG"))
            .ok_or_else(|| {
                StepError::Configuration(
                    "BRFED_KUBECONFIG is not set (a path or s3://bucket/key)".into(),
                )
            })?;
        let catalog_bucket = get("BRFED_CATALOG_BUCKET")
            .or_else(|| get("BRFED_BUCKET"))
            .ok_or_else(|| StepError::Configuration("BRFED_CATALOG_BUCKET is not set".into()))?;
        let observe_budget = match get("BRFED_OBSERVE_BUDGET_SECONDS") {
            Some(v) => Duration::from_secs(v.parse().map_err(|_| {
                StepError::Configuration(format!(
                    "BRFED_OBSERVE_BUDGET_SECONDS `{v}` is not a number"
                ))
            })?),
            None => Duration::from_secs(20),
        };
        let s3_path_style = match get("BRFED_S3_PATH_STYLE") {
            Some(v) => v == "true" || v == "1",
            None => get("AWS_ENDPOINT_URL").is_some(),
        };
        Ok(Self {
            kubeconfig,
            catalog_bucket,
            observe_budget,
            s3_path_style,
        })
    }
}
