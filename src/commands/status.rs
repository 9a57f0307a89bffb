//! `status`: a job's checkpoint in words, or every job under a destination.

use std::sync::Arc;

use crate::aws::AwsSettings;
use crate::error::Result;
use crate::job::checkpoint::{Checkpoint, CheckpointStore, JobState};
use crate::sink::{self, layout, Destination, ObjectStore};

async fn load(store: &Arc<dyn ObjectStore>, job_id: &str) -> Result<Option<Checkpoint>> {
    CheckpointStore::new(store.clone(), job_id).load().await
}

/// Describes one job, or lists the jobs at the destination when `job_id` is `None`.
pub async fn status(
    destination: &str,
    settings: &AwsSettings,
    job_id: Option<&str>,
) -> Result<String> {
    let store = sink::open_existing(&Destination::parse(destination)?, settings).await?;
    match job_id {
        Some(job_id) => Ok(match load(&store, job_id).await? {
            Some(checkpoint) => describe(&checkpoint),
            None => format!("no job {job_id} at {destination} (run `sechub-export status --destination {destination}` to list jobs)"),
        }),
        None => list(&store, destination).await,
    }
}

async fn list(store: &Arc<dyn ObjectStore>, destination: &str) -> Result<String> {
    let mut lines = Vec::new();
    for object in store.list(&format!("{}/", layout::STATE_DIR)).await? {
        let Some(job_id) = object
            .key
            .strip_prefix(&format!("{}/", layout::STATE_DIR))
            .and_then(|k| k.strip_suffix("/checkpoint.json"))
        else {
            continue;
        };
        match load(store, job_id).await {
            Ok(Some(cp)) => lines.push(format!(
                "{job_id}\t{}\t{} findings\t{} parts\tupdated {}",
                state(&cp),
                cp.exported_count,
                cp.parts.len(),
                cp.updated_at.to_rfc3339()
            )),
            Ok(None) => {}
            Err(err) => lines.push(format!("{job_id}\tunreadable: {err}")),
        }
    }
    if lines.is_empty() {
        return Ok(format!("no jobs at {destination}"));
    }
    Ok(lines.join("\n"))
}

fn state(checkpoint: &Checkpoint) -> &'static str {
    match checkpoint.state {
        JobState::Complete => "complete",
        JobState::Running => "resumable",
    }
}

/// A job's checkpoint in a few lines.
pub fn describe(cp: &Checkpoint) -> String {
    let filters = serde_json::to_string(&cp.request.filters).unwrap_or_default();
    [
        format!("job:          {}", cp.job_id),
        format!("state:        {}", state(cp)),
        format!("findings:     {}", cp.exported_count),
        format!(
            "parts:        {} ({} bytes)",
            cp.parts.len(),
            cp.bytes_written
        ),
        format!("pages:        {}", cp.pages_fetched),
        format!(
            "source:       {} {} account {}",
            cp.request.identity.api, cp.request.identity.region, cp.request.identity.account_id
        ),
        format!("filters:      {filters}"),
        format!(
            "destination:  {} (partition export_date={})",
            cp.request.identity.destination, cp.export_date
        ),
        format!("created:      {}", cp.created_at.to_rfc3339()),
        format!("last update:  {}", cp.updated_at.to_rfc3339()),
    ]
    .join("\n")
}
