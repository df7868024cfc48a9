//! The CLI's one error type: a stable name (brfed's error names where a step or the core said
//! it, the CLI's own otherwise), a message, and whether it was bad input (exit 2) or a failed
//! operation (exit 1).

use brfed_core::StepError;
use std::fmt;

/// Exit status of bad input: an unreadable file, an invalid spec, a bad flag, missing
/// configuration (clap uses the same for its own usage errors).
pub const EXIT_BAD_INPUT: u8 = 2;
/// Exit status of a failed operation.
pub const EXIT_FAILED: u8 = 1;

/// Why a command did not do its work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    /// Stable PascalCase name (`InvalidSpec`, `FileUnreadable`, `BackupNotFound`, ...).
    pub name: String,
    /// What went wrong, for people.
    pub message: String,
    /// Bad input (exit 2) rather than a failed operation (exit 1).
    pub bad_input: bool,
    /// What the error is about (a file), shown before the message.
    pub about: Option<String>,
}

impl CliError {
    /// Bad input: exit 2.
    pub fn input(name: &str, message: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            message: message.into(),
            bad_input: true,
            about: None,
        }
    }

    /// A failed operation: exit 1.
    pub fn failed(name: &str, message: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            message: message.into(),
            bad_input: false,
            about: None,
        }
    }

    /// An error of brfed's error name `name` (a step's, or a function's `errorType`): bad input
    /// for `InvalidSpec` and `Configuration`, a failed operation otherwise.
    pub fn of_step(name: &str, message: impl Into<String>) -> Self {
        if matches!(name, "InvalidSpec" | "Configuration") {
            Self::input(name, message)
        } else {
            Self::failed(name, message)
        }
    }

    /// The process exit status.
    pub fn exit_code(&self) -> u8 {
        if self.bad_input {
            EXIT_BAD_INPUT
        } else {
            EXIT_FAILED
        }
    }

    /// The same error, about `what` (a file name).
    pub fn about(mut self, what: &str) -> Self {
        self.about = Some(what.to_string());
        self
    }

    /// The text printed on stderr: `error: Name: [about: ]message`; a list of problems
    /// (`a; b; c`, as `InvalidSpec` and `UnknownCluster` give them) one per line.
    pub fn render(&self) -> String {
        let head = match &self.about {
            Some(a) => format!("error: {}: {a}", self.name),
            None => format!("error: {}", self.name),
        };
        let parts: Vec<&str> = self.message.split("; ").collect();
        if parts.len() > 1 && matches!(self.name.as_str(), "InvalidSpec" | "UnknownCluster") {
            let mut out = format!("{head}:");
            for p in parts {
                out.push_str("\n  - ");
                out.push_str(p);
            }
            out
        } else {
            format!("{head}: {}", self.message)
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.about {
            Some(a) => write!(f, "{}: {a}: {}", self.name, self.message),
            None => write!(f, "{}: {}", self.name, self.message),
        }
    }
}

impl std::error::Error for CliError {}

/// The message of a step error without the prefix its `Display` adds (`invalid spec: `):
/// [`StepError::message`].
pub fn step_message(e: &StepError) -> String {
    e.message().to_string()
}

/// A step error's text (`restore running: ...`, as a function reports it too) without its
/// prefix: what follows the first `": "`.
pub fn without_prefix(text: &str) -> &str {
    text.split_once(": ").map_or(text, |(_, message)| message)
}

impl From<StepError> for CliError {
    fn from(e: StepError) -> Self {
        Self::of_step(e.name(), step_message(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_error_keeps_its_name_and_loses_its_prefix() {
        let e: CliError =
            StepError::TidbClusterInvalid("TidbCluster a/b does not exist in dp1".into()).into();
        assert_eq!(e.name, "TidbClusterInvalid");
        assert_eq!(e.message, "TidbCluster a/b does not exist in dp1");
        assert_eq!(e.exit_code(), EXIT_FAILED);
        let e: CliError =
            StepError::InvalidSpec("spec.clusters is empty; metadata.name is empty".into()).into();
        assert_eq!(e.exit_code(), EXIT_BAD_INPUT);
        assert_eq!(
            e.clone().about("vbk.yaml").render(),
            "error: InvalidSpec: vbk.yaml:\n  - spec.clusters is empty\n  - metadata.name is empty"
        );
        assert_eq!(
            e.render(),
            "error: InvalidSpec:\n  - spec.clusters is empty\n  - metadata.name is empty"
        );
    }

    #[test]
    fn a_single_problem_stays_on_one_line() {
        let e = CliError::failed("BackupNotFound", "VolumeBackup br/x is not in the catalog");
        assert_eq!(
            e.render(),
            "error: BackupNotFound: VolumeBackup br/x is not in the catalog"
        );
    }
}
