//! The state of a multi-stream job beside its streams' own checkpoints: the stream set frozen
//! when the job was created (written once, create-only), and how each stream ended last run.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::request::{Api, JobIdentity};
use crate::sink::layout;
use crate::sink::{CondPut, ObjectStore, Precondition};
use crate::streams::aggregation::AccountAggregation;
use crate::streams::resolve::Resolution;
use crate::streams::{Selection, Stream};

/// Version of the stream record format this build writes and reads.
const RECORD_VERSION: u32 = 1;

/// What identifies a multi-stream job: the same identity resumes the same job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FanOutIdentity {
    /// Accounts and Regions as asked, and the caller.
    pub selection: Selection,
    /// Source API.
    pub api: Api,
    /// Filters exactly as given.
    pub filters_as_given: Value,
    /// Findings per page.
    pub page_size: u32,
    /// Destination URL, normalised.
    #[serde(deserialize_with = "crate::sink::deserialize_normalized_url")]
    pub destination: String,
    /// GetFindingsV2 scopes, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Value>,
}

impl FanOutIdentity {
    /// The identity of one stream's own job: the job's filters, leaving out the Regions the
    /// stream leaves out.
    pub fn stream_identity(&self, stream: &Stream) -> Result<JobIdentity> {
        let filters = stream
            .filters(self.api, &self.filters_as_given)?
            .ok_or_else(|| {
                Error::Internal(format!("stream {} has nothing to read", stream.label()))
            })?;
        Ok(JobIdentity {
            api: self.api,
            region: stream.region.clone(),
            account_id: stream.account_id.clone(),
            filters_as_given: filters,
            page_size: self.page_size,
            destination: self.destination.clone(),
            scopes: self.scopes.clone(),
        })
    }

    /// The same identity with the destination stored as `url`.
    pub(crate) fn at(&self, url: &str) -> FanOutIdentity {
        FanOutIdentity {
            destination: url.to_string(),
            ..self.clone()
        }
    }

    /// `<caller account>-streams-<hash of the identity>`.
    pub fn default_job_id(&self) -> String {
        let canonical = serde_json::to_vec(self).expect("identity serialises");
        let hash = hex::encode(&Sha256::digest(&canonical)[..5]);
        format!("{}-streams-{hash}", self.selection.caller_account_id)
    }
}

/// The frozen stream set of a multi-stream job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamRecord {
    /// [`RECORD_VERSION`] of the build that wrote it.
    pub format_version: u32,
    /// The job.
    pub job_id: String,
    /// What the job was asked for.
    pub identity: FanOutIdentity,
    /// Every stream, sorted: fixed for the life of the job.
    pub streams: Vec<Stream>,
    /// The cross-Region aggregation of each account with several Regions in the job, and so
    /// what its streams leave out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aggregation: Vec<AccountAggregation>,
    /// When the job was created.
    pub created_at: DateTime<Utc>,
}

impl StreamRecord {
    /// Loads the stream record of `job_id`, if the job exists as a multi-stream job.
    pub async fn load(store: &dyn ObjectStore, job_id: &str) -> Result<Option<StreamRecord>> {
        let key = layout::streams_key(job_id);
        let Some((body, _)) = store.get(&key).await? else {
            return Ok(None);
        };
        let corrupt = |message: String| Error::CorruptState {
            job_id: job_id.to_string(),
            location: store.location(&key),
            message,
        };
        let record: StreamRecord = serde_json::from_slice(&body).map_err(|e| {
            corrupt(format!(
                "not a stream record this build reads ({e}); restore it or use a new --job-id"
            ))
        })?;
        if record.format_version > RECORD_VERSION || record.job_id != job_id {
            return Err(corrupt(format!(
                "written by a newer build or for job {:?}; upgrade sechub-export or use a new --job-id",
                record.job_id
            )));
        }
        Ok(Some(record))
    }

    /// Creates the record (create-only); when another run created it first, returns theirs.
    pub async fn create(self, store: &dyn ObjectStore) -> Result<StreamRecord> {
        let key = layout::streams_key(&self.job_id);
        let body = Bytes::from(serde_json::to_vec_pretty(&self).expect("record serialises"));
        match store.put_if(&key, body, Precondition::Absent).await? {
            CondPut::Written(_) => Ok(self),
            CondPut::PreconditionFailed => StreamRecord::load(store, &self.job_id)
                .await?
                .ok_or_else(|| Error::Internal(format!("{key} vanished after a create race"))),
        }
    }

    /// A new record of the resolved streams for `identity`.
    pub fn new(job_id: &str, identity: FanOutIdentity, resolved: Resolution) -> StreamRecord {
        StreamRecord {
            format_version: RECORD_VERSION,
            job_id: job_id.to_string(),
            identity,
            streams: resolved.streams,
            aggregation: resolved.aggregation,
            created_at: Utc::now(),
        }
    }
}

/// How a stream stood at the end of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamState {
    /// Every finding of the stream is exported.
    Complete,
    /// Stopped at a part boundary (time box, Ctrl-C); the next run continues it.
    Resumable,
    /// Failed; the next run retries it from its checkpoint.
    Failed,
}

/// One stream's line in the last-run record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamReport {
    /// The stream.
    #[serde(flatten)]
    pub stream: Stream,
    /// How it ended.
    pub state: StreamState,
    /// Findings in its durable parts.
    pub exported_count: u64,
    /// Its parts.
    pub parts: u64,
    /// The error kind (`SechubExport.AccessDenied`...), when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<String>,
    /// Why it failed or stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// How every stream of a multi-stream job ended in its last run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastRun {
    /// When the run ended.
    pub finished_at: DateTime<Utc>,
    /// The SSM parameter it published the job's count to (`none`: none), for `verify`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_parameter: Option<String>,
    /// One report per stream.
    pub streams: Vec<StreamReport>,
}

impl LastRun {
    /// Writes it (last writer wins: it is a report, not state the export relies on).
    pub async fn save(&self, store: &dyn ObjectStore, job_id: &str) -> Result<()> {
        let body = Bytes::from(serde_json::to_vec_pretty(self).expect("report serialises"));
        store
            .put(&layout::last_run_key(job_id), body, "application/json")
            .await
    }

    /// The last run's report, if any (an unreadable one is ignored: it only informs).
    pub async fn load(store: &dyn ObjectStore, job_id: &str) -> Option<LastRun> {
        let (body, _) = store.get(&layout::last_run_key(job_id)).await.ok()??;
        serde_json::from_slice(&body).ok()
    }
}
