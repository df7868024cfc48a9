//! system test support

pub mod bench;
pub mod dataplane;
pub mod docs;
pub mod faults;
pub mod fixtures;
pub mod workflow;
