//! `make bench` (the `brfed-bench` binary): live runs on the local world, the Lambda functions
//! themselves, and a model of the state at scale; see docs/performance.md.

pub mod asl;
pub mod cost;
pub mod lambda;
pub mod model;
pub mod prices;
pub mod runs;
pub mod scale;
pub mod stats;
