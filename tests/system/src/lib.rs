//! system test support

pub mod bench;
pub mod dataplane;
pub mod faults;
pub mod fixtures;
pub mod workflow;
