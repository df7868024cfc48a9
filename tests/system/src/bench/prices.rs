//! The public list prices the cost rows of `make bench` use ([`crate::bench::cost`]): AWS,
//! us-east-1 (US East, N. Virginia), on-demand, in US dollars, without free tiers, savings plans
//! or taxes. Each price says where it was read and when. They were read on 2026-12-05 from the
//! stored copies of those pages in this project's search corpus (the live pages were not
//! fetched): a price that changed since is wrong here until someone updates this file.
//!
//! Left out because they are the same for brfed and for BR Federation: EBS snapshot storage and
//! the snapshots' own API calls (the data planes' TiDB Operator makes them in both), and the data
//! planes' EKS clusters.

/// One price.
#[derive(Debug, Clone, Copy, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Price {
    /// What is priced.
    pub what: &'static str,
    /// US dollars per `unit`.
    pub usd: f64,
    /// The unit.
    pub unit: &'static str,
    /// Region.
    pub region: &'static str,
    /// The public page it comes from.
    pub source: &'static str,
    /// When it was read, and how.
    pub read: &'static str,
    /// `None` when the page states it; otherwise why it is an assumption.
    pub assumption: Option<&'static str>,
}

const REGION: &str = "us-east-1";
const READ: &str = "2026-12-05, stored copy of the page (search corpus)";

/// Lambda, x86_64, duration: per GB-second (what the template deploys: `Architectures: [x86_64]`).
/// Billed duration is rounded up to 1 ms; for a custom runtime (`provided.al2023`) the init phase
/// is billed too.
pub const LAMBDA_GB_SECOND: Price = Price {
    what: "Lambda duration, x86_64",
    usd: 0.000_016_666_7,
    unit: "GB-second",
    region: REGION,
    source: "https://aws.amazon.com/lambda/pricing/ ($0.0000166667 per GB-s in its worked examples; $0.00001667 in https://docs.aws.amazon.com/whitepapers/latest/how-aws-pricing-works/lambda.html)",
    read: READ,
    assumption: None,
};

/// Lambda requests: per request ($0.20 per million).
pub const LAMBDA_REQUEST: Price = Price {
    what: "Lambda requests",
    usd: 0.20 / 1_000_000.0,
    unit: "request",
    region: REGION,
    source: "https://aws.amazon.com/lambda/pricing/ ($0.20 per 1M requests)",
    read: READ,
    assumption: None,
};

/// Step Functions Standard: per state transition ($0.025 per 1,000), retries included.
pub const SFN_TRANSITION: Price = Price {
    what: "Step Functions Standard state transitions",
    usd: 0.025 / 1_000.0,
    unit: "state transition",
    region: REGION,
    source: "https://aws.amazon.com/step-functions/pricing/ (US East (N. Virginia): $0.0250 per 1,000 state transitions)",
    read: READ,
    assumption: None,
};

/// S3 Standard PUT, COPY, POST, LIST: per request ($0.005 per 1,000).
pub const S3_TIER1: Price = Price {
    what: "S3 Standard PUT, COPY, POST, LIST requests",
    usd: 0.005 / 1_000.0,
    unit: "request",
    region: REGION,
    source: "https://aws.amazon.com/s3/pricing/ (requests table)",
    read: READ,
    assumption: Some(
        "the request rows of the stored S3 page are rendered by script and not in its text; $0.005 per 1,000 is the figure third-party copies of that table give (e.g. https://c3x.dev/blog/s3-request-fees-explained)",
    ),
};

/// S3 Standard GET, SELECT and all other requests: per request ($0.0004 per 1,000).
pub const S3_TIER2: Price = Price {
    what: "S3 Standard GET, HEAD and other requests",
    usd: 0.0004 / 1_000.0,
    unit: "request",
    region: REGION,
    source: "https://aws.amazon.com/s3/pricing/ (requests table)",
    read: READ,
    assumption: Some(
        "as for PUT: $0.0004 per 1,000 from third-party copies of the table (https://c3x.dev/blog/s3-request-fees-explained)",
    ),
};

/// EventBridge custom events (`PutEvents`): per event ($1.00 per million, 64 KB chunks).
pub const EVENTBRIDGE_EVENT: Price = Price {
    what: "EventBridge custom events published",
    usd: 1.0 / 1_000_000.0,
    unit: "event",
    region: REGION,
    source: "https://aws.amazon.com/eventbridge/pricing/ (custom events $1.00 per million)",
    read: READ,
    assumption: Some(
        "the stored AWS page was not in the corpus; $1.00 per million custom events is what https://blog.awsfundamentals.com/aws-eventbridge-pricing-guide and https://cloudburn.io/blog/amazon-eventbridge-pricing give. Step Functions status-change events and scheduled rules are AWS service events: not charged",
    ),
};

/// CloudWatch Logs ingestion (standard class): per GB. Listed for completeness: the bench does not
/// measure log bytes, so no row uses it.
pub const LOGS_INGESTION_GB: Price = Price {
    what: "CloudWatch Logs ingestion, standard class",
    usd: 0.50,
    unit: "GB",
    region: REGION,
    source: "https://aws.amazon.com/cloudwatch/pricing/ (Logs: collect)",
    read: READ,
    assumption: Some(
        "the stored AWS page lists the tiers without the figure in its text; $0.50 per GB from https://coralogix.com/blog/is-cloudwatch-really-cost-efficient. Not used: log bytes are not measured",
    ),
};

/// EKS cluster, Kubernetes version in standard support: per cluster-hour.
pub const EKS_CLUSTER_HOUR: Price = Price {
    what: "EKS cluster (standard support)",
    usd: 0.10,
    unit: "cluster-hour",
    region: REGION,
    source: "https://aws.amazon.com/blogs/containers/amazon-eks-extended-support-for-kubernetes-versions-pricing/ (\"you will continue to pay $0.10 per cluster per hour\"; $0.60 in extended support); https://aws.amazon.com/eks/pricing/",
    read: READ,
    assumption: None,
};

/// EC2 on-demand t3.medium (2 vCPU, 4 GiB), Linux: per hour. The node the original's manager pod
/// runs on; the pod pays its share ([`MANAGER_CPU_MILLIS`]).
pub const EC2_T3_MEDIUM_HOUR: Price = Price {
    what: "EC2 t3.medium on-demand, Linux (2 vCPU, 4 GiB)",
    usd: 0.0416,
    unit: "instance-hour",
    region: REGION,
    source: "https://aws.amazon.com/ec2/pricing/on-demand/",
    read: READ,
    assumption: Some(
        "the EC2 on-demand page was not in the corpus; https://go-cloud.io/?p=10607 gives t3.large $0.0832/h in us-east-1, and a t3.medium is half a t3.large in the t3 price list",
    ),
};

/// vCPUs of a t3.medium.
pub const T3_MEDIUM_MILLICPU: f64 = 2_000.0;

/// The original's manager pod: `brFederationManager.resources.requests.cpu` of the BR Federation
/// Helm chart (`charts/br-federation/values.yaml`, release-1.6: `cpu: 80m`, `memory: 50Mi`), one
/// replica. Its share of a t3.medium is the larger of its CPU share (80/2000 = 4 %) and its memory
/// share (50 MiB / 4 GiB = 1.2 %): what the scheduler reserves for it.
pub const MANAGER_CPU_MILLIS: f64 = 80.0;

/// Memory request of the manager pod, MiB.
pub const MANAGER_MEMORY_MIB: f64 = 50.0;

/// Memory of a t3.medium, MiB.
pub const T3_MEDIUM_MIB: f64 = 4_096.0;

/// CloudWatch standard-resolution alarm: per alarm-month (brfed's template deploys alarms by
/// default; a standing cost of brfed's monitoring, not of its backups).
pub const CW_ALARM_MONTH: Price = Price {
    what: "CloudWatch alarm, standard resolution",
    usd: 0.10,
    unit: "alarm-month",
    region: REGION,
    source: "https://aws.amazon.com/cloudwatch/pricing/ (Alarms)",
    read: READ,
    assumption: Some(
        "the stored AWS page shows the tabs without the figures; $0.10 per alarm-month from https://c3x.dev/resources/aws/aws_cloudwatch_metric_alarm",
    ),
};

/// CloudWatch dashboard: per dashboard-month, beyond the 3 free ones.
pub const CW_DASHBOARD_MONTH: Price = Price {
    what: "CloudWatch dashboard",
    usd: 3.00,
    unit: "dashboard-month",
    region: REGION,
    source: "https://aws.amazon.com/cloudwatch/pricing/ (Dashboards; 3 free per account)",
    read: READ,
    assumption: Some(
        "$3 per dashboard-month from https://coralogix.com/blog/is-cloudwatch-really-cost-efficient; counted as if the account's 3 free dashboards were taken",
    ),
};

/// CloudWatch custom metric (what brfed's EMF lines create): per metric-month, first tier.
pub const CW_METRIC_MONTH: Price = Price {
    what: "CloudWatch custom metric (first 10,000)",
    usd: 0.30,
    unit: "metric-month",
    region: REGION,
    source: "https://aws.amazon.com/cloudwatch/pricing/ (Metrics)",
    read: READ,
    assumption: Some(
        "not found in the text of any stored page: $0.30 per metric-month is AWS's long-standing first-tier figure, unverified here",
    ),
};

/// Hours in the month the monthly figures use (AWS's own: 730).
pub const HOURS_PER_MONTH: f64 = 730.0;

/// Every price, for the JSON and the docs.
pub const ALL: &[Price] = &[
    LAMBDA_GB_SECOND,
    LAMBDA_REQUEST,
    SFN_TRANSITION,
    S3_TIER1,
    S3_TIER2,
    EVENTBRIDGE_EVENT,
    LOGS_INGESTION_GB,
    EKS_CLUSTER_HOUR,
    EC2_T3_MEDIUM_HOUR,
    CW_ALARM_MONTH,
    CW_DASHBOARD_MONTH,
    CW_METRIC_MONTH,
];
