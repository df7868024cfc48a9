//! brfed adapters: the ports of `brfed-core` implemented with kube (data planes) and the AWS SDK
//! (S3), function configuration loaded once, and the Lambda glue that turns a step's
//! [`brfed_core::StepError`] into the runtime's `Diagnostic` whose `errorType` is the error name.
//! Every SDK and kube error is classified here, once. [`signals`] builds the metrics (EMF) and
//! events of ended backups, restores and deletions; [`emit`] writes and sends them.

pub mod config;
pub mod ec2_volumes;
pub mod eks_token;
pub mod emit;
pub mod eventbridge_rules;
pub mod kube_planes;
pub mod lambda;
pub mod runtime;
pub mod s3_store;
pub mod scheduler;
pub mod sfn_executions;
pub mod signals;

pub use config::FunctionConfig;
pub use ec2_volumes::Ec2Volumes;
pub use eventbridge_rules::EventBridgeRules;
pub use kube_planes::KubeRegistry;
pub use runtime::Runtime;
pub use s3_store::S3Store;
pub use scheduler::SchedulerRuntime;
pub use sfn_executions::SfnExecutions;
