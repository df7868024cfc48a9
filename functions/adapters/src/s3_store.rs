//! [`ObjectStore`] on S3.

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use brfed_core::StepError;
use brfed_core::ports::{ObjectStore, Precondition, Versioned};
use serde_json::Value;

/// S3 as brfed's object store.
#[derive(Clone, Debug)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
}

impl S3Store {
    /// Builds the client from the shared AWS config.
    pub fn new(sdk: &aws_config::SdkConfig, path_style: bool) -> Self {
        let conf = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(path_style)
            .build();
        Self {
            client: aws_sdk_s3::Client::from_conf(conf),
        }
    }

    /// The underlying client.
    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.client
    }

    /// Reads an object as text (used for a kubeconfig kept in S3).
    pub async fn get_text(&self, bucket: &str, key: &str) -> Result<Option<String>, StepError> {
        let Some((bytes, _)) = self.get_bytes(bucket, key).await? else {
            return Ok(None);
        };
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| StepError::Configuration(format!("s3://{bucket}/{key} is not UTF-8")))
    }

    /// An object's bytes and ETag; `None` when there is no such key.
    async fn get_bytes(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<(Vec<u8>, String)>, StepError> {
        let got = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await;
        match got {
            Ok(out) => {
                let etag = out.e_tag().unwrap_or_default().to_string();
                let body = out.body.collect().await;
                let bytes = body.map_err(|e| unavailable(bucket, key, e))?.into_bytes();
                Ok(Some((bytes.to_vec(), etag)))
            }
            Err(e) if e.code() == Some("NoSuchKey") => Ok(None),
            Err(e) => Err(unavailable(bucket, key, e)),
        }
    }
}

fn unavailable(bucket: &str, key: &str, e: impl std::fmt::Display + std::fmt::Debug) -> StepError {
    StepError::CatalogUnavailable(format!("s3://{bucket}/{key}: {e:?}"))
}

impl ObjectStore for S3Store {
    async fn get_json(&self, bucket: &str, key: &str) -> Result<Option<Versioned>, StepError> {
        let Some((bytes, etag)) = self.get_bytes(bucket, key).await? else {
            return Ok(None);
        };
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
            StepError::CatalogUnavailable(format!("s3://{bucket}/{key} is not JSON: {e}"))
        })?;
        Ok(Some(Versioned { value, etag }))
    }

    async fn put_json(
        &self,
        bucket: &str,
        key: &str,
        value: &Value,
        precondition: Precondition,
    ) -> Result<(), StepError> {
        let body =
            serde_json::to_vec_pretty(value).map_err(|e| StepError::Internal(e.to_string()))?;
        let mut put = self
            .client
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type("application/json")
            .body(ByteStream::from(body));
        put = match &precondition {
            Precondition::None => put,
            Precondition::IfAbsent => put.if_none_match("*"),
            Precondition::IfMatch(etag) => put.if_match(etag),
        };
        match put.send().await {
            Ok(_) => Ok(()),
            // 412 PreconditionFailed: the object changed (or exists); 409 ConditionalRequestConflict: a concurrent write.
            Err(e)
                if matches!(
                    e.code(),
                    Some("PreconditionFailed") | Some("ConditionalRequestConflict")
                ) =>
            {
                Err(StepError::CatalogConflict(format!(
                    "s3://{bucket}/{key} changed concurrently"
                )))
            }
            Err(e) => Err(unavailable(bucket, key, e)),
        }
    }

    async fn exists(&self, bucket: &str, key: &str) -> Result<bool, StepError> {
        match self
            .client
            .head_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(false),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(false),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 403) => {
                Err(StepError::BucketNotAllowed(format!(
                    "s3://{bucket}/{key}: access denied (403), so the prefix cannot be checked: \
                     the stack's roles may read only under its BackupBucketName and \
                     BackupPrefix (docs/deploy.md)"
                )))
            }
            Err(e) => Err(unavailable(bucket, key, e)),
        }
    }

    async fn list_keys(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, StepError> {
        let mut keys = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| unavailable(bucket, prefix, e))?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(String::from)),
            );
        }
        Ok(keys)
    }

    async fn delete_object(&self, bucket: &str, key: &str) -> Result<(), StepError> {
        match self
            .client
            .delete_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("NoSuchKey") => Ok(()),
            Err(e) => Err(unavailable(bucket, key, e)),
        }
    }
}
