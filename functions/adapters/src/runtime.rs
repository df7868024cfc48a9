//! Everything a step function builds once per process: configuration, the AWS config, the S3
//! store, the data-plane registry, Step Functions and the event bus.

use crate::emit::{Emitter, EventBus};
use crate::{Ec2Volumes, FunctionConfig, KubeRegistry, S3Store, SfnExecutions};
use brfed_core::StepError;
use brfed_core::backup::steps::Env;
use brfed_core::restore::steps::RestoreEnv;
use std::sync::Arc;

/// Clients and configuration of one function process.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    config: FunctionConfig,
    planes: KubeRegistry,
    store: S3Store,
    volumes: Ec2Volumes,
    executions: SfnExecutions,
    events: EventBus,
}

impl Runtime {
    /// Loads the configuration from the environment, and builds the clients. The kubeconfig is
    /// read from a path or from `s3://bucket/key`.
    pub async fn load() -> Result<Self, StepError> {
        let config = FunctionConfig::from_env()?;
        let sdk = aws_config::load_from_env().await;
        let store = S3Store::new(&sdk, config.s3_path_style);
        let text = match config.kubeconfig.strip_prefix("s3://") {
            Some(rest) => {
                let (bucket, key) = rest.split_once('/').ok_or_else(|| {
                    StepError::Configuration(format!(
                        "`{}` is not s3://bucket/key",
                        config.kubeconfig
                    ))
                })?;
                store.get_text(bucket, key).await?.ok_or_else(|| {
                    StepError::Configuration(format!(
                        "kubeconfig {} does not exist",
                        config.kubeconfig
                    ))
                })?
            }
            None => std::fs::read_to_string(&config.kubeconfig).map_err(|e| {
                StepError::Configuration(format!("kubeconfig {}: {e}", config.kubeconfig))
            })?,
        };
        let planes = KubeRegistry::from_yaml(&text, &sdk).await?;
        let volumes = Ec2Volumes::new(&sdk);
        let executions = SfnExecutions::new(&sdk);
        let events = EventBus::new(&sdk, &config.event_bus);
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                planes,
                store,
                volumes,
                executions,
                events,
            }),
        })
    }

    /// The environment the core steps run in.
    pub fn env(&self) -> Env<'_, KubeRegistry, S3Store> {
        Env {
            planes: &self.inner.planes,
            store: &self.inner.store,
            catalog_bucket: &self.inner.config.catalog_bucket,
            observe_budget: self.inner.config.observe_budget,
            backup_locations: self.inner.config.backup_locations.as_ref(),
        }
    }

    /// The stack's catalog bucket: also its identity (the `brfed.dev/stack` tag, the `stack`
    /// dimension of the end metrics its alarms read).
    pub fn catalog_bucket(&self) -> &str {
        &self.inner.config.catalog_bucket
    }

    /// Pacing of brfed's own snapshot deletions, with this function's work budget.
    pub fn pacing(&self) -> brfed_core::delete::pacing::Pacing {
        brfed_core::delete::pacing::Pacing {
            budget: self.inner.config.work_budget,
            ..Default::default()
        }
    }

    /// EBS volumes and snapshots.
    pub fn volumes(&self) -> &Ec2Volumes {
        &self.inner.volumes
    }

    /// Step Functions (no call is made until one is asked).
    pub fn executions(&self) -> &SfnExecutions {
        &self.inner.executions
    }

    /// brfed's event bus.
    pub fn events(&self) -> &EventBus {
        &self.inner.events
    }

    /// Metrics and events of ended backups, restores and deletions (`docs/signals.md`).
    pub fn signals(&self) -> Emitter<'_> {
        Emitter::new(self)
    }

    /// The environment the core restore steps run in.
    pub fn restore_env(&self) -> RestoreEnv<'_, KubeRegistry, S3Store, Ec2Volumes> {
        RestoreEnv {
            base: self.env(),
            volumes: &self.inner.volumes,
        }
    }
}
