//! Schedules (`VolumeBackupSchedule`): the input and its cron, the catalog record, retention's
//! decision, its RPO, and the steps (apply, tick, sweep, settle checks). A schedule writes no member
//! objects of its own: its ticks start backups, its sweeps start deletions.

pub mod cron;
pub mod retention;
pub mod rpo;
pub mod spec;
pub mod status;
pub mod steps;
