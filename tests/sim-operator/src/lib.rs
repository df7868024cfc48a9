//! Simulated TiDB Operator: the data planes of brfed's local world.
//!
//! A controller over every context of one kubeconfig (context name = data-plane name) that honours
//! the data-plane contract of `pingcap.com/v1alpha1` `Backup` and `Restore` in `volume-snapshot`
//! mode, step by step, against real AWS APIs of the local emulator (EBS volumes and snapshots, S3
//! metadata in the exact shape of tidb-operator/BR). A simulated PD per federated TiDB cluster
//! records every GC/scheduler pause, resume and expiry. Faults are injected with the annotation
//! `sim.brfed.dev/fault` (see [`faults`]). [`seed`] creates the TiDB clusters the world starts with.
//!
//! It is an independent reading of the contract (reference §3): it shares no code with brfed.

pub mod backup;
pub mod cloud;
pub mod config;
pub mod faults;
pub mod grant;
pub mod http;
pub mod jobs;
pub mod kubeobj;
pub mod member;
pub mod meta;
pub mod pd;
pub mod restore;
pub mod seed;
pub mod sim;
pub mod tso;
