//! What the scheduled functions (`schedule-tick`, `retention-sweep`) and schedule management
//! build once: S3, Step Functions, EventBridge (the sweep's settle checks) and the state machine
//! ARNs. No data plane is involved.

use crate::emit::EventBus;
use crate::{S3Store, SfnExecutions};
use brfed_core::StepError;
use brfed_core::execution::{SETTLE_CHECK_DETAIL_TYPE, SETTLE_CHECK_SOURCE};
use brfed_core::schedule::steps::SchedulerEnv;
use brfed_core::schedule::steps::SettleCheck;
use std::sync::Arc;

/// Clients and configuration of the scheduled functions.
#[derive(Clone)]
pub struct SchedulerRuntime {
    inner: Arc<Inner>,
}

struct Inner {
    store: S3Store,
    executions: SfnExecutions,
    events: EventBus,
    catalog_bucket: String,
    backup_state_machine: String,
    delete_state_machine: String,
}

fn required(name: &str) -> Result<String, StepError> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| StepError::Configuration(format!("{name} is not set")))
}

impl SchedulerRuntime {
    /// Reads `BRFED_CATALOG_BUCKET`, `BRFED_BACKUP_STATE_MACHINE_ARN`,
    /// `BRFED_DELETE_STATE_MACHINE_ARN` (and `BRFED_S3_PATH_STYLE` as the other functions).
    pub async fn load() -> Result<Self, StepError> {
        let sdk = aws_config::load_from_env().await;
        Self::from_parts(
            &sdk,
            required("BRFED_CATALOG_BUCKET")?,
            required("BRFED_BACKUP_STATE_MACHINE_ARN")?,
            required("BRFED_DELETE_STATE_MACHINE_ARN")?,
        )
    }

    /// From explicit values (the CLI).
    pub fn from_parts(
        sdk: &aws_config::SdkConfig,
        catalog_bucket: String,
        backup_state_machine: String,
        delete_state_machine: String,
    ) -> Result<Self, StepError> {
        let path_style = match std::env::var("BRFED_S3_PATH_STYLE").ok().as_deref() {
            Some(v) => v == "true" || v == "1",
            None => std::env::var("AWS_ENDPOINT_URL").is_ok_and(|v| !v.is_empty()),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                store: S3Store::new(sdk, path_style),
                executions: SfnExecutions::new(sdk),
                events: EventBus::new(
                    sdk,
                    &std::env::var("BRFED_EVENT_BUS").unwrap_or_else(|_| "default".into()),
                ),
                catalog_bucket,
                backup_state_machine,
                delete_state_machine,
            }),
        })
    }

    /// Sends each settle check as an event (source `brfed.internal`, detail-type `VolumeBackup
    /// Settle Check`) for the stack's rule to deliver to `backup-abort`. Every one is tried;
    /// `EventBridgeUnavailable` names those that could not be sent (the next sweep sends them
    /// again anyway).
    pub async fn send_settle_checks(&self, checks: &[SettleCheck]) -> Result<(), StepError> {
        let mut failed = Vec::new();
        for c in checks {
            let resource = c.detail["executionArn"].as_str();
            if let Err(e) = self
                .inner
                .events
                .put_raw(
                    SETTLE_CHECK_SOURCE,
                    SETTLE_CHECK_DETAIL_TYPE,
                    c.detail.to_string(),
                    resource,
                )
                .await
            {
                failed.push(format!("{}: {e}", c.backup));
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(StepError::EventBridgeUnavailable(format!(
                "settle checks not sent: {}",
                failed.join("; ")
            )))
        }
    }

    /// The environment of the scheduling steps.
    pub fn env(&self) -> SchedulerEnv<'_, S3Store, SfnExecutions> {
        SchedulerEnv {
            store: &self.inner.store,
            catalog_bucket: &self.inner.catalog_bucket,
            executions: &self.inner.executions,
            backup_state_machine: &self.inner.backup_state_machine,
            delete_state_machine: &self.inner.delete_state_machine,
        }
    }
}
