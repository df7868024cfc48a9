//! Where brfed is: the catalog bucket, the state machines, the restore-delete and tick functions and the data-plane
//! kubeconfig (flags or environment, see `brfed --help`), and the AWS clients, built once.

use crate::args::Global;
use crate::error::CliError;
use brfed_adapters::{S3Store, SfnExecutions};
use std::collections::BTreeMap;

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
    /// `--restore-delete-function`.
    RestoreDeleteFunction,
    /// `--tick-function`.
    TickFunction,
    /// `--safety-net-queue`.
    SafetyNetQueue,
    /// `--backup-locations`.
    BackupLocations,
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
    /// How many settings there are.
    pub const COUNT: usize = 8;

    /// Every setting, in the order `--help` shows them.
    pub const ALL: [Setting; Self::COUNT] = [
        Self::CatalogBucket,
        Self::BackupStateMachine,
        Self::RestoreStateMachine,
        Self::DeleteStateMachine,
        Self::RestoreDeleteFunction,
        Self::TickFunction,
        Self::SafetyNetQueue,
        Self::BackupLocations,
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
            Self::RestoreDeleteFunction => About {
                flag: "--restore-delete-function",
                env: "BRFED_RESTORE_DELETE_FUNCTION_ARN",
                value_name: "ARN",
                help: "ARN of the restore-delete function (`restore delete` invokes it)",
                stack_output: "RestoreDeleteFunctionArn",
                what: "the ARN of the restore-delete function",
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
            Self::BackupLocations => About {
                flag: "--backup-locations",
                env: "BRFED_BACKUP_LOCATIONS",
                value_name: "LOCATIONS",
                help: "Where the stack may keep backups, bucket/folder/ comma-separated: \
                       `preflight` refuses a backup or restore elsewhere (BucketNotAllowed), as \
                       its start would; optional",
                stack_output: "BackupLocations",
                what: "the stack's backup locations",
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

    /// The error of a missing value (no `--stack` given).
    pub fn missing(self) -> CliError {
        CliError::input(
            "Configuration",
            format!(
                "{} is not set (nor {}): {}; or name brfed's CloudFormation stack (--stack NAME \
                 or BRFED_STACK), whose output {} holds it (on the local world: eval \
                 \"$(make -s world-env)\", or --stack brfed)",
                self.env(),
                self.flag(),
                self.about().what,
                self.stack_output()
            ),
        )
    }

    /// The error of a value neither set nor an output of stack `stack`.
    pub fn missing_output(self, stack: &str) -> CliError {
        CliError::input(
            "StackOutputMissing",
            format!(
                "the stack {stack} has no output {} ({}), and neither {} nor {} is set: is \
                 {stack} brfed's stack, and is it deployed from this version's template?",
                self.stack_output(),
                self.about().what,
                self.flag(),
                self.env(),
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

/// The outputs of brfed's CloudFormation stack (`--stack`), by output key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StackOutputs {
    /// The stack's name.
    pub stack: String,
    /// `OutputKey` → `OutputValue`.
    pub outputs: BTreeMap<String, String>,
}

/// The configuration values of one invocation.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// By [`Setting`], in the order of [`Setting::ALL`].
    values: [Option<String>; Setting::COUNT],
    kubeconfig: Option<String>,
    /// `--stack` (or `BRFED_STACK`), when given.
    stack_name: Option<String>,
    /// Its outputs, once read ([`Self::with_stack`]).
    stack: Option<StackOutputs>,
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
            stack_name: non_empty(&c.stack).map(|s| s.trim().to_string()),
            stack: None,
        }
    }

    /// The stack to read the outputs of: `--stack` was given and some value is not set by a flag
    /// or variable (those win over the stack's outputs, so a stack is not read for nothing).
    pub fn stack_to_read(&self) -> Option<&str> {
        let unset = self.values.iter().any(Option::is_none);
        self.stack_name.as_deref().filter(|_| unset)
    }

    /// The same settings, with the outputs of `--stack`'s stack beneath the flags and variables.
    pub fn with_stack(mut self, stack: StackOutputs) -> Self {
        self.stack = Some(stack);
        self
    }

    /// The value of `s`, when set: its flag, else its variable, else the stack's output.
    pub fn get(&self, s: Setting) -> Option<&str> {
        self.values[s as usize].as_deref().or_else(|| {
            self.stack
                .as_ref()
                .and_then(|st| st.outputs.get(s.stack_output()))
                .map(String::as_str)
                .filter(|v| !v.trim().is_empty())
        })
    }

    /// The value of `s`, or the error that says where it comes from (with `--stack`: which
    /// output of which stack is missing).
    pub fn require(&self, s: Setting) -> Result<String, CliError> {
        self.get(s)
            .map(String::from)
            .ok_or_else(|| match &self.stack_name {
                Some(stack) => s.missing_output(stack),
                None => s.missing(),
            })
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

/// `--profile` and `--region`: what every AWS client of the invocation is built with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwsOptions {
    /// A profile of the shared AWS config (IAM Identity Center ones too); else the SDK's
    /// `AWS_PROFILE`, else `default`.
    pub profile: Option<String>,
    /// The region; else the SDK's chain (`AWS_REGION`, the profile's).
    pub region: Option<String>,
}

impl AwsOptions {
    /// The SDK configuration: the standard chain, with the profile and the region given here.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        self.loader().load().await
    }

    /// The SDK's loader of [`Self::sdk_config`].
    pub fn loader(&self) -> aws_config::ConfigLoader {
        let mut loader = aws_config::from_env();
        if let Some(p) = &self.profile {
            loader = loader.profile_name(p);
        }
        if let Some(r) = &self.region {
            loader = loader.region(aws_config::Region::new(r.clone()));
        }
        loader
    }
}

/// The AWS clients of one invocation.
pub struct Aws {
    /// The SDK configuration (standard environment and profile, `--profile`, `--region`).
    pub sdk: aws_config::SdkConfig,
    /// S3 (the catalog).
    pub store: S3Store,
    /// Step Functions.
    pub executions: SfnExecutions,
    /// Lambda (`restore delete`).
    pub lambda: aws_sdk_lambda::Client,
}

impl Aws {
    /// Loads the SDK configuration; no call is made.
    pub async fn load(options: &AwsOptions) -> Self {
        let sdk = options.sdk_config().await;
        Self {
            store: S3Store::new(&sdk, s3_path_style()),
            executions: SfnExecutions::new(&sdk),
            lambda: aws_sdk_lambda::Client::new(&sdk),
            sdk,
        }
    }
}

/// The outputs of CloudFormation stack `stack` (DescribeStacks): a stack that does not exist is
/// `StackNotFound` (exit 2), any other failure `CloudFormationUnavailable` (exit 1).
pub async fn read_stack(
    sdk: &aws_config::SdkConfig,
    stack: &str,
) -> Result<StackOutputs, CliError> {
    let cfn = aws_sdk_cloudformation::Client::new(sdk);
    let out = cfn
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
        .map_err(|e| {
            use aws_sdk_cloudformation::error::{DisplayErrorContext, ProvideErrorMetadata};
            // CloudFormation says a missing stack as ValidationError "Stack with id X does not exist".
            let missing = e.as_service_error().is_some_and(|s| {
                s.code() == Some("ValidationError")
                    && s.message().is_some_and(|m| m.contains("does not exist"))
            });
            if missing {
                CliError::input(
                    "StackNotFound",
                    format!(
                        "no CloudFormation stack {stack} in this account and region (--stack or \
                         BRFED_STACK; --profile, --region)"
                    ),
                )
            } else {
                CliError::failed(
                    "CloudFormationUnavailable",
                    format!(
                        "DescribeStacks {stack} (--stack): {}",
                        DisplayErrorContext(&e)
                    ),
                )
            }
        })?;
    let found = out.stacks().first().ok_or_else(|| {
        CliError::input(
            "StackNotFound",
            format!("no CloudFormation stack {stack} in this account and region"),
        )
    })?;
    Ok(stack_outputs(stack, found.outputs()))
}

/// The outputs of one described stack, by key.
pub fn stack_outputs(
    stack: &str,
    outputs: &[aws_sdk_cloudformation::types::Output],
) -> StackOutputs {
    StackOutputs {
        stack: stack.to_string(),
        outputs: outputs
            .iter()
            .filter_map(|o| Some((o.output_key()?.to_string(), o.output_value()?.to_string())))
            .collect(),
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
        let mut values: [Option<String>; Setting::COUNT] = Default::default();
        values[Setting::CatalogBucket as usize] = some(catalog_bucket);
        values[Setting::TickFunction as usize] = some(tick_function);
        Global {
            output: Output::Table,
            namespace: None,
            profile: None,
            region: None,
            configuration: Configuration {
                values,
                kubeconfig: some(kubeconfig),
                stack: None,
            },
        }
    }

    fn stack(outputs: &[(&str, &str)]) -> StackOutputs {
        StackOutputs {
            stack: "brfed-prod".into(),
            outputs: outputs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// The settings of a command line, with `env` as the only environment variables.
    fn parsed(args: &[&str], env: &[(&str, &'static str)]) -> Settings {
        use clap::{CommandFactory, FromArgMatches};
        // clap reads a flag's variable from the process environment; the test gives the
        // variables by name instead, through each argument's `env` being looked up here.
        let mut cmd = crate::args::Cli::command();
        for (k, v) in env {
            let id = cmd
                .get_arguments()
                .find(|a| a.get_env().is_some_and(|e| e == *k))
                .map(|a| a.get_id().clone())
                .unwrap_or_else(|| panic!("no flag reads {k}"));
            cmd = cmd.mut_arg(id, |a| a.default_value(*v));
        }
        let m = cmd
            .try_get_matches_from(std::iter::once("brfed").chain(args.iter().copied()))
            .unwrap();
        let cli = crate::args::Cli::from_arg_matches(&m).unwrap();
        Settings::with_kubeconfig_fallback(&cli.global, None)
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
    fn a_flag_wins_over_its_variable_which_wins_over_the_stack() {
        let outputs = stack(&[
            ("CatalogBucketName", "stack-bucket"),
            ("VolumeBackupStateMachineArn", "arn:stack:backup"),
            ("VolumeRestoreStateMachineArn", "arn:stack:restore"),
            ("ScheduleTickFunctionArn", " "),
        ]);
        let env = [
            ("BRFED_CATALOG_BUCKET", "env-bucket"),
            ("BRFED_VOLUME_BACKUP_STATE_MACHINE_ARN", "arn:env:backup"),
            ("BRFED_STACK", "brfed-prod"),
        ];
        let s = parsed(&["--catalog-bucket", "flag-bucket", "backup", "list"], &env);
        assert_eq!(s.stack_to_read(), Some("brfed-prod"), "BRFED_STACK");
        let s = s.with_stack(outputs.clone());
        assert_eq!(s.get(Setting::CatalogBucket), Some("flag-bucket"), "flag");
        assert_eq!(
            s.get(Setting::BackupStateMachine),
            Some("arn:env:backup"),
            "variable over the stack"
        );
        assert_eq!(
            s.get(Setting::RestoreStateMachine),
            Some("arn:stack:restore"),
            "the stack fills the rest"
        );
        // An empty output counts as missing; the error names the output and the stack.
        let e = s.require(Setting::TickFunction).unwrap_err();
        assert_eq!((e.name.as_str(), e.exit_code()), ("StackOutputMissing", 2));
        for needle in [
            "ScheduleTickFunctionArn",
            "brfed-prod",
            "--tick-function",
            "BRFED_SCHEDULE_TICK_FUNCTION_ARN",
        ] {
            assert!(e.message.contains(needle), "{needle}: {}", e.message);
        }
        let e = s.require(Setting::SafetyNetQueue).unwrap_err();
        assert!(
            e.message.contains("no output SafetyNetQueueArn"),
            "{}",
            e.message
        );
        // --stack on the line wins over BRFED_STACK.
        let s = parsed(&["backup", "list", "--stack", "other"], &env);
        assert_eq!(s.stack_to_read(), Some("other"));
    }

    #[test]
    fn a_stack_is_read_only_when_something_is_not_set() {
        let mut args = vec!["--stack", "brfed"];
        let values = [
            "b", "arn:1", "arn:2", "arn:3", "arn:4", "arn:5", "arn:6", "b/f/",
        ];
        for (s, v) in Setting::ALL.iter().zip(values) {
            args.extend([s.flag(), v]);
        }
        args.extend(["backup", "list"]);
        assert_eq!(parsed(&args, &[]).stack_to_read(), None, "all set");
        assert_eq!(
            parsed(
                &[
                    "--stack",
                    "brfed",
                    "--catalog-bucket",
                    "b",
                    "backup",
                    "list"
                ],
                &[]
            )
            .stack_to_read(),
            Some("brfed")
        );
        assert_eq!(parsed(&["backup", "list"], &[]).stack_to_read(), None);
        assert_eq!(
            parsed(&["backup", "list", "--stack", " "], &[]).stack_to_read(),
            None,
            "empty = not given"
        );
        // No stack: the error says how to give one.
        let e = parsed(&["backup", "list"], &[])
            .require(Setting::CatalogBucket)
            .unwrap_err();
        assert_eq!(e.name, "Configuration");
        assert!(e.message.contains("--stack"), "{}", e.message);
    }

    #[test]
    fn outputs_of_a_described_stack_by_key() {
        use aws_sdk_cloudformation::types::Output;
        let out = |k: &str, v: &str| Output::builder().output_key(k).output_value(v).build();
        let got = stack_outputs(
            "brfed-prod",
            &[
                out("CatalogBucketName", "b"),
                Output::builder().output_key("NoValue").build(),
                out("SafetyNetQueueArn", "arn:q"),
            ],
        );
        assert_eq!(
            got,
            stack(&[("CatalogBucketName", "b"), ("SafetyNetQueueArn", "arn:q")])
        );
    }

    fn options(args: &[&str]) -> AwsOptions {
        use clap::Parser;
        crate::args::Cli::try_parse_from(std::iter::once("brfed").chain(args.iter().copied()))
            .unwrap()
            .global
            .aws_options()
    }

    // aws-config's own `ConfigLoader::profile_files` still takes the deprecated alias.
    #[allow(deprecated)]
    /// A shared config file with an IAM Identity Center profile `sso-admin` (region eu-north-1)
    /// and a plain one `other`.
    fn profile_files(dir: &std::path::Path) -> aws_config::profile::profile_file::ProfileFiles {
        use aws_config::profile::profile_file::{ProfileFileKind, ProfileFiles};
        let config = dir.join("config");
        std::fs::write(
            &config,
            "[profile sso-admin]\nsso_session = corp\nsso_account_id = 123456789012\n\
             sso_role_name = Admin\nregion = eu-north-1\n\n[sso-session corp]\n\
             sso_start_url = https://corp.awsapps.com/start\nsso_region = eu-north-1\n\n\
             [profile other]\nregion = ap-south-1\n",
        )
        .unwrap();
        let credentials = dir.join("credentials");
        std::fs::write(&credentials, "").unwrap();
        ProfileFiles::builder()
            .with_file(ProfileFileKind::Config, config)
            .with_file(ProfileFileKind::Credentials, credentials)
            .build()
    }

    #[tokio::test]
    async fn profile_and_region_are_those_of_every_client() {
        let dir = std::env::temp_dir().join(format!("brfed-cli-profile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let files = profile_files(&dir);
        let sdk = |o: AwsOptions| {
            let files = files.clone();
            async move { o.loader().profile_files(files).load().await }
        };
        let o = options(&["backup", "list", "--profile", "sso-admin"]);
        assert_eq!(o.profile.as_deref(), Some("sso-admin"));
        let c = sdk(o).await;
        assert_eq!(
            c.region().map(|r| r.as_ref()),
            Some("eu-north-1"),
            "the profile's region"
        );
        let c = sdk(options(&[
            "--profile",
            "other",
            "--region",
            "us-east-2",
            "backup",
            "list",
        ]))
        .await;
        assert_eq!(
            c.region().map(|r| r.as_ref()),
            Some("us-east-2"),
            "--region wins"
        );
        let c = sdk(options(&["--profile", "other", "backup", "list"])).await;
        assert_eq!(c.region().map(|r| r.as_ref()), Some("ap-south-1"));
        assert_eq!(options(&["--profile", "", "backup", "list"]).profile, None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn an_sso_profile_is_understood() {
        use aws_credential_types::provider::ProvideCredentials;
        let dir = std::env::temp_dir().join(format!("brfed-cli-sso-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sdk = options(&[
            "--profile",
            "sso-admin",
            "--region",
            "eu-north-1",
            "backup",
            "list",
        ])
        .loader()
        .profile_files(profile_files(&dir))
        .load()
        .await;
        let provider = sdk.credentials_provider().unwrap();
        // No `aws sso login` was run here, so no credentials: but the error must be that of the
        // SSO provider (no cached token), not "requires the cargo feature sso".
        let e = provider.provide_credentials().await.unwrap_err();
        let text = format!("{}", aws_sdk_sfn::error::DisplayErrorContext(&e));
        let _ = std::fs::remove_dir_all(&dir);
        assert!(!text.contains("feature"), "{text}");
        assert!(
            text.to_lowercase().contains("sso") || text.contains("token"),
            "{text}"
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
