//! [`Volumes`] on EC2.

use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::operation::create_tags::CreateTagsError;
use aws_sdk_ec2::types::{Filter, Tag};
use brfed_core::StepError;
use brfed_core::ports::{SnapshotDeletion, SnapshotInfo, VolumeFacts, Volumes};

/// EBS through the EC2 API.
#[derive(Clone, Debug)]
pub struct Ec2Volumes {
    client: aws_sdk_ec2::Client,
    /// Without the SDK's retries: snapshot deletion paces and backs off itself, and must see
    /// every throttled call to do so.
    once: aws_sdk_ec2::Client,
}

impl Ec2Volumes {
    /// From the shared AWS config (the SDK's standard retry absorbs throttling).
    pub fn new(sdk: &aws_config::SdkConfig) -> Self {
        let once = aws_sdk_ec2::config::Builder::from(sdk)
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .build();
        Self {
            client: aws_sdk_ec2::Client::new(sdk),
            once: aws_sdk_ec2::Client::from_conf(once),
        }
    }
}

impl Ec2Volumes {
    /// `CreateTags` of `tags` on `ids`, 500 resources a call (nothing to do when either is
    /// empty); the first refusal as EC2 gave it, for the caller to name.
    async fn create_tags(
        &self,
        ids: &[String],
        tags: &[(String, String)],
    ) -> Result<(), aws_sdk_ec2::error::SdkError<CreateTagsError>> {
        if ids.is_empty() || tags.is_empty() {
            return Ok(());
        }
        let tags: Vec<Tag> = tags
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect();
        for chunk in ids.chunks(500) {
            self.client
                .create_tags()
                .set_resources(Some(chunk.to_vec()))
                .set_tags(Some(tags.clone()))
                .send()
                .await?;
        }
        Ok(())
    }

    /// `DescribeSnapshots` of this account's snapshots (`OwnerIds=self`: a public or shared
    /// snapshot is never brfed's) matching `filter`, every page, into `out`.
    async fn snapshots_with(
        &self,
        filter: Filter,
        out: &mut Vec<SnapshotInfo>,
    ) -> Result<(), StepError> {
        let mut pages = self
            .client
            .describe_snapshots()
            .owner_ids("self")
            .filters(filter)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| StepError::Ec2Unavailable(format!("DescribeSnapshots: {e:?}")))?;
            for s in page.snapshots() {
                let Some(id) = s.snapshot_id() else { continue };
                // EC2 always sets StartTime; without one the snapshot proves nothing about when
                // it was made, and the epoch makes it older than any backup.
                let start_time = s
                    .start_time()
                    .and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
                    .unwrap_or(chrono::DateTime::UNIX_EPOCH);
                out.push(SnapshotInfo {
                    id: id.to_string(),
                    start_time,
                    state: s
                        .state()
                        .map(|x| x.as_str().to_string())
                        .unwrap_or_default(),
                    tags: s
                        .tags()
                        .iter()
                        .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
                        .collect(),
                });
            }
        }
        Ok(())
    }
}

fn throttled(code: Option<&str>) -> bool {
    matches!(
        code,
        Some("RequestLimitExceeded") | Some("Throttling") | Some("ThrottlingException")
    )
}

/// A refusal a person must look at (IAM, or a resource not ours, in use or gone: a code starting
/// with `invalid`, or `UnauthorizedOperation`), as `DataPlaneRejected` naming `what`, the code
/// and EC2's message; `None` for any other error.
fn refused(e: &impl ProvideErrorMetadata, invalid: &str, what: &str) -> Option<StepError> {
    let code = e.code()?;
    (code.starts_with(invalid) || code == "UnauthorizedOperation").then(|| {
        StepError::DataPlaneRejected(format!(
            "{what}: {code}: {}",
            e.message().unwrap_or("refused")
        ))
    })
}

/// Filters on `name` (`snapshot-id`) matching `ids`, at most 200 values each (EC2's limit).
fn filters_of<'a>(name: &'a str, ids: &'a [String]) -> impl Iterator<Item = Filter> + 'a {
    ids.chunks(200).map(move |chunk| {
        Filter::builder()
            .name(name)
            .set_values(Some(chunk.to_vec()))
            .build()
    })
}

impl Volumes for Ec2Volumes {
    async fn delete_volume(&self, id: &str) -> Result<bool, StepError> {
        match self.client.delete_volume().volume_id(id).send().await {
            Ok(_) => Ok(true),
            // EC2 error codes are not modelled as types: matched by code, here only.
            Err(e) if e.code() == Some("InvalidVolume.NotFound") => Ok(false),
            Err(e) if throttled(e.code()) => Err(StepError::Ec2Unavailable(format!(
                "EC2 throttled DeleteVolume {id}"
            ))),
            Err(e) => Err(StepError::DataPlaneRejected(format!(
                "DeleteVolume {id}: {}",
                e.message().unwrap_or("failed")
            ))),
        }
    }

    async fn delete_snapshot(&self, id: &str) -> Result<SnapshotDeletion, StepError> {
        match self.once.delete_snapshot().snapshot_id(id).send().await {
            Ok(_) => Ok(SnapshotDeletion::Deleted),
            Err(e) if e.code() == Some("InvalidSnapshot.NotFound") => {
                Ok(SnapshotDeletion::NotFound)
            }
            Err(e) if throttled(e.code()) => Ok(SnapshotDeletion::Throttled),
            // In use by an AMI, or not ours to delete: a person must look.
            Err(e) => Err(
                refused(&e, "InvalidSnapshot", &format!("DeleteSnapshot {id}")).unwrap_or_else(
                    || StepError::Ec2Unavailable(format!("DeleteSnapshot {id}: {e:?}")),
                ),
            ),
        }
    }

    async fn tag_snapshots(
        &self,
        ids: &[String],
        tags: &[(String, String)],
    ) -> Result<(), StepError> {
        self.create_tags(ids, tags)
            .await
            .map_err(|e| StepError::Ec2Unavailable(format!("CreateTags: {e:?}")))
    }

    async fn describe_snapshots(&self, ids: &[String]) -> Result<Vec<SnapshotInfo>, StepError> {
        let mut out = Vec::new();
        // A filter, not SnapshotIds: an unknown id in SnapshotIds fails the whole call.
        for filter in filters_of("snapshot-id", ids) {
            self.snapshots_with(filter, &mut out).await?;
        }
        Ok(out)
    }

    async fn snapshots_tagged(&self, key: &str) -> Result<Vec<SnapshotInfo>, StepError> {
        let mut out = Vec::new();
        let filter = Filter::builder().name("tag-key").values(key).build();
        self.snapshots_with(filter, &mut out).await?;
        Ok(out)
    }

    // ---- the restore's volumes

    async fn volumes_from_snapshots(
        &self,
        snapshots: &[String],
    ) -> Result<Vec<VolumeFacts>, StepError> {
        let mut out = Vec::new();
        // `snapshot-id` is an attribute filter (not a tag).
        for filter in filters_of("snapshot-id", snapshots) {
            let mut pages = self
                .client
                .describe_volumes()
                .filters(filter)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page =
                    page.map_err(|e| StepError::Ec2Unavailable(format!("DescribeVolumes: {e:?}")))?;
                out.extend(page.volumes().iter().filter_map(facts));
            }
        }
        Ok(out)
    }

    async fn describe_volume(&self, id: &str) -> Result<Option<VolumeFacts>, StepError> {
        // A filter, not VolumeIds: an unknown id in VolumeIds is an error, here it is `None`.
        let filter = Filter::builder().name("volume-id").values(id).build();
        let out = self
            .client
            .describe_volumes()
            .filters(filter)
            .send()
            .await
            .map_err(|e| StepError::Ec2Unavailable(format!("DescribeVolumes {id}: {e:?}")))?;
        Ok(out.volumes().iter().filter_map(facts).find(|v| v.id == id))
    }

    async fn tag_volumes(
        &self,
        ids: &[String],
        tags: &[(String, String)],
    ) -> Result<(), StepError> {
        // Refused (IAM, or a volume that is gone): a person must look; not retried.
        self.create_tags(ids, tags).await.map_err(|e| {
            refused(&e, "InvalidVolume", "CreateTags on volumes")
                .unwrap_or_else(|| StepError::Ec2Unavailable(format!("CreateTags: {e:?}")))
        })
    }
}

/// The facts of a described volume (`None` without an id).
fn facts(v: &aws_sdk_ec2::types::Volume) -> Option<VolumeFacts> {
    Some(VolumeFacts {
        id: v.volume_id()?.to_string(),
        snapshot_id: v.snapshot_id().filter(|s| !s.is_empty()).map(String::from),
        availability_zone: v.availability_zone().unwrap_or_default().to_string(),
        create_time: v
            .create_time()
            .and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos())),
        state: v
            .state()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        tags: v
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
            .collect(),
    })
}
