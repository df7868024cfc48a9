//! A federated restore (`VolumeRestore`): its input, the member `Restore`s it writes, its status
//! and catalog record, how it judges its members, the volumes it claims, and its steps.

pub mod judge;
pub mod member;
pub mod spec;
pub mod status;
pub mod steps;
pub mod volumes;
