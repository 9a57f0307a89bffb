//! Sink stage: a minimal object-store seam with S3, local-folder and in-memory implementations,
//! the key layout, and `open_store`, the one place that decides what a destination is.

pub mod layout;
pub mod local;
pub mod local_path;
pub mod memory;
pub mod parts;
pub mod s3;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use aws_config::SdkConfig;
use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::aws::{self, AwsSettings};
use crate::error::{Error, Result};

/// Content type of Parquet objects.
pub const PARQUET_CONTENT_TYPE: &str = "application/vnd.apache.parquet";

/// Where a job writes, parsed from `--destination`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// `s3://bucket/prefix`.
    S3 {
        /// Bucket name.
        bucket: String,
        /// Key prefix without leading or trailing `/` (may be empty).
        prefix: String,
    },
    /// A folder on this machine.
    Local {
        /// Absolute path of the folder.
        root: PathBuf,
    },
}

impl Destination {
    /// Parses `s3://bucket[/prefix]`, `file:///path` or a plain path.
    pub fn parse(text: &str) -> Result<Destination> {
        let bad = |why: &str| {
            Error::Usage(format!(
                "invalid --destination {text:?}: {why}; use s3://bucket/prefix, file:///path or a folder path"
            ))
        };
        if let Some(rest) = text.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let valid_bucket = (3..=63).contains(&bucket.len())
                && bucket
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
            if !valid_bucket {
                return Err(bad("not a valid S3 bucket name"));
            }
            let prefix = prefix.trim_matches('/').to_string();
            return Ok(Destination::S3 {
                bucket: bucket.to_string(),
                prefix,
            });
        }
        if let Some(path) = text.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(bad("a file:// URL needs an absolute path (file:///...)"));
            }
        } else if text.is_empty() || text.contains("://") {
            return Err(bad("unsupported scheme"));
        }
        let path = text.strip_prefix("file://").unwrap_or(text);
        let root = local_path::normalize(path).ok_or_else(|| bad("not a usable path"))?;
        Ok(Destination::Local { root })
    }

    /// The URL a local destination spelled `text` was stored under before spellings were
    /// normalised, when it differs from [`Destination::url`]: a job started then under its
    /// default id is found again under that spelling's id.
    pub fn legacy_url(&self, text: &str) -> Option<String> {
        let Destination::Local { .. } = self else {
            return None;
        };
        let legacy = format!("file://{}", local_path::legacy(text)?.display());
        (legacy != self.url()).then_some(legacy)
    }

    /// The normalised URL, as stored in the job identity.
    pub fn url(&self) -> String {
        match self {
            Destination::S3 { bucket, prefix } if prefix.is_empty() => format!("s3://{bucket}"),
            Destination::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
            Destination::Local { root } => format!("file://{}", root.display()),
        }
    }

    /// True for S3 destinations (they need AWS credentials, a lease, and SSM by default).
    pub fn is_s3(&self) -> bool {
        matches!(self, Destination::S3 { .. })
    }
}

impl Serialize for Destination {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.url())
    }
}

impl<'de> Deserialize<'de> for Destination {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Destination::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Reads a stored destination URL as its normalised spelling (state written before spellings
/// were normalised compares equal to today's request).
pub(crate) fn deserialize_normalized_url<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<String, D::Error> {
    let text = String::deserialize(deserializer)?;
    Ok(Destination::parse(&text).map_or(text, |destination| destination.url()))
}

/// The job id to use when none was asked for: `default_id`, unless it has no job at `store`
/// and `legacy_id` (the id an older build gave the same destination spelled differently)
/// has one under `key_of`, which is then resumed.
pub(crate) async fn default_or_legacy_id(
    store: &dyn ObjectStore,
    default_id: String,
    legacy_id: Option<String>,
    key_of: fn(&str) -> String,
) -> Result<String> {
    let Some(legacy_id) = legacy_id.filter(|legacy| *legacy != default_id) else {
        return Ok(default_id);
    };
    if store.get(&key_of(&default_id)).await?.is_none()
        && store.get(&key_of(&legacy_id)).await?.is_some()
    {
        tracing::info!("resuming job {legacy_id}, started with this destination spelled as given (today's builds call it {default_id})");
        return Ok(legacy_id);
    }
    Ok(default_id)
}

/// Opens the object store of a destination to write to: a local folder is created, an S3
/// bucket is checked and its Region found (S3 calls then go to that Region). S3 needs the loaded
/// AWS config.
pub async fn open_store(
    destination: &Destination,
    config: Option<&SdkConfig>,
) -> Result<Arc<dyn ObjectStore>> {
    let store = open_checked(destination, config).await?;
    if !destination.is_s3() {
        store.check().await?;
    }
    Ok(store)
}

/// Opens a destination without creating anything: a local folder as it is (created later by
/// [`ObjectStore::check`]), an S3 bucket checked by HeadBucket (once) in its own Region.
pub async fn open_checked(
    destination: &Destination,
    config: Option<&SdkConfig>,
) -> Result<Arc<dyn ObjectStore>> {
    match (destination, config) {
        (Destination::Local { root }, _) => Ok(Arc::new(local::LocalStore::new(root.clone()))),
        (Destination::S3 { bucket, prefix }, Some(config)) => Ok(Arc::new(
            s3::S3Store::connect(config, bucket.clone(), prefix.clone()).await?,
        )),
        (Destination::S3 { .. }, None) => Err(Error::Internal(
            "an S3 destination was opened without AWS configuration".into(),
        )),
    }
}

/// Opens a destination that must already exist, for reading job state (`status`, `verify`):
/// AWS configuration is loaded only for S3, and a local folder is not created.
pub async fn open_existing(
    destination: &Destination,
    settings: &AwsSettings,
) -> Result<Arc<dyn ObjectStore>> {
    let config = match destination {
        Destination::S3 { .. } => Some(aws::load(settings).await?),
        Destination::Local { root } if !root.is_dir() => {
            return Err(Error::Destination {
                location: destination.url(),
                message:
                    "no such folder: check --destination (it is the folder an export wrote to)"
                        .into(),
                source: None,
            })
        }
        Destination::Local { .. } => None,
    };
    open_checked(destination, config.as_ref()).await
}

/// An object's key (relative to the destination) and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Key relative to the destination.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
}

/// A write precondition, as S3's conditional writes express it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Precondition {
    /// `If-None-Match: *`: create only.
    Absent,
    /// `If-Match: <etag>`: replace only this version.
    Matches(String),
}

/// Result of a conditional write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CondPut {
    /// Written; the new version's ETag.
    Written(String),
    /// The precondition did not hold; nothing was written.
    PreconditionFailed,
}

/// The operations the pipeline needs from a destination. Keys are relative to the destination.
#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// Full location of a key, for messages.
    fn location(&self, key: &str) -> String;
    /// The folder of a store on this machine's file system (a job there is locked with an OS
    /// file lock); `None` for remote stores (locked with a lease object).
    fn local_root(&self) -> Option<&Path> {
        None
    }
    /// Fails with a clear error when the destination does not exist or cannot be reached.
    async fn check(&self) -> Result<()>;
    /// Writes an object durably (multipart for large bodies on S3).
    async fn put(&self, key: &str, body: Bytes, content_type: &str) -> Result<()>;
    /// Writes only if the precondition holds.
    async fn put_if(&self, key: &str, body: Bytes, precondition: Precondition) -> Result<CondPut>;
    /// Reads an object and its ETag; `None` when absent.
    async fn get(&self, key: &str) -> Result<Option<(Bytes, String)>>;
    /// Reads the last `len` bytes of an object (Parquet footers).
    async fn get_tail(&self, key: &str, len: u64) -> Result<Bytes>;
    /// Lists objects under a key prefix, sorted by key.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>>;
    /// Deletes an object; deleting an absent object succeeds.
    async fn delete(&self, key: &str) -> Result<()>;
    /// Deletes an object only while its ETag is `etag` (S3's conditional delete); returns
    /// whether it was deleted (`false`: it changed or is gone, and is left as it is).
    async fn delete_if(&self, key: &str, etag: &str) -> Result<bool>;
}

/// A conditional write that recognises its own earlier attempt: when the precondition fails and
/// the stored object is exactly `body` (a retried write whose first attempt landed, its answer
/// lost), the write succeeded and the stored version's ETag is returned.
pub async fn put_if_or_own(
    store: &dyn ObjectStore,
    key: &str,
    body: Bytes,
    precondition: Precondition,
) -> Result<CondPut> {
    match store.put_if(key, body.clone(), precondition).await? {
        CondPut::PreconditionFailed => match store.get(key).await? {
            Some((stored, etag)) if stored == body => Ok(CondPut::Written(etag)),
            _ => Ok(CondPut::PreconditionFailed),
        },
        written => Ok(written),
    }
}

/// The ETag of bytes as the local store computes it (a content hash).
pub fn content_etag(body: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(body)[..12])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_parse_into_bucket_prefix_or_folder() {
        assert_eq!(
            Destination::parse("s3://my-bucket/lake/sh/").unwrap(),
            Destination::S3 {
                bucket: "my-bucket".into(),
                prefix: "lake/sh".into()
            }
        );
        assert_eq!(
            Destination::parse("s3://my-bucket").unwrap().url(),
            "s3://my-bucket"
        );
        assert_eq!(
            Destination::parse("file:///tmp/lake").unwrap(),
            Destination::Local {
                root: "/tmp/lake".into()
            }
        );
        assert!(matches!(
            Destination::parse("./lake").unwrap(),
            Destination::Local { .. }
        ));
    }

    #[tokio::test]
    async fn a_job_started_under_an_older_spelling_is_found_again() {
        let destination = Destination::parse("/tmp/lake/").unwrap();
        assert_eq!(destination.url(), "file:///tmp/lake");
        assert_eq!(
            destination.legacy_url("/tmp/lake/").as_deref(),
            Some("file:///tmp/lake/")
        );
        assert_eq!(destination.legacy_url("/tmp/lake"), None);
        let store = memory::MemoryStore::new();
        let key = layout::checkpoint_key;
        let pick = |legacy: Option<&str>| {
            default_or_legacy_id(&store, "new".into(), legacy.map(Into::into), key)
        };
        assert_eq!(
            pick(Some("old")).await.unwrap(),
            "new",
            "no job under either"
        );
        store
            .put(&key("old"), Bytes::from_static(b"{}"), "application/json")
            .await
            .unwrap();
        assert_eq!(
            pick(Some("old")).await.unwrap(),
            "old",
            "the older spelling's job resumes"
        );
        assert_eq!(pick(None).await.unwrap(), "new");
        store
            .put(&key("new"), Bytes::from_static(b"{}"), "application/json")
            .await
            .unwrap();
        assert_eq!(
            pick(Some("old")).await.unwrap(),
            "new",
            "today's id wins once it has a job"
        );
        #[derive(serde::Deserialize)]
        struct Stored {
            #[serde(deserialize_with = "deserialize_normalized_url")]
            destination: String,
        }
        let stored: Stored =
            serde_json::from_str(r#"{"destination": "file:///tmp/./lake/"}"#).unwrap();
        assert_eq!(stored.destination, "file:///tmp/lake");
    }

    #[test]
    fn bad_destinations_are_usage_errors() {
        for bad in [
            "",
            "gs://bucket/x",
            "s3://",
            "s3://UPPER/x",
            "file://relative",
            "http://x",
        ] {
            let err = Destination::parse(bad).unwrap_err();
            assert!(matches!(err, Error::Usage(_)), "{bad}: {err}");
        }
    }
}
