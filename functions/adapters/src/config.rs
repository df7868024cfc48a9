//! Function configuration: read once from the environment at start-up, typed, failing fast.

use brfed_core::StepError;
use brfed_core::backup::spec::BackupLocations;
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
    /// Longest time one invocation of a long step (snapshot deletion) works before it returns
    /// with a cursor; below the function's timeout.
    pub work_budget: Duration,
    /// EventBridge bus of brfed's events (a name or an ARN).
    pub event_bus: String,
    /// Where the stack may keep backups (`BRFED_BACKUP_LOCATIONS`: the template's
    /// BackupBucketName/BackupPrefix pairs as `bucket/folder/,...`); `None` when it is not set.
    pub backup_locations: Option<BackupLocations>,
}

impl FunctionConfig {
    /// Reads `BRFED_KUBECONFIG`, `BRFED_CATALOG_BUCKET`, `BRFED_OBSERVE_BUDGET_SECONDS` (default 20),
    /// `BRFED_S3_PATH_STYLE` (default: true when `AWS_ENDPOINT_URL` is set) and
    /// `BRFED_WORK_BUDGET_SECONDS` (default 600), `BRFED_EVENT_BUS` (default `default`), and
    /// `BRFED_BACKUP_LOCATIONS` (optional).
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
        let seconds = |k: &str, default: u64| -> Result<Duration, StepError> {
            match get(k) {
                Some(v) => v.parse().map(Duration::from_secs).map_err(|_| {
                    StepError::Configuration(format!("{k} `{v}` is not a number of seconds"))
                }),
                None => Ok(Duration::from_secs(default)),
            }
        };
        let observe_budget = seconds("BRFED_OBSERVE_BUDGET_SECONDS", 20)?;
        let work_budget = seconds("BRFED_WORK_BUDGET_SECONDS", 600)?;
        let s3_path_style = match get("BRFED_S3_PATH_STYLE") {
            Some(v) => v == "true" || v == "1",
            None => get("AWS_ENDPOINT_URL").is_some(),
        };
        let backup_locations = get("BRFED_BACKUP_LOCATIONS")
            .map(|v| {
                BackupLocations::parse(&v)
                    .map_err(|e| StepError::Configuration(format!("BRFED_BACKUP_LOCATIONS: {e}")))
            })
            .transpose()?;
        Ok(Self {
            kubeconfig,
            backup_locations,
            catalog_bucket,
            observe_budget,
            s3_path_style,
            work_budget,
            event_bus: get("BRFED_EVENT_BUS").unwrap_or_else(|| "default".into()),
        })
    }
}
