//! Where brfed is: the catalog bucket, the state machines, the tick function and the data-plane
//! kubeconfig (flags or environment, see `brfed --help`), and the AWS clients, built once.

use crate::args::Global;
use crate::error::CliError;
use brfed_adapters::{S3Store, SfnExecutions};

/// One configuration value, with what tells a user where to find it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    /// `--catalog-bucket`.
    CatalogBucket,
    /// `--backup-state-machine`.
    BackupStateMachine,
    /// `--restore-state-machine`.
    RestoreStateMachine,
    /// `--delete-state-machine`.
    DeleteStateMachine,
    /// `--tick-function`.
    TickFunction,
    /// `--safety-net-queue`.
    SafetyNetQueue,
}

/// What one setting is: its flag, variable, value name and help (`brfed --help`), the stack output
/// holding it, and what it is (a missing value's error).
struct About {
    flag: &'static str,
    env: &'static str,
    value_name: &'static str,
    help: &'static str,
    stack_output: &'static str,
    what: &'static str,
}

impl Setting {
    /// Every setting, in the order `--help` shows them.
    pub const ALL: [Setting; 6] = [
        Self::CatalogBucket,
        Self::BackupStateMachine,
        Self::RestoreStateMachine,
        Self::DeleteStateMachine,
        Self::TickFunction,
        Self::SafetyNetQueue,
    ];

    fn about(self) -> About {
        match self {
            Self::CatalogBucket => About {
                flag: "--catalog-bucket",
                env: "BRFED_CATALOG_BUCKET",
                value_name: "BUCKET",
                help: "Bucket of the brfed catalog",
                stack_output: "CatalogBucketName",
                what: "the bucket of the brfed catalog",
            },
            Self::BackupStateMachine => About {
                flag: "--backup-state-machine",
                env: "BRFED_VOLUME_BACKUP_STATE_MACHINE_ARN",
                value_name: "ARN",
                help: "ARN of the volume-backup state machine",
                stack_output: "VolumeBackupStateMachineArn",
                what: "the ARN of the volume-backup state machine",
            },
            Self::RestoreStateMachine => About {
                flag: "--restore-state-machine",
                env: "BRFED_VOLUME_RESTORE_STATE_MACHINE_ARN",
                value_name: "ARN",
                help: "ARN of the volume-restore state machine",
                stack_output: "VolumeRestoreStateMachineArn",
                what: "the ARN of the volume-restore state machine",
            },
            Self::DeleteStateMachine => About {
                flag: "--delete-state-machine",
                env: "BRFED_VOLUME_BACKUP_DELETE_STATE_MACHINE_ARN",
                value_name: "ARN",
                help: "ARN of the volume-backup-delete state machine",
                stack_output: "VolumeBackupDeleteStateMachineArn",
                what: "the ARN of the volume-backup-delete state machine",
            },
            Self::TickFunction => About {
                flag: "--tick-function",
                env: "BRFED_SCHEDULE_TICK_FUNCTION_ARN",
                value_name: "ARN",
                help: "ARN of the schedule-tick function (the target of schedule rules)",
                stack_output: "ScheduleTickFunctionArn",
                what: "the ARN of the schedule-tick function",
            },
            Self::SafetyNetQueue => About {
                flag: "--safety-net-queue",
                env: "BRFED_SAFETY_NET_QUEUE_ARN",
                value_name: "ARN",
                help: "ARN of the safety-net SQS queue: the dead-letter queue `schedule apply` \
                       gives the schedule rule's target, with EventBridge's retry policy (185 \
                       attempts, 24 h)",
                stack_output: "SafetyNetQueueArn",
                what: "the ARN of the safety-net SQS queue (the dead-letter queue of schedule rules)",
            },
        }
    }

    /// Environment variable.
    pub fn env(self) -> &'static str {
        self.about().env
    }

    /// Flag.
    pub fn flag(self) -> &'static str {
        self.about().flag
    }

    /// CloudFormation output of brfed's stack that holds the value.
    pub fn stack_output(self) -> &'static str {
        self.about().stack_output
    }

    /// The flag as clap reads it (global, from its variable too, under `Configuration`).
    pub fn arg(self) -> clap::Arg {
        let a = self.about();
        configuration_arg(&a.flag[2..], a.env, a.value_name, a.help)
    }

    /// The error of a missing value.
    pub fn missing(self) -> CliError {
        CliError::input(
            "Configuration",
            format!(
                "{} is not set (nor {}): {}, the output {} of brfed's CloudFormation stack \
                 (aws cloudformation describe-stacks --query \"Stacks[0].Outputs\"; on the local \
                 world: eval \"$(make -s world-env)\")",
                self.env(),
                self.flag(),
                self.about().what,
                self.stack_output()
            ),
        )
    }
}

/// A configuration flag (`--NAME VALUE`, also the variable `env`): given anywhere on the line,
/// its value hidden in `--help`, listed under `Configuration`.
pub fn configuration_arg(
    long: &'static str,
    env: &'static str,
    value_name: &'static str,
    help: &'static str,
) -> clap::Arg {
    clap::Arg::new(long)
        .long(long)
        .global(true)
        .env(env)
        .hide_env_values(true)
        .value_name(value_name)
        .help(help)
        .help_heading("Configuration")
}

/// The configuration values of one invocation.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// By [`Setting`], in the order of [`Setting::ALL`].
    values: [Option<String>; 6],
    kubeconfig: Option<String>,
}

fn non_empty(v: &Option<String>) -> Option<String> {
    v.as_ref().filter(|v| !v.trim().is_empty()).cloned()
}

impl Settings {
    /// From the flags (clap has already read their environment variables); the kubeconfig falls
    /// back to the first path of `KUBECONFIG`.
    pub fn from_global(g: &Global) -> Self {
        Self::with_kubeconfig_fallback(g, std::env::var("KUBECONFIG").ok())
    }

    /// As [`Self::from_global`], with `KUBECONFIG`'s value given.
    pub fn with_kubeconfig_fallback(g: &Global, kubeconfig_env: Option<String>) -> Self {
        let c = &g.configuration;
        let kubeconfig = non_empty(&c.kubeconfig).or_else(|| {
            kubeconfig_env
                .and_then(|v| v.split(':').next().map(String::from))
                .filter(|v| !v.is_empty())
        });
        Self {
            values: Setting::ALL.map(|s| non_empty(&c.values[s as usize])),
            kubeconfig,
        }
    }

    /// The value of `s`, when set.
    pub fn get(&self, s: Setting) -> Option<&str> {
        self.values[s as usize].as_deref()
    }

    /// The value of `s`, or the error that says where it comes from.
    pub fn require(&self, s: Setting) -> Result<String, CliError> {
        self.get(s).map(String::from).ok_or_else(|| s.missing())
    }

    /// Where the data-plane kubeconfig is.
    pub fn kubeconfig(&self) -> Result<String, CliError> {
        self.kubeconfig.clone().ok_or_else(|| {
            CliError::input(
                "Configuration",
                "no data-plane kubeconfig: set --kubeconfig or BRFED_KUBECONFIG (a path or \
                 s3://bucket/key, the KubeconfigLocation of brfed's stack), or KUBECONFIG",
            )
        })
    }
}

/// S3 path-style addressing: `BRFED_S3_PATH_STYLE`, else on whenever `AWS_ENDPOINT_URL` is set
/// (emulators), as the functions decide it.
pub fn s3_path_style() -> bool {
    match std::env::var("BRFED_S3_PATH_STYLE").ok().as_deref() {
        Some(v) if !v.is_empty() => v == "true" || v == "1",
        _ => std::env::var("AWS_ENDPOINT_URL").is_ok_and(|v| !v.is_empty()),
    }
}

/// The AWS clients of one invocation.
pub struct Aws {
    /// The SDK configuration (standard environment and profile).
    pub sdk: aws_config::SdkConfig,
    /// S3 (the catalog).
    pub store: S3Store,
    /// Step Functions.
    pub executions: SfnExecutions,
}

impl Aws {
    /// Loads the SDK configuration; no call is made.
    pub async fn load() -> Self {
        let sdk = aws_config::load_from_env().await;
        Self {
            store: S3Store::new(&sdk, s3_path_style()),
            executions: SfnExecutions::new(&sdk),
            sdk,
        }
    }
}

/// Reads the data-plane kubeconfig: a local path or `s3://bucket/key`.
pub async fn read_kubeconfig(location: &str, aws: &Aws) -> Result<String, CliError> {
    match location.strip_prefix("s3://") {
        Some(rest) => {
            let (bucket, key) = rest.split_once('/').ok_or_else(|| {
                CliError::input(
                    "Configuration",
                    format!("kubeconfig `{location}` is not s3://bucket/key"),
                )
            })?;
            aws.store.get_text(bucket, key).await?.ok_or_else(|| {
                CliError::input(
                    "Configuration",
                    format!("kubeconfig {location} does not exist"),
                )
            })
        }
        None => std::fs::read_to_string(location).map_err(|e| {
            CliError::input(
                "Configuration",
                format!("cannot read the kubeconfig {location}: {e}"),
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{Configuration, Output};

    fn global(catalog_bucket: &str, tick_function: &str, kubeconfig: &str) -> Global {
        let some = |v: &str| (!v.is_empty()).then(|| v.to_string());
        let mut values: [Option<String>; 6] = Default::default();
        values[Setting::CatalogBucket as usize] = some(catalog_bucket);
        values[Setting::TickFunction as usize] = some(tick_function);
        Global {
            output: Output::Table,
            namespace: None,
            configuration: Configuration {
                values,
                kubeconfig: some(kubeconfig),
            },
        }
    }

    #[test]
    fn a_missing_value_names_its_variable_flag_and_stack_output() {
        let s = Settings::default();
        let e = s.require(Setting::RestoreStateMachine).unwrap_err();
        assert_eq!(e.name, "Configuration");
        assert_eq!(e.exit_code(), 2);
        for needle in [
            "BRFED_VOLUME_RESTORE_STATE_MACHINE_ARN",
            "--restore-state-machine",
            "VolumeRestoreStateMachineArn",
        ] {
            assert!(e.message.contains(needle), "{needle}: {}", e.message);
        }
        assert!(
            Setting::TickFunction
                .missing()
                .message
                .contains("ScheduleTickFunctionArn")
        );
    }

    #[test]
    fn flags_win_and_empty_values_count_as_missing() {
        let g = global("b1", " ", "");
        let s = Settings::with_kubeconfig_fallback(&g, Some("/a/kc:/b/kc".into()));
        assert_eq!(s.get(Setting::CatalogBucket), Some("b1"));
        assert_eq!(s.get(Setting::TickFunction), None);
        assert_eq!(s.kubeconfig().unwrap(), "/a/kc", "KUBECONFIG's first path");
        let g = global("", "", "s3://b/k");
        let s = Settings::with_kubeconfig_fallback(&g, Some("/a/kc".into()));
        assert_eq!(s.kubeconfig().unwrap(), "s3://b/k");
        assert!(
            Settings::with_kubeconfig_fallback(&g, None)
                .kubeconfig()
                .is_ok()
        );
        let s = Settings::default();
        assert_eq!(s.kubeconfig().unwrap_err().exit_code(), 2);
    }
}
