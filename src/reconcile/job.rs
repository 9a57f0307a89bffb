//! A whole job reconciled with Security Hub: each stream (the job's one, or every stream of a
//! job over several accounts or Regions) under its own account's credentials (the caller's, or
//! the role assumed in the stream's account), its parts from its manifest (or checkpoint).
//! `verify --source` and the state machine's reconcile step both run this.

use std::sync::Arc;

use aws_config::SdkConfig;
use serde::Serialize;

use super::{StreamToCheck, Verdict};
use crate::aws::{self, AwsSettings};
use crate::error::{Error, Result};
use crate::job::checkpoint::{Checkpoint, CheckpointStore};
use crate::job::fanout::record::StreamRecord;
use crate::job::{manifest, Cancel};
use crate::request::Api;
use crate::sink::ObjectStore;
use crate::source::counts::{insight, Counter};
use crate::streams::{Role, Stream};

/// Problems kept in a summary for machines (every one is in the log).
const MAX_PROBLEMS: usize = 20;

/// What reconciling a job found, summed over its streams.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// The job.
    pub job_id: String,
    /// Streams reconciled.
    pub streams: usize,
    /// No finding is missing and every count could be trusted.
    pub reconciled: bool,
    /// Findings Security Hub counts for the job's frozen requests.
    pub service_count: u64,
    /// Distinct findings in the lake.
    pub lake_count: u64,
    /// Findings the service has that the lake does not.
    pub missing: u64,
    /// Findings of the lake updated after the freeze.
    pub updated_after_freeze: u64,
    /// Findings of the lake no longer in Security Hub.
    pub deleted_since: u64,
    /// Why it is not reconciled (at most 20; `problems_total` counts them all).
    pub problems: Vec<String>,
    /// How many problems there were.
    pub problems_total: usize,
    /// Each stream's explanation, as printed.
    #[serde(skip)]
    pub lines: Vec<String>,
}

impl Summary {
    /// The one line a reconciliation ends with.
    pub fn line(&self) -> String {
        format!(
            "Security Hub counts {} findings for the job's frozen request{}, the lake holds {} distinct: {} missing, {} updated after the freeze, {} deleted since",
            self.service_count,
            if self.streams > 1 { "s" } else { "" },
            self.lake_count,
            self.missing,
            self.updated_after_freeze,
            self.deleted_since
        )
    }

    fn add(&mut self, verdict: Verdict) {
        self.streams += 1;
        self.service_count += verdict.service;
        self.lake_count += verdict.lake;
        self.missing += verdict.missing;
        self.updated_after_freeze += verdict.updated_after;
        self.deleted_since += verdict.gone;
        self.lines.extend(verdict.lines);
        self.problems_total += verdict.problems.len();
        self.problems.extend(verdict.problems);
    }
}

/// Reconciles job `job_id` at `store`; `role` is assumed in stream accounts other than the
/// caller's; `list_missing` reads differing accounts again for identities.
pub async fn reconcile(
    store: &Arc<dyn ObjectStore>,
    settings: &AwsSettings,
    job_id: &str,
    role: Option<&Role>,
    list_missing: bool,
    cancel: &Cancel,
) -> Result<Summary> {
    let streams = streams_of(store, job_id).await?;
    let settings = AwsSettings {
        region: settings
            .region
            .clone()
            .or_else(|| streams.first().map(|(s, _)| s.region.clone())),
        ..settings.clone()
    };
    let base = aws::load(&settings).await?;
    let caller = aws::account_id(&base).await?;
    let mut summary = Summary {
        job_id: job_id.to_string(),
        ..Summary::default()
    };
    for (stream, checkpoint) in &streams {
        let config = config_of(&base, &caller, stream, role).await?;
        if checkpoint.request.identity.api == Api::GetFindings {
            remove_leftovers(&Counter::new(&config, job_id), stream).await;
        }
        let parts = match manifest::load(store.as_ref(), &checkpoint.job_id).await? {
            Some(manifest) => manifest.parts,
            None => checkpoint.parts.clone(),
        };
        let check = StreamToCheck {
            label: stream.label(),
            config,
            checkpoint,
            parts,
        };
        let verdict = super::stream(store.as_ref(), &check, job_id, list_missing, cancel).await?;
        summary.add(verdict);
    }
    summary.reconciled = summary.problems.is_empty();
    summary.problems.truncate(MAX_PROBLEMS);
    Ok(summary)
}

/// Every stream of the job with its checkpoint.
async fn streams_of(
    store: &Arc<dyn ObjectStore>,
    job_id: &str,
) -> Result<Vec<(Stream, Checkpoint)>> {
    let load = |id: String| async move { CheckpointStore::new(store.clone(), &id).load().await };
    let not_started = |what: String| {
        Error::Usage(format!(
            "{what} has not started; re-run the export command to finish it before reconciling"
        ))
    };
    if let Some(record) = StreamRecord::load(store.as_ref(), job_id).await? {
        let mut streams = Vec::new();
        for stream in record.streams {
            let checkpoint = load(stream.job_id(job_id))
                .await?
                .ok_or_else(|| not_started(format!("stream {}", stream.label())))?;
            streams.push((stream, checkpoint));
        }
        return Ok(streams);
    }
    let checkpoint = load(job_id.to_string()).await?.ok_or_else(|| {
        Error::Usage(format!(
            "no job {job_id} here; check --destination and --job-id"
        ))
    })?;
    let identity = &checkpoint.request.identity;
    let stream = Stream::new(&identity.account_id, &identity.region);
    Ok(vec![(stream, checkpoint)])
}

/// The SDK config of a stream's account and Region.
async fn config_of(
    base: &SdkConfig,
    caller: &str,
    stream: &Stream,
    role: Option<&Role>,
) -> Result<SdkConfig> {
    aws::stream_config(base, caller, stream, role)
        .await
        .map_err(|err| match err {
            Error::Usage(_) => Error::Usage(format!(
                "stream {} is account {}: pass --role-name (the role the export assumed there), or reconcile with that account's credentials",
                stream.label(),
                stream.account_id
            )),
            other => other,
        })
}

/// Removes the job's temporary insights left by a killed count (a failure only warns: the
/// count itself does not need it).
async fn remove_leftovers(counter: &Counter, stream: &Stream) {
    match insight::remove_leftovers(counter).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            "stream {}: removed {n} temporary insights left by an earlier count",
            stream.label()
        ),
        Err(err) => tracing::warn!(
            "stream {}: cannot look for temporary insights left by an earlier count ({}); allow securityhub:GetInsights to have them removed",
            stream.label(),
            crate::error::one_line(&err)
        ),
    }
}
