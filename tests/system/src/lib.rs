//! system test support

pub mod bench;
pub mod dataplane;
pub mod workflow;
