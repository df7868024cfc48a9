//! Deleting a federated backup (`cleanPolicy` honoured, verified with EC2 and S3), and the
//! orphans (snapshots of this stack no backup in the catalog names).

pub mod member;
pub mod orphans;
pub mod pacing;
pub mod spec;
pub mod status;
pub mod steps;
