//! A federated backup (`VolumeBackup`): its input, the member `Backup`s it writes, its status and
//! catalog record, how it judges its members, and its steps.

pub mod judge;
pub mod member;
pub mod snapshots;
pub mod spec;
pub mod status;
pub mod steps;
