//! system test support

pub mod dataplane;
pub mod workflow;
