//! A completed job's manifest: written once, next to the checkpoint, when the job completes; its
//! presence means "complete", and it lists every part with rows, bytes and SHA-256.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::checkpoint::{Checkpoint, JobState, PartRecord, FORMAT_VERSION};
use crate::error::{Error, Result};
use crate::request::FrozenRequest;
use crate::sink::layout;
use crate::sink::{CondPut, ObjectStore, Precondition};

/// What a completed job exported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version of the build that wrote it.
    pub format_version: u32,
    /// The job.
    pub job_id: String,
    /// The frozen request: filters (with any time range resolved) and `frozen_at`, the moment
    /// the export reflects.
    pub request: FrozenRequest,
    /// The partition every part is in.
    pub export_date: String,
    /// When the job was created.
    pub started_at: DateTime<Utc>,
    /// When its last part was committed.
    pub completed_at: DateTime<Utc>,
    /// Findings in all parts.
    pub rows: u64,
    /// Bytes of all parts.
    pub bytes: u64,
    /// Every part.
    pub parts: Vec<PartRecord>,
    /// Whether no finding of the request was updated while the job read its window (see
    /// [`super::settle`]); absent when it could not be told.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settled: Option<bool>,
}

impl Manifest {
    /// The manifest of a complete checkpoint.
    pub fn of(checkpoint: &Checkpoint, settled: Option<bool>) -> Manifest {
        Manifest {
            format_version: FORMAT_VERSION,
            job_id: checkpoint.job_id.clone(),
            request: checkpoint.request.clone(),
            export_date: checkpoint.export_date.clone(),
            started_at: checkpoint.created_at,
            completed_at: checkpoint.updated_at,
            rows: checkpoint.exported_count,
            bytes: checkpoint.bytes_written,
            parts: checkpoint.parts.clone(),
            settled,
        }
    }
}

/// Writes the manifest of a complete job unless it is already there (a run that died between
/// the final checkpoint and the manifest leaves it to the next run).
pub async fn ensure(
    store: &dyn ObjectStore,
    checkpoint: &Checkpoint,
    settled: Option<bool>,
) -> Result<()> {
    if checkpoint.state != JobState::Complete {
        return Ok(());
    }
    let manifest = Manifest::of(checkpoint, settled);
    let body = serde_json::to_vec_pretty(&manifest).expect("manifest serialises");
    let key = layout::manifest_key(&checkpoint.job_id);
    match store
        .put_if(&key, Bytes::from(body), Precondition::Absent)
        .await?
    {
        CondPut::Written(_) | CondPut::PreconditionFailed => Ok(()),
    }
}

/// Loads a job's manifest, if the job completed.
pub async fn load(store: &dyn ObjectStore, job_id: &str) -> Result<Option<Manifest>> {
    let key = layout::manifest_key(job_id);
    let Some((body, _)) = store.get(&key).await? else {
        return Ok(None);
    };
    serde_json::from_slice(&body).map(Some).map_err(|e| Error::CorruptState {
        job_id: job_id.to_string(),
        location: store.location(&key),
        message: format!("the manifest is not valid ({e}); re-run the export to rewrite it after deleting it"),
    })
}
