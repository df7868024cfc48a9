//! The AWS side of the simulated data planes: EBS volumes and snapshots (EC2) and the backup
//! storage (S3), both reached through the real SDKs (the local emulator via `AWS_ENDPOINT_URL`).
//!
//! EC2 calls are retried here, not in the SDK (whose retries are turned off for EC2), with the
//! backoff of the TiDB clean job: 1 s doubling up to 1 min, 8 attempts, on throttling codes and on
//! transport errors.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification, VolumeType};
use aws_sdk_s3::primitives::ByteStream;

/// An AWS call that failed for good.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{op}: {message}")]
pub struct CloudError {
    /// The operation, e.g. `CreateSnapshot`.
    pub op: &'static str,
    /// The AWS error code, when the service answered with one.
    pub code: Option<String>,
    /// Human readable details.
    pub message: String,
    /// Whether trying again later could help.
    pub transient: bool,
}

/// EC2 error codes that mean "slow down".
const THROTTLING_CODES: &[&str] = &[
    "RequestLimitExceeded",
    "Throttling",
    "ThrottlingException",
    "TooManyRequestsException",
    "SnapshotCreationPerVolumeRateExceeded",
    "ServiceUnavailable",
    "Unavailable",
    "InternalError",
];

fn classify<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug>(
    op: &'static str,
    err: SdkError<E, R>,
) -> CloudError {
    let (code, transient) = match &err {
        SdkError::ServiceError(se) => {
            let code = se.err().code().map(String::from);
            let throttled = code
                .as_deref()
                .is_some_and(|c| THROTTLING_CODES.contains(&c));
            (code, throttled)
        }
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_) => {
            (None, true)
        }
        _ => (None, false),
    };
    CloudError {
        op,
        code,
        message: DisplayErrorContext(&err).to_string(),
        transient,
    }
}

impl CloudError {
    /// True when the error code is one of `codes`.
    pub fn has_code(&self, codes: &[&str]) -> bool {
        self.code.as_deref().is_some_and(|c| codes.contains(&c))
    }
}

/// Attempts of one EC2 call before giving up.
pub const EC2_ATTEMPTS: u32 = 8;

/// Runs the SDK call `call` until it succeeds, fails for good, or [`EC2_ATTEMPTS`] transient failures happened.
pub async fn with_backoff<T, E, R, F, Fut>(op: &'static str, mut call: F) -> Result<T, CloudError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, SdkError<E, R>>>,
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let mut wait = Duration::from_secs(1);
    let mut attempt = 1;
    loop {
        match call().await.map_err(|e| classify(op, e)) {
            Ok(v) => return Ok(v),
            Err(e) if e.transient && attempt < EC2_ATTEMPTS => {
                tracing::warn!(
                    op,
                    attempt,
                    code = e.code.as_deref().unwrap_or(""),
                    wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                    "transient AWS error, backing off"
                );
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(60));
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// An EBS volume as the simulator needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeInfo {
    /// `vol-...`
    pub id: String,
    /// Availability zone.
    pub az: String,
    /// Size in GiB.
    pub size_gib: i64,
    /// Snapshot it was created from, if any.
    pub snapshot_id: Option<String>,
    /// Volume state (`available`, ...).
    pub state: String,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

impl VolumeInfo {
    /// True when the volume carries every `(key, value)` of `tags`.
    pub fn has_tags(&self, tags: &[(&str, &str)]) -> bool {
        tags.iter()
            .all(|(k, want)| self.tags.get(*k).map(String::as_str) == Some(*want))
    }
}

/// An EBS snapshot as the simulator needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// `snap-...`
    pub id: String,
    /// Source volume.
    pub volume_id: String,
    /// Emulator state (always `completed` with moto).
    pub state: String,
    /// Size in GiB.
    pub size_gib: i64,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

/// Outcome of a deletion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    /// It existed and is gone.
    Deleted,
    /// It did not exist (`InvalidSnapshot.NotFound` / `InvalidVolume.NotFound`).
    NotFound,
}

fn tags_of(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or("").to_string())))
        .collect()
}

fn tag_spec(resource: ResourceType, tags: &BTreeMap<String, String>) -> TagSpecification {
    let mut spec = TagSpecification::builder().resource_type(resource);
    for (k, v) in tags {
        spec = spec.tags(Tag::builder().key(k).value(v).build());
    }
    spec.build()
}

fn volume_info(v: &aws_sdk_ec2::types::Volume) -> VolumeInfo {
    VolumeInfo {
        id: v.volume_id().unwrap_or_default().to_string(),
        az: v.availability_zone().unwrap_or_default().to_string(),
        size_gib: i64::from(v.size().unwrap_or(0)),
        snapshot_id: v.snapshot_id().filter(|s| !s.is_empty()).map(String::from),
        state: v
            .state()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        tags: tags_of(v.tags()),
    }
}

/// The app name the simulated operator's AWS clients put in their user agent.
pub const SIM_APP_NAME: &str = "brfed-sim-operator";

/// EC2 and S3 clients of the emulated account.
#[derive(Debug, Clone)]
pub struct Cloud {
    /// EC2 client (SDK retries off: see the module docs).
    pub ec2: aws_sdk_ec2::Client,
    /// S3 client (path-style addressing).
    pub s3: aws_sdk_s3::Client,
    /// Region of both.
    pub region: String,
}

impl Cloud {
    /// Builds the clients from the standard AWS environment (`AWS_ENDPOINT_URL`, credentials) for `region`.
    /// Without `AWS_ACCESS_KEY_ID`, static test credentials are used (the emulator accepts anything).
    pub async fn from_env(region: &str) -> Self {
        // app name in the user agent: the emulator tells the data plane's S3 requests from
        // brfed's by it (`GET /_brfed/billed-calls`, `dataPlane`), so that `make bench` prices
        // brfed's alone (the operator's backup data is the same for both tools)
        let mut loader = aws_config::from_env()
            .region(aws_config::Region::new(region.to_string()))
            .app_name(aws_config::AppName::new(SIM_APP_NAME).expect("a valid app name"));
        if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
            loader = loader.credentials_provider(aws_sdk_ec2::config::Credentials::new(
                "test",
                "test",
                None,
                None,
                "brfed-sim",
            ));
        }
        let shared = loader.load().await;
        let ec2 = aws_sdk_ec2::config::Builder::from(&shared)
            .retry_config(aws_sdk_ec2::config::retry::RetryConfig::disabled())
            .build();
        let s3 = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(true)
            .build();
        Self {
            ec2: aws_sdk_ec2::Client::from_conf(ec2),
            s3: aws_sdk_s3::Client::from_conf(s3),
            region: region.to_string(),
        }
    }

    // ---------------------------------------------------------------- EC2

    /// Volumes carrying every tag of `tags`.
    ///
    /// The tags are matched here, not by EC2 `tag:` filters: moto evaluates each tag filter by
    /// scanning every tag of the account for every volume, which takes seconds once a long-lived
    /// local world holds a few hundred volumes; one unfiltered listing stays well under a second.
    pub async fn volumes_tagged(
        &self,
        tags: &[(&str, &str)],
    ) -> Result<Vec<VolumeInfo>, CloudError> {
        let mut volumes = self.describe_volumes(Vec::new()).await?;
        volumes.retain(|v| v.has_tags(tags));
        Ok(volumes)
    }

    /// Volumes by id (missing ones are an error).
    pub async fn volumes_by_id(&self, ids: &[String]) -> Result<Vec<VolumeInfo>, CloudError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.describe_volumes(ids.to_vec()).await
    }

    /// Volumes created from `snapshot_id` (an attribute filter, cheap in the emulator too).
    pub async fn volumes_from_snapshot(
        &self,
        snapshot_id: &str,
    ) -> Result<Vec<VolumeInfo>, CloudError> {
        let filter = Filter::builder()
            .name("snapshot-id")
            .values(snapshot_id)
            .build();
        let out = with_backoff("DescribeVolumes", || {
            self.ec2.describe_volumes().filters(filter.clone()).send()
        })
        .await?;
        Ok(out.volumes().iter().map(volume_info).collect())
    }

    async fn describe_volumes(&self, ids: Vec<String>) -> Result<Vec<VolumeInfo>, CloudError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = with_backoff("DescribeVolumes", || {
                self.ec2
                    .describe_volumes()
                    .set_volume_ids((!ids.is_empty()).then(|| ids.clone()))
                    .set_next_token(token.clone())
                    .send()
            })
            .await;
            let page = page?;
            out.extend(page.volumes().iter().map(volume_info));
            token = page
                .next_token()
                .filter(|t| !t.is_empty())
                .map(String::from);
            if token.is_none() {
                break;
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// Creates an empty gp3 volume (seeding).
    pub async fn create_empty_volume(
        &self,
        az: &str,
        size_gib: i32,
        tags: &BTreeMap<String, String>,
    ) -> Result<String, CloudError> {
        let out = with_backoff("CreateVolume", || {
            self.ec2
                .create_volume()
                .availability_zone(az)
                .size(size_gib)
                .volume_type(VolumeType::Gp3)
                .tag_specifications(tag_spec(ResourceType::Volume, tags))
                .send()
        })
        .await?;
        Ok(out.volume_id().unwrap_or_default().to_string())
    }

    /// Creates a volume from a snapshot in `az`.
    pub async fn create_volume_from_snapshot(
        &self,
        snapshot_id: &str,
        az: &str,
        volume_type: &str,
        tags: &BTreeMap<String, String>,
        client_token: &str,
    ) -> Result<String, CloudError> {
        let out = with_backoff("CreateVolume", || {
            self.ec2
                .create_volume()
                .availability_zone(az)
                .snapshot_id(snapshot_id)
                .volume_type(VolumeType::from(volume_type))
                .client_token(client_token)
                .tag_specifications(tag_spec(ResourceType::Volume, tags))
                .send()
        })
        .await?;
        Ok(out.volume_id().unwrap_or_default().to_string())
    }

    /// Adds `tags` to one resource (`CreateTags`, one call per resource as upstream `AddTags`).
    pub async fn add_tags(
        &self,
        resource_id: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), CloudError> {
        let tags: Vec<Tag> = tags
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect();
        with_backoff("CreateTags", || {
            self.ec2
                .create_tags()
                .resources(resource_id)
                .set_tags(Some(tags.clone()))
                .send()
        })
        .await?;
        Ok(())
    }

    /// Deletes a volume; a missing one counts as deleted.
    pub async fn delete_volume(&self, volume_id: &str) -> Result<Deleted, CloudError> {
        let res = with_backoff("DeleteVolume", || {
            self.ec2.delete_volume().volume_id(volume_id).send()
        })
        .await;
        match res {
            Ok(_) => Ok(Deleted::Deleted),
            Err(e) if e.has_code(&["InvalidVolume.NotFound"]) => Ok(Deleted::NotFound),
            Err(e) => Err(e),
        }
    }

    /// Snapshots one volume, tagging the snapshot with `tags`.
    pub async fn create_snapshot(
        &self,
        volume_id: &str,
        description: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<String, CloudError> {
        let out = with_backoff("CreateSnapshot", || {
            self.ec2
                .create_snapshot()
                .volume_id(volume_id)
                .description(description)
                .tag_specifications(tag_spec(ResourceType::Snapshot, tags))
                .send()
        })
        .await?;
        Ok(out.snapshot_id().unwrap_or_default().to_string())
    }

    /// Snapshots by id; `InvalidSnapshot.NotFound` is returned as an error.
    pub async fn snapshots_by_id(&self, ids: &[String]) -> Result<Vec<SnapshotInfo>, CloudError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let out = with_backoff("DescribeSnapshots", || {
            self.ec2
                .describe_snapshots()
                .set_snapshot_ids(Some(ids.to_vec()))
                .send()
        })
        .await?;
        Ok(out
            .snapshots()
            .iter()
            .map(|s| SnapshotInfo {
                id: s.snapshot_id().unwrap_or_default().to_string(),
                volume_id: s.volume_id().unwrap_or_default().to_string(),
                state: s
                    .state()
                    .map(|st| st.as_str().to_string())
                    .unwrap_or_default(),
                size_gib: i64::from(s.volume_size().unwrap_or(0)),
                tags: tags_of(s.tags()),
            })
            .collect())
    }

    /// Deletes a snapshot; a missing one counts as deleted.
    pub async fn delete_snapshot(&self, snapshot_id: &str) -> Result<Deleted, CloudError> {
        let res = with_backoff("DeleteSnapshot", || {
            self.ec2.delete_snapshot().snapshot_id(snapshot_id).send()
        })
        .await;
        match res {
            Ok(_) => Ok(Deleted::Deleted),
            Err(e) if e.has_code(&["InvalidSnapshot.NotFound"]) => Ok(Deleted::NotFound),
            Err(e) => Err(e),
        }
    }

    // ---------------------------------------------------------------- S3

    /// Writes an object.
    pub async fn put(&self, bucket: &str, key: &str, body: Vec<u8>) -> Result<(), CloudError> {
        self.s3
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| classify("PutObject", e))?;
        Ok(())
    }

    /// Reads an object; `None` when it does not exist.
    pub async fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, CloudError> {
        match self.s3.get_object().bucket(bucket).key(key).send().await {
            Ok(out) => {
                let data = out.body.collect().await.map_err(|e| CloudError {
                    op: "GetObject",
                    code: None,
                    message: e.to_string(),
                    transient: true,
                })?;
                Ok(Some(data.into_bytes().to_vec()))
            }
            Err(SdkError::ServiceError(se)) if se.err().is_no_such_key() => Ok(None),
            Err(e) => Err(classify("GetObject", e)),
        }
    }

    /// True when the object exists.
    pub async fn exists(&self, bucket: &str, key: &str) -> Result<bool, CloudError> {
        match self.s3.head_object().bucket(bucket).key(key).send().await {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(se)) if se.err().is_not_found() => Ok(false),
            Err(e) => Err(classify("HeadObject", e)),
        }
    }

    /// Keys under `prefix` (which should end with `/`).
    pub async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, CloudError> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .s3
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .set_continuation_token(token.clone())
                .send()
                .await
                .map_err(|e| classify("ListObjectsV2", e))?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(String::from)),
            );
            token = page.next_continuation_token().map(String::from);
            if token.is_none() {
                return Ok(keys);
            }
        }
    }

    /// Deletes every object under `prefix` (which should end with `/`); returns how many.
    pub async fn delete_prefix(&self, bucket: &str, prefix: &str) -> Result<usize, CloudError> {
        let keys = self.list(bucket, prefix).await?;
        for key in &keys {
            self.s3
                .delete_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .map_err(|e| classify("DeleteObject", e))?;
        }
        Ok(keys.len())
    }

    /// Creates a bucket unless it exists.
    pub async fn ensure_bucket(&self, bucket: &str) -> Result<(), CloudError> {
        if self.s3.head_bucket().bucket(bucket).send().await.is_ok() {
            return Ok(());
        }
        let mut req = self.s3.create_bucket().bucket(bucket);
        if self.region != "us-east-1" {
            req = req.create_bucket_configuration(
                aws_sdk_s3::types::CreateBucketConfiguration::builder()
                    .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(
                        self.region.as_str(),
                    ))
                    .build(),
            );
        }
        match req.send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = classify("CreateBucket", e);
                if e.has_code(&["BucketAlreadyOwnedByYou", "BucketAlreadyExists"]) {
                    Ok(())
                } else {
                    Err(e)
                }
            }
        }
    }
}
