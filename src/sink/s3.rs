//! S3 object store: single PUT or multipart upload, conditional writes, footer range reads.

use std::time::Duration;

use async_trait::async_trait;
use aws_config::{Region, SdkConfig};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;

use super::{CondPut, ObjectMeta, ObjectStore, Precondition};
use crate::aws::{self, Failure};
use crate::error::{Error, Result};

/// Bodies above this size go up as a multipart upload.
pub const MULTIPART_THRESHOLD: usize = 16 * 1024 * 1024;
/// Size of each multipart part (S3's minimum is 5 MiB).
pub const MULTIPART_PART_SIZE: usize = 8 * 1024 * 1024;
/// Attempts at a conditional write that S3 answers 409 `ConditionalRequestConflict`.
const CONFLICT_ATTEMPTS: u32 = 8;
/// First wait after a 409 (doubling, at most 2 s).
const CONFLICT_BASE_DELAY: Duration = Duration::from_millis(50);

/// Objects under `s3://bucket/prefix/`.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
    /// The endpoint every call goes to when one is configured (an emulator), for advice.
    endpoint: Option<String>,
}

impl S3Store {
    /// A store of the objects under `s3://bucket/prefix/`.
    pub fn new(client: aws_sdk_s3::Client, bucket: String, prefix: String) -> Self {
        S3Store {
            client,
            bucket,
            prefix,
            endpoint: None,
        }
    }

    /// A store for an existing bucket, checked with HeadBucket, which also tells the bucket's
    /// Region (`x-amz-bucket-region`, on success and on a 301): the SDK does not follow S3's 301
    /// to another Region, so the client is rebuilt for the bucket's Region when it differs.
    pub async fn connect(config: &SdkConfig, bucket: String, prefix: String) -> Result<Self> {
        let store = S3Store {
            endpoint: config.endpoint_url().map(str::to_string),
            ..S3Store::new(aws::s3_client(config), bucket, prefix)
        };
        let configured = config.region().map(|r| r.to_string());
        let (region, checked) = match store.head_bucket().await {
            Ok(out) => (out.bucket_region().map(str::to_string), true),
            Err(err) => {
                let region = err
                    .raw_response()
                    .and_then(|r| r.headers().get("x-amz-bucket-region"))
                    .map(str::to_string);
                match region {
                    Some(region) if Some(&region) != configured.as_ref() => (Some(region), false),
                    _ => return Err(store.failed("", "check", Failure::of(&err))),
                }
            }
        };
        let Some(region) = region.filter(|r| Some(r) != configured.as_ref()) else {
            return Ok(store);
        };
        tracing::info!(
            "bucket {} is in {region}; its S3 calls go there",
            store.bucket
        );
        let in_region = config.to_builder().region(Region::new(region)).build();
        let store = S3Store {
            endpoint: store.endpoint,
            ..S3Store::new(aws::s3_client(&in_region), store.bucket, store.prefix)
        };
        if !checked {
            store.check().await?;
        }
        Ok(store)
    }

    async fn head_bucket(
        &self,
    ) -> std::result::Result<
        aws_sdk_s3::operation::head_bucket::HeadBucketOutput,
        aws_sdk_s3::error::SdkError<aws_sdk_s3::operation::head_bucket::HeadBucketError>,
    > {
        self.client.head_bucket().bucket(&self.bucket).send().await
    }

    fn full_key(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}/{key}", self.prefix)
        }
    }

    /// Maps an SDK failure on `key` to our error, naming the cause and the fix.
    fn failed(&self, key: &str, action: &str, failure: Failure) -> Error {
        let location = self.location(key);
        if failure.code.as_deref() == Some("NoSuchBucket")
            || (action == "check" && failure.status == Some(404))
        {
            let emulated = match &self.endpoint {
                Some(url) => format!(" at {url} (--endpoint-url and AWS_ENDPOINT_URL send S3 calls there too: to keep an emulated Security Hub and write to real S3, set AWS_ENDPOINT_URL_SECURITYHUB instead, or create the bucket there)"),
                None => String::new(),
            };
            return Error::destination(
                location,
                format!(
                    "bucket {} does not exist{emulated}; create it or fix --destination",
                    self.bucket
                ),
                None,
            );
        }
        if failure.is_access_denied() {
            let needed = match action {
                "check" | "list" => "s3:ListBucket on the bucket",
                "read" => "s3:GetObject on the prefix",
                "delete" => "s3:DeleteObject on the prefix",
                _ => "s3:PutObject on the prefix",
            };
            return Error::auth(
                format!("access denied to {location} when trying to {action} ({}); allow {needed} (`sechub-export permissions` with the same flags prints the whole policy)", failure.summary()),
                None,
            );
        }
        Error::destination(
            location,
            format!("cannot {action}: {}", failure.summary()),
            None,
        )
    }

    /// Reads a GetObject body to the end.
    async fn read_body(&self, key: &str, body: ByteStream) -> Result<Bytes> {
        let collected = body.collect().await.map_err(|e| {
            Error::destination(
                self.location(key),
                "read failed mid-body; retry",
                Some(Box::new(e) as _),
            )
        })?;
        Ok(collected.into_bytes())
    }

    async fn put_multipart(&self, key: &str, body: Bytes, content_type: &str) -> Result<()> {
        let full = self.full_key(key);
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(&full)
            .content_type(content_type)
            .send()
            .await
            .map_err(|e| self.failed(key, "start a multipart upload", Failure::of(&e)))?;
        let upload_id = created.upload_id().unwrap_or_default().to_string();
        let result = match self.upload_parts(&full, &upload_id, &body).await {
            Ok(parts) => self
                .client
                .complete_multipart_upload()
                .bucket(&self.bucket)
                .key(&full)
                .upload_id(&upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .send()
                .await
                .map(|_| ()),
            Err(err) => return self.abort_after(&full, &upload_id, err).await,
        };
        let result = match result {
            Ok(()) => Ok(()),
            // A retried completion whose first attempt landed (its answer lost) finds no upload:
            // the object is there, whole, when its size is the body's.
            Err(err) if Failure::of(&err).code.as_deref() == Some("NoSuchUpload") => {
                match self.size_of(&full).await {
                    Some(size) if size == body.len() as u64 => Ok(()),
                    _ => Err(self.failed(key, "complete a multipart upload", Failure::of(&err))),
                }
            }
            Err(err) => Err(self.failed(key, "complete a multipart upload", Failure::of(&err))),
        };
        match result {
            Ok(()) => Ok(()),
            Err(err) => self.abort_after(&full, &upload_id, err).await,
        }
    }

    /// Aborts a multipart upload that failed (a piece or the completion), so nothing stays
    /// pending, and returns the failure.
    async fn abort_after(&self, full: &str, upload_id: &str, err: Error) -> Result<()> {
        let _ = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(full)
            .upload_id(upload_id)
            .send()
            .await;
        Err(err)
    }

    /// The size of an object (a full key), if it exists.
    async fn size_of(&self, full: &str) -> Option<u64> {
        let out = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(full)
            .send()
            .await
            .ok()?;
        out.content_length().map(|n| n.max(0) as u64)
    }

    async fn upload_parts(
        &self,
        full: &str,
        upload_id: &str,
        body: &Bytes,
    ) -> Result<Vec<CompletedPart>> {
        let mut parts = Vec::new();
        for (index, start) in (0..body.len()).step_by(MULTIPART_PART_SIZE).enumerate() {
            let end = (start + MULTIPART_PART_SIZE).min(body.len());
            let number = index as i32 + 1;
            let out = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(full)
                .upload_id(upload_id)
                .part_number(number)
                .body(ByteStream::from(body.slice(start..end)))
                .send()
                .await
                .map_err(|e| self.failed(full, "upload a part", Failure::of(&e)))?;
            parts.push(
                CompletedPart::builder()
                    .set_e_tag(out.e_tag().map(str::to_string))
                    .part_number(number)
                    .build(),
            );
        }
        Ok(parts)
    }
}

#[async_trait]
impl ObjectStore for S3Store {
    fn location(&self, key: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.full_key(key))
    }

    async fn check(&self) -> Result<()> {
        self.head_bucket()
            .await
            .map(|_| ())
            .map_err(|e| self.failed("", "check", Failure::of(&e)))
    }

    async fn put(&self, key: &str, body: Bytes, content_type: &str) -> Result<()> {
        if body.len() > MULTIPART_THRESHOLD {
            return self.put_multipart(key, body, content_type).await;
        }
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .content_type(content_type)
            .body(ByteStream::from(body))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.failed(key, "write", Failure::of(&e)))
    }

    async fn put_if(&self, key: &str, body: Bytes, precondition: Precondition) -> Result<CondPut> {
        let mut delay = CONFLICT_BASE_DELAY;
        for attempt in 1.. {
            let mut request = self
                .client
                .put_object()
                .bucket(&self.bucket)
                .key(self.full_key(key))
                .content_type("application/json")
                .body(ByteStream::from(body.clone()));
            request = match &precondition {
                Precondition::Absent => request.if_none_match("*"),
                Precondition::Matches(etag) => request.if_match(etag),
            };
            let failure = match request.send().await {
                Ok(out) => {
                    return Ok(CondPut::Written(
                        out.e_tag().unwrap_or_default().to_string(),
                    ))
                }
                Err(err) => Failure::of(&err),
            };
            match failure.status {
                Some(412) => return Ok(CondPut::PreconditionFailed),
                // If-Match on a key deleted since answers 404: the version is gone all the same.
                Some(404) if matches!(precondition, Precondition::Matches(_)) => {
                    return Ok(CondPut::PreconditionFailed)
                }
                // A concurrent conditional write to the same key: S3 says retry.
                Some(409) if attempt < CONFLICT_ATTEMPTS => {
                    tracing::debug!(
                        key,
                        attempt,
                        "409 conflict on a conditional write; retrying"
                    );
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
                _ => return Err(self.failed(key, "write", failure)),
            }
        }
        unreachable!("the loop returns")
    }

    async fn get(&self, key: &str) -> Result<Option<(Bytes, String)>> {
        let out = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .send()
            .await
        {
            Ok(out) => out,
            Err(err) => {
                let failure = Failure::of(&err);
                if failure.code.as_deref() == Some("NoSuchKey")
                    || failure.status == Some(404)
                        && failure.code.as_deref() != Some("NoSuchBucket")
                {
                    return Ok(None);
                }
                return Err(self.failed(key, "read", failure));
            }
        };
        let etag = out.e_tag().unwrap_or_default().to_string();
        Ok(Some((self.read_body(key, out.body).await?, etag)))
    }

    async fn get_tail(&self, key: &str, len: u64) -> Result<Bytes> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .range(format!("bytes=-{len}"))
            .send()
            .await
            .map_err(|e| self.failed(key, "read", Failure::of(&e)))?;
        self.read_body(key, out.body).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let strip = if self.prefix.is_empty() {
            0
        } else {
            self.prefix.len() + 1
        };
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(self.full_key(prefix))
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.failed(prefix, "list", Failure::of(&e)))?;
            for object in page.contents() {
                let Some(key) = object.key() else { continue };
                out.push(ObjectMeta {
                    key: key[strip..].to_string(),
                    size: object.size().unwrap_or_default().max(0) as u64,
                });
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.failed(key, "delete", Failure::of(&e)))
    }

    async fn delete_if(&self, key: &str, etag: &str) -> Result<bool> {
        let sent = self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .if_match(etag)
            .send()
            .await;
        match sent {
            Ok(_) => Ok(true),
            Err(err) => {
                let failure = Failure::of(&err);
                // 412: replaced since; 404: already gone; 409: a concurrent write won.
                match failure.status {
                    Some(412 | 404 | 409) => Ok(false),
                    _ => Err(self.failed(key, "delete", failure)),
                }
            }
        }
    }
}
