//! [`Volumes`] on EC2.

use aws_sdk_ec2::error::ProvideErrorMetadata;
use brfed_core::StepError;
use brfed_core::ports::Volumes;

/// EBS through the EC2 API.
#[derive(Clone, Debug)]
pub struct Ec2Volumes {
    client: aws_sdk_ec2::Client,
}

impl Ec2Volumes {
    /// From the shared AWS config (the SDK's standard retry absorbs throttling).
    pub fn new(sdk: &aws_config::SdkConfig) -> Self {
        Self {
            client: aws_sdk_ec2::Client::new(sdk),
        }
    }
}

impl Volumes for Ec2Volumes {
    async fn delete_volume(&self, id: &str) -> Result<bool, StepError> {
        match self.client.delete_volume().volume_id(id).send().await {
            Ok(_) => Ok(true),
            // EC2 error codes are not modelled as types: matched by code, here only.
            Err(e) if e.code() == Some("InvalidVolume.NotFound") => Ok(false),
            Err(e) if matches!(e.code(), Some("RequestLimitExceeded") | Some("Throttling")) => Err(
                StepError::DataPlaneUnreachable(format!("EC2 throttled DeleteVolume {id}")),
            ),
            Err(e) => Err(StepError::DataPlaneRejected(format!(
                "DeleteVolume {id}: {}",
                e.message().unwrap_or("failed")
            ))),
        }
    }
}
