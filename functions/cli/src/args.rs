//! The command tree, as clap reads it. Every flag's help here is what `brfed ... --help` prints.

use crate::config::{AwsOptions, Setting, configuration_arg};
use clap::{ArgMatches, Args, FromArgMatches, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

const ABOUT: &str = "Federated EBS-snapshot backups and restores of one TiDB cluster spread over \
several Kubernetes clusters (BR Federation's VolumeBackup, VolumeRestore, VolumeBackupSchedule), \
run by brfed's Step Functions state machines.";

const CONFIGURATION: &str = "\
Where brfed is: a flag, else its environment variable, else the output of brfed's
CloudFormation stack named by --stack (BRFED_STACK) that holds the value:
  --catalog-bucket         BRFED_CATALOG_BUCKET
                           CatalogBucketName
  --backup-state-machine   BRFED_VOLUME_BACKUP_STATE_MACHINE_ARN
                           VolumeBackupStateMachineArn
  --restore-state-machine  BRFED_VOLUME_RESTORE_STATE_MACHINE_ARN
                           VolumeRestoreStateMachineArn
  --delete-state-machine   BRFED_VOLUME_BACKUP_DELETE_STATE_MACHINE_ARN
                           VolumeBackupDeleteStateMachineArn
  --restore-delete-function
                           BRFED_RESTORE_DELETE_FUNCTION_ARN
                           RestoreDeleteFunctionArn
  --tick-function          BRFED_SCHEDULE_TICK_FUNCTION_ARN
                           ScheduleTickFunctionArn
  --safety-net-queue       BRFED_SAFETY_NET_QUEUE_ARN
                           SafetyNetQueueArn
                           (schedule apply: the dead-letter queue of the rule's target)
  --kubeconfig             BRFED_KUBECONFIG, else the first path of KUBECONFIG
                           (preflight only: the data planes, contexts = k8sClusterName)
AWS: --profile and --region, else the SDK's standard environment and shared config
(AWS_PROFILE, AWS_REGION, ...); IAM Identity Center (SSO) profiles work (aws sso login first).
AWS_ENDPOINT_URL sends every call elsewhere (the local world: eval \"$(make -s world-env)\"),
with S3 path-style addressing (BRFED_S3_PATH_STYLE=true|false overrides).

Exit status: 0 done; 1 the operation failed (an execution failed, a preflight found problems,
a name is not in the catalog, AWS could not be reached); 2 bad input (unreadable file,
invalid spec, bad flag, missing configuration).";

/// `brfed`: the whole command line.
#[derive(Debug, Parser)]
#[command(name = "brfed", version, about = ABOUT, after_long_help = CONFIGURATION, after_help = "Where brfed is (settings, AWS) and exit status: brfed --help")]
#[command(arg_required_else_help = true)]
pub struct Cli {
    /// Options every command takes.
    #[command(flatten)]
    pub global: Global,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes (flags may stand anywhere on the line).
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Output format: table (kubectl-like), wide (more columns), json or yaml (the catalog
    /// documents themselves)
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,

    /// Namespace of the federated object [default: default; for -f, the file's]
    #[arg(short = 'n', long, global = true, value_name = "NAMESPACE")]
    pub namespace: Option<String>,

    /// AWS profile of the shared config and credentials files, IAM Identity Center (SSO)
    /// profiles too [default: $AWS_PROFILE, else default]
    #[arg(long, global = true, value_name = "PROFILE", help_heading = "AWS")]
    pub profile: Option<String>,

    /// AWS region [default: $AWS_REGION, else the profile's]
    #[arg(long, global = true, value_name = "REGION", help_heading = "AWS")]
    pub region: Option<String>,

    // Where brfed is: the settings and the data planes' kubeconfig.
    #[command(flatten)]
    pub configuration: Configuration,
}

impl Global {
    /// `--profile` and `--region` (empty counts as not given).
    pub fn aws_options(&self) -> AwsOptions {
        let given = |v: &Option<String>| v.clone().filter(|v| !v.trim().is_empty());
        AwsOptions {
            profile: given(&self.profile),
            region: given(&self.region),
        }
    }
}

/// The configuration flags, built from one table ([`Setting::arg`]) rather than a field each.
#[derive(Debug, Clone, Default)]
pub struct Configuration {
    /// The values of `--catalog-bucket` ... `--backup-locations` (or their variables), in the
    /// order of [`Setting::ALL`].
    pub values: [Option<String>; Setting::COUNT],
    /// `--kubeconfig` (or `BRFED_KUBECONFIG`).
    pub kubeconfig: Option<String>,
    /// `--stack` (or `BRFED_STACK`).
    pub stack: Option<String>,
}

const KUBECONFIG: &str = "kubeconfig";
const STACK: &str = "stack";

impl Args for Configuration {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        let settings = Setting::ALL.map(Setting::arg);
        cmd.arg(configuration_arg(
            STACK,
            "BRFED_STACK",
            "NAME",
            "brfed's CloudFormation stack: the settings below not given by a flag or variable are \
             its outputs (DescribeStacks)",
        ))
        .args(settings)
        .arg(configuration_arg(
            KUBECONFIG,
            "BRFED_KUBECONFIG",
            "PATH",
            "Kubeconfig of the data planes (contexts = k8sClusterName): a path or s3://bucket/key \
             [default: $KUBECONFIG's first path]",
        ))
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

impl FromArgMatches for Configuration {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let value = |id: &str| matches.get_one::<String>(id).cloned();
        Ok(Self {
            values: Setting::ALL.map(|s| value(&s.flag()[2..])),
            kubeconfig: value(KUBECONFIG),
            stack: value(STACK),
        })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    // Columns, as `kubectl get`.
    Table,
    // More columns, as `kubectl get -o wide`.
    Wide,
    // JSON.
    Json,
    // YAML.
    Yaml,
}

impl Output {
    /// Whether the output is a document (json or yaml) rather than text for people.
    pub fn is_document(self) -> bool {
        matches!(self, Self::Json | Self::Yaml)
    }
}

/// The command groups.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Federated backups (VolumeBackup, vbk)
    #[command(subcommand)]
    Backup(BackupCommand),
    /// Federated restores (VolumeRestore, vrt)
    #[command(subcommand)]
    Restore(RestoreCommand),
    /// Backup schedules (VolumeBackupSchedule, vbks) on EventBridge rules
    #[command(subcommand)]
    Schedule(ScheduleCommand),
    /// Dry-run a VolumeBackup or VolumeRestore: every problem at once, nothing created
    #[command(
        long_about = "Dry-run a VolumeBackup (or a VolumeRestore, by its kind or fromBackup): \
the checks the start step runs before its first side effect, all of them, every problem reported \
at once. Reads only: no execution, no catalog document, no member object.\n\n\
VolumeBackup: every data plane known (a context of --kubeconfig) and answering with the Backup \
CRD installed; no backup of that namespace/name in the catalog; each TidbCluster exists, is \
acrossK8s and has TiKV stores; no member Backup fed-NAME exists; no member S3 prefix holds a \
clustermeta.\n\
VolumeRestore: the backup named by fromBackup is Complete and has the restore's clusters; each \
target TidbCluster exists with acrossK8s and recoveryMode; each member's backupmeta is readable and \
its TiKV topology matches; no Restore fed-NAME exists; no restore of that name in the catalog.\n\n\
Exit status: 0 no problem, 1 problems (listed on stdout), 2 the file itself is invalid."
    )]
    Preflight(FileArg),
    /// This stack's snapshots whose backup is no longer in its catalog; deleted only with --delete
    #[command(
        long_about = "Lists the snapshots of this stack (tag brfed.dev/stack = the catalog bucket, \
BRFED_CATALOG_BUCKET) that backup-finalize tagged with their federated backup \
(brfed.dev/volumebackup = NAMESPACE/NAME) and whose backup is no longer in the catalog: left by a \
catalog record removed by hand, or a deletion that could not finish. Snapshots of other stacks are \
never looked at. Snapshots a deletion kept on purpose (cleanPolicy Retain, or OnFailure on a member \
that succeeded; tag brfed.dev/retained) are left out unless --include-retained is given. Snapshots \
tagged with a backup but not with a stack (tagged by versions before stacks were) are listed apart \
as UNKNOWN-STACK and never deleted: they may be another stack's.\n\n\
Nothing is deleted unless --delete is given; then they are deleted one at a time, at most \
--snapshots-per-second, backing off when EC2 throttles, a snapshot already gone counting as done; \
each is read again right before its deletion and left (listed as not owned) if its tags no longer \
say it is this stack's orphan.\n\n\
Exit status: 0 done, 1 an AWS call failed, 2 bad arguments."
    )]
    Orphans {
        /// Delete them
        #[arg(long)]
        delete: bool,
        /// Also list (and with --delete, delete) the snapshots a deletion kept on purpose
        #[arg(long)]
        include_retained: bool,
        /// Deletion rate
        #[arg(long, default_value_t = 1.0)]
        snapshots_per_second: f64,
    },
    /// Print the shell completion script of brfed (bash, zsh or fish)
    #[command(
        long_about = "Print the shell completion script of brfed on stdout; nothing else is read \
or called. Install it:\n\n  \
bash: brfed completions bash > ~/.local/share/bash-completion/completions/brfed\n  \
zsh:  brfed completions zsh > \"${fpath[1]}/_brfed\" (a directory of $fpath; then compinit)\n  \
fish: brfed completions fish > ~/.config/fish/completions/brfed.fish"
    )]
    Completions {
        /// The shell
        #[arg(value_enum)]
        shell: CompletionShell,
    },
}

/// `-f FILE`.
#[derive(Debug, Clone, Args)]
pub struct FileArg {
    /// YAML or JSON file, `-` for standard input
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: PathBuf,
}

/// `--wait` and `--timeout`.
#[derive(Debug, Clone, Copy, Args)]
pub struct WaitArgs {
    /// Wait until the execution ends, showing its progress, then print the result
    /// (exit 1 when it failed)
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up waiting after this long (the execution goes on): 90s, 5m, 1h30m,
    /// or a number of seconds
    #[arg(long, value_name = "DURATION", requires = "wait", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
}

/// A duration as people write it: `90s`, `5m`, `1h30m`, `2h 15m` (humantime's units: s, m, h,
/// d, ms, ...), or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|e| format!("{e}"));
    }
    humantime::parse_duration(text).map_err(|e| {
        format!("{e}: expected a duration such as 90s, 5m or 1h30m, or a number of seconds")
    })
}

/// The shells `brfed completions` writes a script for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompletionShell {
    // Bash.
    Bash,
    // Zsh.
    Zsh,
    // Fish.
    Fish,
}

impl CompletionShell {
    /// clap_complete's shell.
    pub fn shell(self) -> clap_complete::Shell {
        match self {
            Self::Bash => clap_complete::Shell::Bash,
            Self::Zsh => clap_complete::Shell::Zsh,
            Self::Fish => clap_complete::Shell::Fish,
        }
    }
}

/// `create`'s `-f FILE`, `--wait` and `--timeout`.
#[derive(Debug, Clone, Args)]
pub struct CreateArgs {
    #[command(flatten)]
    pub file: FileArg,
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// `list`'s `-A`.
#[derive(Debug, Clone, Copy, Args)]
pub struct ListArgs {
    /// All namespaces
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
}

/// `brfed backup ...`.
#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Start a backup from a VolumeBackup file (execution name = NAMESPACE.NAME)
    #[command(
        long_about = "Start a backup from a VolumeBackup file as BR Federation users have it \
(YAML or JSON; also {\"volumeBackup\": ..., \"options\": ...} or {name, namespace, spec}). The file \
is parsed and validated here first, every problem at once, before any call. Then StartExecution on \
the volume-backup state machine, execution name = {metadata.namespace}.{metadata.name} (cut and \
hashed past 80 characters), input = the file as JSON. The same name in another namespace is \
another backup."
    )]
    Create(CreateArgs),
    /// Show one backup as a table row (or its catalog document with -o json|yaml)
    Get {
        /// Name of the VolumeBackup
        name: String,
    },
    /// List the backups of a namespace (or of all)
    List(ListArgs),
    /// Show one backup in detail: members, conditions, the GC pause window, deletion
    Describe {
        /// Name of the VolumeBackup
        name: String,
    },
    /// Delete a backup: its members, and per cleanPolicy its snapshots and objects
    #[command(
        long_about = "Delete a backup: StartExecution of the volume-backup-delete state \
machine with {\"name\", \"namespace\"}, execution name delete-NAME-UNIXSECONDS. Each data plane \
cleans up per cleanPolicy; brfed verifies with EC2 and S3 and removes the catalog document \
(Cleaned), or keeps it with what remains (CleanFailed)."
    )]
    Delete {
        /// Name of the VolumeBackup
        name: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
}

/// `brfed restore ...`.
#[derive(Debug, Subcommand)]
pub enum RestoreCommand {
    /// Start a restore from a VolumeRestore file (execution name = NAMESPACE.NAME, or
    /// NAMESPACE.NAME_N once a restore of that name was deleted)
    #[command(
        long_about = "Start a restore from a VolumeRestore file: as BR Federation users have \
it (each spec.clusters[].backup.s3 pointing at that member's backup), or with \
\"fromBackup\": {\"namespace\": ..., \"name\": ...} beside spec to take each member's backup \
location from the catalog (spec.clusters[] then need no backup). Parsed and \
validated here first; then StartExecution on the volume-restore state machine, execution name = \
{metadata.namespace}.{metadata.name} (cut and hashed past 80 characters, docs/safety.md), input = \
the file as JSON. Once a restore of that name was deleted (`restore delete`), Step Functions keeps \
the name for 90 days: the next one is {namespace}.{name}_2, then _3, ... (the generation the \
deletion recorded in the catalog, so --catalog-bucket is needed)."
    )]
    Create(CreateArgs),
    /// Show one restore as a table row (or its catalog document with -o json|yaml)
    Get {
        /// Name of the VolumeRestore
        name: String,
    },
    /// List the restores of a namespace (or of all)
    List(ListArgs),
    /// Show one restore in detail: members, steps, conditions, leftovers of a failure
    Describe {
        /// Name of the VolumeRestore
        name: String,
    },
    /// Delete a restore: its member Restores, then its catalog record (the name can be used again)
    #[command(
        long_about = "Delete a restore, as deleting a VolumeRestore does in BR Federation: \
invokes the restore-delete function (synchronously, {\"name\", \"namespace\"}), which deletes \
each member Restore that carries this restore's execution and namespace (another Restore of that \
name is named and left), then removes the catalog record, so that the name can be restored again \
(under the execution name NAMESPACE.NAME_N, see `restore create`). The restored volumes, PVs and \
TidbClusters are never touched: they are the restored TiKV now. Refused while the restore's \
execution runs (RestoreRunning: stop it first) and for a name not in the catalog \
(RestoreNotFound); a repeat after a deletion says AlreadyDeleted. When a member of its own may \
remain (a data plane down), the record stays with what remains and the command fails: run it \
again.\n\nExit status: 0 deleted (or already), 1 refused or incomplete, 2 bad input."
    )]
    Delete {
        /// Name of the VolumeRestore
        name: String,
    },
}

/// `brfed schedule ...`.
#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Create or update a schedule from a VolumeBackupSchedule file, and its EventBridge rule
    /// (annotation brfed.io/rpo: its RPO, a Go duration, for the schedule-rpo alarm)
    Apply {
        #[command(flatten)]
        file: FileArg,
    },
    /// Stop a schedule from starting backups (spec.pause, rule disabled; retention still runs)
    Pause {
        /// Name of the VolumeBackupSchedule
        name: String,
    },
    /// Let a paused schedule start backups again, and run the latest tick it missed while paused
    /// (needs --backup-state-machine; else the retention sweep runs it)
    Resume {
        /// Name of the VolumeBackupSchedule
        name: String,
    },
    /// Delete a schedule and its rule (its backups stay; delete them with `brfed backup delete`)
    Delete {
        /// Name of the VolumeBackupSchedule
        name: String,
    },
    /// List the schedules of a namespace (or of all)
    List(ListArgs),
    /// Show one schedule as a table row (or its catalog document with -o json|yaml)
    Get {
        /// Name of the VolumeBackupSchedule
        name: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use clap::error::ErrorKind;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("brfed").chain(args.iter().copied()))
    }

    #[test]
    fn the_command_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn flags_parse_anywhere_on_the_line() {
        let cli = parse(&["backup", "get", "bk1", "-n", "br", "-o", "wide"]).unwrap();
        assert_eq!(cli.global.output, Output::Wide);
        assert_eq!(cli.global.namespace.as_deref(), Some("br"));
        assert!(
            matches!(cli.command, Command::Backup(BackupCommand::Get { ref name }) if name == "bk1")
        );
        let cli = parse(&[
            "-o",
            "json",
            "backup",
            "create",
            "-f",
            "vbk.yaml",
            "--wait",
            "--timeout",
            "60",
        ])
        .unwrap();
        let Command::Backup(BackupCommand::Create(CreateArgs { file, wait })) = cli.command else {
            panic!("not create")
        };
        assert_eq!(file.file, PathBuf::from("vbk.yaml"));
        assert!(wait.wait);
        assert_eq!(wait.timeout, Some(Duration::from_secs(60)));
        assert!(matches!(
            parse(&["schedule", "list", "-A"]).unwrap().command,
            Command::Schedule(ScheduleCommand::List(ListArgs {
                all_namespaces: true
            }))
        ));
        assert!(matches!(
            parse(&["preflight", "-f", "-"]).unwrap().command,
            Command::Preflight(_)
        ));
    }

    #[test]
    fn bad_lines_are_usage_errors_with_exit_status_2() {
        for (args, kind) in [
            (
                &["backup", "create"][..],
                ErrorKind::MissingRequiredArgument,
            ),
            (
                &["backup", "create", "-f", "x", "--timeout", "5"][..],
                ErrorKind::MissingRequiredArgument,
            ),
            (
                &["backup", "get", "bk1", "-o", "xml"][..],
                ErrorKind::InvalidValue,
            ),
            (&["backup", "frobnicate"][..], ErrorKind::InvalidSubcommand),
            (
                &["restore", "frobnicate", "x"][..],
                ErrorKind::InvalidSubcommand,
            ),
            (
                &["restore", "delete"][..],
                ErrorKind::MissingRequiredArgument,
            ),
            (
                &["schedule", "pause"][..],
                ErrorKind::MissingRequiredArgument,
            ),
            (
                &["backup", "delete", "x", "--timeout", "abc", "--wait"][..],
                ErrorKind::ValueValidation,
            ),
        ] {
            let e = parse(args).unwrap_err();
            assert_eq!(e.kind(), kind, "{args:?}: {e}");
            assert_eq!(e.exit_code(), 2, "{args:?}");
        }
        let e = parse(&[]).unwrap_err();
        assert_eq!(e.exit_code(), 2, "no command: help on stderr, status 2");
        let e = parse(&["--help"]).unwrap_err();
        assert_eq!((e.kind(), e.exit_code()), (ErrorKind::DisplayHelp, 0));
    }

    #[test]
    fn durations_as_people_write_them_or_seconds() {
        for (text, secs) in [
            ("90", 90),
            ("0", 0),
            ("90s", 90),
            ("5m", 300),
            ("1h30m", 5400),
            ("1h 30m", 5400),
            ("2h", 7200),
            (" 45s ", 45),
            ("1.5h", 5400),
        ] {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_secs(secs)),
                "{text}"
            );
        }
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
        for bad in [
            "",
            "abc",
            "5x",
            "-5",
            "5m-",
            "m5",
            "99999999999999999999999",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        for (given, secs) in [("300", 300), ("5m", 300), ("1h30m", 5400)] {
            let cli = parse(&["backup", "delete", "x", "--wait", "--timeout", given]).unwrap();
            let Command::Backup(BackupCommand::Delete { wait, .. }) = cli.command else {
                panic!("not delete")
            };
            assert_eq!(wait.timeout, Some(Duration::from_secs(secs)), "{given}");
        }
        let e = parse(&[
            "restore",
            "create",
            "-f",
            "x",
            "--wait",
            "--timeout",
            "5 minutes!",
        ])
        .unwrap_err();
        assert_eq!((e.kind(), e.exit_code()), (ErrorKind::ValueValidation, 2));
        let text = e.to_string();
        assert!(
            text.contains("--timeout <DURATION>"),
            "names the flag: {text}"
        );
        assert!(text.contains("1h30m"), "says what it takes: {text}");
    }

    #[test]
    fn completions_for_bash_zsh_and_fish() {
        for (shell, needle) in [
            (CompletionShell::Bash, "complete -F"),
            (CompletionShell::Zsh, "#compdef brfed"),
            (CompletionShell::Fish, "complete -c brfed"),
        ] {
            let mut out = Vec::new();
            clap_complete::generate(shell.shell(), &mut Cli::command(), "brfed", &mut out);
            let script = String::from_utf8(out).unwrap();
            assert!(script.contains(needle), "{shell:?}");
            // (fish spells a long flag `-l stack`)
            for word in [
                "backup",
                "schedule",
                "stack",
                "profile",
                "timeout",
                "completions",
            ] {
                assert!(script.contains(word), "{shell:?}: {word}");
            }
        }
        assert!(matches!(
            parse(&["completions", "zsh"]).unwrap().command,
            Command::Completions {
                shell: CompletionShell::Zsh
            }
        ));
        let e = parse(&["completions", "tcsh"]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidValue);
    }

    #[test]
    fn the_help_names_every_setting_and_its_stack_output() {
        let help = Cli::command().render_long_help().to_string();
        for needle in [
            "BRFED_CATALOG_BUCKET",
            "CatalogBucketName",
            "BRFED_VOLUME_BACKUP_STATE_MACHINE_ARN",
            "VolumeBackupStateMachineArn",
            "BRFED_VOLUME_RESTORE_STATE_MACHINE_ARN",
            "VolumeRestoreStateMachineArn",
            "BRFED_VOLUME_BACKUP_DELETE_STATE_MACHINE_ARN",
            "VolumeBackupDeleteStateMachineArn",
            "BRFED_RESTORE_DELETE_FUNCTION_ARN",
            "RestoreDeleteFunctionArn",
            "BRFED_SCHEDULE_TICK_FUNCTION_ARN",
            "ScheduleTickFunctionArn",
            "BRFED_SAFETY_NET_QUEUE_ARN",
            "SafetyNetQueueArn",
            "AWS_ENDPOINT_URL",
            "KUBECONFIG",
            "--stack",
            "BRFED_STACK",
            "--profile",
            "--region",
            "Identity Center",
            "Exit status",
        ] {
            assert!(help.contains(needle), "{needle} missing from --help");
        }
    }
}
