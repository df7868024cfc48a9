//! `brfed`, the command line of brfed: start federated backups, restores and deletions on the
//! state machines (optionally waiting, with progress), read the catalog like `kubectl get` and
//! `kubectl describe`, manage backup schedules (catalog documents + EventBridge rules), and
//! dry-run a `VolumeBackup` or `VolumeRestore` against the data planes (`preflight`).
//!
//! It decides nothing itself: parsing, validation, the preflight checks and schedule
//! management are `brfed-core`'s, the clients `brfed-adapters`'. One module per command group;
//! what `get`, `list`, `describe` and `create --wait` print is the same for every kind (`kind`);
//! the binary (`src/bin/brfed.rs`) only parses the line and turns an error into an exit status
//! (2 bad input, 1 a failed operation). See `docs/cli.md`.

pub mod args;
pub mod backup;
pub mod catalog;
pub mod config;
pub mod error;
pub mod input;
pub mod kind;
pub mod orphans;
pub mod preflight;
pub mod render;
pub mod restore;
pub mod schedule;
pub mod wait;

use args::{Cli, Command, Output};
use clap::CommandFactory;
use config::{Aws, AwsOptions, Setting, Settings};
pub use error::CliError;

/// What every command is given.
pub struct Ctx {
    /// `-o`.
    pub output: Output,
    /// `-n`, when given.
    pub namespace: Option<String>,
    /// Configuration values.
    pub settings: Settings,
    /// `--profile`, `--region`.
    pub aws_options: AwsOptions,
}

impl Ctx {
    /// The namespace of a named object: `-n`, else `default`.
    pub fn namespace(&self) -> &str {
        self.namespace.as_deref().unwrap_or("default")
    }

    /// The catalog bucket, or the error that says where it comes from.
    pub fn bucket(&self) -> Result<String, CliError> {
        self.settings.require(Setting::CatalogBucket)
    }

    /// The AWS clients (loading the SDK configuration makes no call).
    pub async fn aws(&self) -> Aws {
        Aws::load(&self.aws_options).await
    }
}

/// Runs one command line.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    if let Command::Completions { shell } = cli.command {
        let mut out = std::io::stdout();
        clap_complete::generate(shell.shell(), &mut Cli::command(), "brfed", &mut out);
        return Ok(());
    }
    let aws_options = cli.global.aws_options();
    let mut settings = Settings::from_global(&cli.global);
    if let Some(stack) = settings.stack_to_read() {
        let outputs = config::read_stack(&aws_options.sdk_config().await, stack).await?;
        settings = settings.with_stack(outputs);
    }
    let ctx = Ctx {
        output: cli.global.output,
        namespace: cli.global.namespace.clone().filter(|n| !n.is_empty()),
        settings,
        aws_options,
    };
    match cli.command {
        Command::Backup(c) => backup::run(&ctx, c).await,
        Command::Restore(c) => restore::run(&ctx, c).await,
        Command::Schedule(c) => schedule::run(&ctx, c).await,
        Command::Preflight(f) => preflight::run(&ctx, &f.file).await,
        Command::Orphans {
            delete,
            include_retained,
            snapshots_per_second,
        } => orphans::run(&ctx, delete, include_retained, snapshots_per_second).await,
        Command::Completions { .. } => Ok(()),
    }
}
