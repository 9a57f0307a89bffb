//! A multi-stream job run by Step Functions' Distributed Map instead of one process: the plan
//! step freezes the job's stream set (as [`super::run`] does) and writes it as the Map's items;
//! each item is one stream, run in Lambda slices of its own at its own quota; the finish step
//! reads every stream's checkpoint and reports the job (the last-run report, the SSM total, and
//! [`Error::Partial`] naming each failed stream).

use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::record::{LastRun, StreamRecord, StreamReport, StreamState};
use super::summary::grouped_reasons;
use super::{partial, Prepared};
use crate::error::{one_line, Error, Result};
use crate::job::checkpoint::{CheckpointStore, JobState};
use crate::job::observer::{Observers, TerminalProgress};
use crate::job::ssm::SsmCounter;
use crate::job::{settle, time_box, Cancel, Outcome, RunSummary};
use crate::plan::ExportPlan;
use crate::sink::{layout, Destination, ObjectStore};
use crate::streams::Stream;

/// One Map item: the stream a child workflow exports. Items written by the plan step carry
/// the whole stream and a digest of the job's frozen request, so a child's slice checks its
/// request against the digest instead of loading the job's stream record (tens of MiB at
/// 170,000 streams); an item of only the account and Region loads the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamKey {
    /// The account read.
    pub account_id: String,
    /// The Region read.
    pub region: String,
    /// The stream's left-out Regions (see [`Stream`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left_out: Vec<String>,
    /// Whether the stream reads only its account's own findings (see [`Stream`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub own_findings_only: bool,
    /// SHA-256 of the job's frozen request (its record's identity), hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_digest: Option<String>,
}

impl StreamKey {
    /// The item of `stream` in a job whose record's identity digests to `digest`.
    fn of(stream: &Stream, digest: &str) -> StreamKey {
        StreamKey {
            account_id: stream.account_id.clone(),
            region: stream.region.clone(),
            left_out: stream.left_out.clone(),
            own_findings_only: stream.own_findings_only,
            request_digest: Some(digest.to_string()),
        }
    }

    /// The stream the item names.
    fn stream(&self) -> Stream {
        Stream {
            account_id: self.account_id.clone(),
            region: self.region.clone(),
            left_out: self.left_out.clone(),
            own_findings_only: self.own_findings_only,
        }
    }
}

/// The digest of a job's frozen request, as items carry it.
fn request_digest(identity: &super::record::FanOutIdentity) -> String {
    use sha2::{Digest, Sha256};
    let bytes = serde_json::to_vec(identity).expect("identity serialises");
    hex::encode(Sha256::digest(bytes))
}

/// One element of the items file.
#[derive(Serialize)]
struct Item<'a> {
    stream: &'a StreamKey,
}

/// What the plan step found: the job and where its Map items are.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Planned {
    /// The job.
    pub job_id: String,
    /// Its streams.
    pub streams: usize,
    /// Bucket of the items file.
    pub items_bucket: String,
    /// Key of the items file (a JSON array, one item per stream).
    pub items_key: String,
}

/// Resolves the job's stream set (or loads and checks the stored one), records it create-only
/// and writes it as the Map's items. Only S3 destinations: Step Functions reads the items there.
pub async fn plan(plan: &ExportPlan) -> Result<Planned> {
    let Destination::S3 { bucket, prefix } = &plan.destination else {
        return Err(Error::Usage(
            "a job over several streams in Step Functions needs an s3:// destination (its Map reads the streams from there)".into(),
        ));
    };
    let prepared = Prepared::new(plan).await?;
    let cancel = Cancel::new();
    let fan_out = prepared.fan_out(plan, &cancel);
    let record = match fan_out
        .stream_record(prepared.identity.clone(), &prepared.home)
        .await?
    {
        super::Resolved::Existing(record) => record,
        super::Resolved::New(new) => {
            let stored = new.clone().create(prepared.store.as_ref()).await?;
            fan_out.check_identity(&stored, &new.identity)?;
            stored
        }
    };
    let digest = request_digest(&record.identity);
    let keys: Vec<StreamKey> = record
        .streams
        .iter()
        .map(|s| StreamKey::of(s, &digest))
        .collect();
    let items: Vec<Item> = keys.iter().map(|stream| Item { stream }).collect();
    let key = layout::stream_items_key(&prepared.job_id);
    let body = Bytes::from(serde_json::to_vec(&items).expect("items serialise"));
    prepared.store.put(&key, body, "application/json").await?;
    Ok(Planned {
        job_id: prepared.job_id.clone(),
        streams: keys.len(),
        items_bucket: bucket.clone(),
        items_key: match prefix.as_str() {
            "" => key,
            prefix => format!("{prefix}/{key}"),
        },
    })
}

/// Runs one slice of one stream of a planned job (its own lease; the job's is not taken, so
/// every stream can run in a Lambda of its own). A failure is also recorded for the finish step.
pub async fn run_stream(plan: &ExportPlan, key: &StreamKey, cancel: &Cancel) -> Result<Outcome> {
    let prepared = Prepared::new(plan).await?;
    let fan_out = prepared.fan_out(plan, cancel);
    let identity = prepared.identity.clone();
    let (stream, identity) = match &key.request_digest {
        // The item proves the request is the job's: no need to load the record.
        Some(digest) if *digest == request_digest(&identity) => (key.stream(), identity),
        _ => {
            let record = stored_record(&prepared).await?;
            fan_out.check_identity(&record, &identity)?;
            let stream = record
                .streams
                .iter()
                .find(|s| s.account_id == key.account_id && s.region == key.region)
                .cloned()
                .ok_or_else(|| {
                    Error::Usage(format!(
                        "{}/{} is not a stream of job {}; its streams are in {}",
                        key.account_id,
                        key.region,
                        prepared.job_id,
                        layout::stream_items_key(&prepared.job_id)
                    ))
                })?;
            (stream, record.identity)
        }
    };
    let stream = &stream;
    let job_id = stream.job_id(&prepared.job_id);
    let prior = CheckpointStore::new(prepared.store.clone(), &job_id)
        .load()
        .await;
    let prior_count = match &prior {
        Ok(Some(checkpoint)) => checkpoint.exported_count,
        _ => 0,
    };
    let _time_box = time_box(plan, cancel);
    let mut observers = Observers::new();
    observers.push(TerminalProgress::new(true));
    let result: Result<RunSummary> = fan_out
        .run_stream(&identity, stream, prior, observers)
        .await;
    match result {
        Ok(summary) => Ok(Outcome::of_stream(&summary)),
        Err(err) => {
            let report = failed(stream, prior_count, &err);
            let body = Bytes::from(serde_json::to_vec_pretty(&report).expect("report"));
            let key = layout::stream_error_key(&job_id);
            if let Err(e) = prepared.store.put(&key, body, "application/json").await {
                tracing::warn!("could not record the stream's failure: {}", one_line(&e));
            }
            Err(err)
        }
    }
}

/// Reports the job once its Map has ended: every stream's state from its checkpoint (and, for
/// one that is not complete, the failure it recorded), the last-run report, the job's SSM
/// count; [`Error::Partial`] when a stream is not complete.
pub async fn finish(plan: &ExportPlan) -> Result<Outcome> {
    let prepared = Prepared::new(plan).await?;
    let record = stored_record(&prepared).await?;
    let cancel = Cancel::new();
    let fan_out = prepared.fan_out(plan, &cancel);
    fan_out.check_identity(&record, &prepared.identity)?;
    let priors = fan_out.load_checkpoints(&record.streams).await;
    // Each stream's report, a few at once: a stream that is not complete also reads the
    // failure its last slice recorded (170,000 streams must fit one invocation).
    let store = prepared.store.as_ref();
    let job_id = prepared.job_id.as_str();
    let reports: Vec<(StreamReport, bool)> =
        futures::stream::iter(record.streams.iter().zip(priors))
            .map(|(stream, prior)| async move {
                match prior {
                    Ok(Some(cp)) if cp.state == JobState::Complete => {
                        // Whether findings changed under its read (its manifest says).
                        let settled = settle::complete(store, &cp, None).await.ok().flatten();
                        let report = StreamReport {
                            stream: stream.clone(),
                            state: StreamState::Complete,
                            exported_count: cp.exported_count,
                            parts: cp.parts.len() as u64,
                            error_kind: None,
                            reason: None,
                        };
                        (report, settled == Some(false))
                    }
                    Ok(prior) => {
                        let count = prior.as_ref().map_or(0, |cp| cp.exported_count);
                        let prior_parts = prior.as_ref().map_or(0, |cp| cp.parts.len() as u64);
                        let report = recorded_failure(store, stream, job_id)
                            .await
                            .map(|r| StreamReport {
                                exported_count: count,
                                ..r
                            })
                            .unwrap_or_else(|| StreamReport {
                                stream: stream.clone(),
                                state: StreamState::Resumable,
                                exported_count: count,
                                parts: prior_parts,
                                error_kind: None,
                                reason: Some(UNFINISHED.into()),
                            });
                        (report, false)
                    }
                    Err(err) => (failed(stream, 0, &err), false),
                }
            })
            .buffered(super::CHECKPOINT_READS)
            .collect()
            .await;
    let unsettled = reports.iter().any(|(_, unsettled)| *unsettled);
    let reports: Vec<StreamReport> = reports.into_iter().map(|(report, _)| report).collect();
    let total: u64 = reports.iter().map(|r| r.exported_count).sum();
    let parameter = plan.progress_parameter(&prepared.job_id);
    if let Some(name) = parameter.clone() {
        let counter = SsmCounter::start(&prepared.base, name.clone(), total);
        if !counter.close(Some(total)).await {
            tracing::warn!("could not publish the job's count to SSM parameter {name}");
        }
    }
    let last = LastRun {
        finished_at: chrono::Utc::now(),
        progress_parameter: Some(parameter.unwrap_or_else(|| "none".into())),
        streams: reports,
    };
    last.save(prepared.store.as_ref(), &prepared.job_id).await?;
    let in_state = |state: StreamState| -> Vec<(String, String)> {
        last.streams
            .iter()
            .filter(|r| r.state == state)
            .map(|r| {
                let reason = r.reason.as_deref().unwrap_or("failed");
                (r.stream.label(), reason.to_string())
            })
            .collect()
    };
    let (failed, unfinished) = (
        in_state(StreamState::Failed),
        in_state(StreamState::Resumable),
    );
    let streams = last.streams.len();
    let done = streams - failed.len() - unfinished.len();
    if unfinished.is_empty() && !failed.is_empty() {
        return Err(partial(&prepared.job_id, done, streams, total, &failed));
    }
    let stopped = (!unfinished.is_empty()).then(|| {
        let failed = match failed.len() {
            0 => String::new(),
            n => format!(", {n} failed (named when the rest end)"),
        };
        format!(
            "{done} of {streams} streams complete ({total} findings), {} unfinished{failed}: {}",
            unfinished.len(),
            grouped_reasons(&prepared.job_id, &unfinished, "unfinished")
        )
    });
    let line = match &stopped {
        Some(stopped) => format!("not complete: job {}: {stopped}", prepared.job_id),
        None => format!(
            "complete: job {}: {streams} streams, each run by the Map; job total {total} findings",
            prepared.job_id
        ),
    };
    Ok(Outcome {
        job_id: prepared.job_id.clone(),
        complete: stopped.is_none(),
        rows: total,
        parts: last.streams.iter().map(|r| r.parts).sum(),
        rows_this_run: 0,
        parts_this_run: 0,
        elapsed: prepared.started.elapsed(),
        stopped,
        line,
        unsettled,
        expected: None,
    })
}

/// Why a stream that recorded no failure is not complete when its job's Map ends.
const UNFINISHED: &str = "not complete when the Map ended (its child paused at the execution's slice budget, or ended abnormally: see the Map Run); the job's next execution continues it";

/// The job's stream record, which its plan step wrote.
async fn stored_record(prepared: &Prepared) -> Result<StreamRecord> {
    StreamRecord::load(prepared.store.as_ref(), &prepared.job_id)
        .await?
        .ok_or_else(|| {
            Error::Usage(format!(
                "job {} has no stream record: its plan step (an event with \"stage\": \"plan\") creates it",
                prepared.job_id
            ))
        })
}

/// The report of a stream that failed with `err`.
fn failed(stream: &Stream, exported_count: u64, err: &Error) -> StreamReport {
    StreamReport {
        stream: stream.clone(),
        state: StreamState::Failed,
        exported_count,
        parts: 0,
        error_kind: Some(err.kind().to_string()),
        reason: Some(one_line(err)),
    }
}

/// The failure a stream's last slice recorded, if any.
async fn recorded_failure(
    store: &dyn ObjectStore,
    stream: &Stream,
    job_id: &str,
) -> Option<StreamReport> {
    let key = layout::stream_error_key(&stream.job_id(job_id));
    let (body, _) = store.get(&key).await.ok()??;
    serde_json::from_slice(&body).ok()
}
