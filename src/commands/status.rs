//! `status`: a job's checkpoint in words (for a job over several accounts or Regions: each
//! stream's state, rows and last error), or every job under a destination.

use std::sync::Arc;

use crate::cli::StatusFlags;
use crate::error::Result;
use crate::feed::{self, describe_window, state::FeedState};
use crate::job::checkpoint::{ChainLayout, Checkpoint, CheckpointStore, JobState};
use crate::job::fanout::record::{LastRun, StreamRecord, StreamReport, StreamState};
use crate::job::observer::{burst_rows, progress, steady_rate};
use crate::request::filters::iso;
use crate::sink::{self, layout, Destination, ObjectStore};
use crate::streams::{Accounts, Regions, Stream};
use futures::StreamExt;
use serde_json::{json, Value};

/// `no job J at D`: a usage error (exit 2) that says how to list what is there.
fn unknown(what: String, destination: &str) -> crate::error::Error {
    crate::error::Error::Usage(format!(
        "{what} at {destination}: check the name, or list the jobs and feeds there with `sechub-export status --destination {destination}`"
    ))
}

/// Pretty JSON text of `value`.
fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

async fn load(store: &Arc<dyn ObjectStore>, job_id: impl AsRef<str>) -> Result<Option<Checkpoint>> {
    CheckpointStore::new(store.clone(), job_id.as_ref())
        .load()
        .await
}

/// Describes one job or feed family, or lists the jobs and families at the destination.
pub async fn status(flags: &StatusFlags) -> Result<String> {
    let destination = flags.destination.as_str();
    let store = sink::open_existing(&Destination::parse(destination)?, &flags.aws).await?;
    if let Some(family) = &flags.family {
        return match feed::state::read(store.as_ref(), family).await? {
            Some((state, _)) if flags.json => Ok(pretty(&json!({"kind": "feed", "feed": state}))),
            Some((state, _)) => Ok(describe_family(&store, &state).await),
            None => Err(unknown(format!("no feed {family}"), destination)),
        };
    }
    let Some(job_id) = flags.job_id.as_deref() else {
        return list(&store, destination, flags.json).await;
    };
    if let Some(record) = StreamRecord::load(store.as_ref(), job_id).await? {
        return describe_streams(&store, &record, flags.json).await;
    }
    match load(&store, job_id).await? {
        Some(checkpoint) if flags.json => Ok(pretty(&job_json(&checkpoint))),
        Some(checkpoint) => Ok(describe(&checkpoint)),
        None => Err(unknown(format!("no job {job_id}"), destination)),
    }
}

/// One stream's job as `status --json` shows it.
fn job_json(cp: &Checkpoint) -> Value {
    let identity = &cp.request.identity;
    json!({
        "kind": "job",
        "job_id": cp.job_id,
        "state": state(cp),
        "complete": cp.state == JobState::Complete,
        "exported_count": cp.exported_count,
        "expected_count": cp.expected_count,
        "parts": cp.parts.len(),
        "bytes_written": cp.bytes_written,
        "pages_fetched": cp.pages_fetched,
        "api": identity.api.to_string(),
        "account_id": identity.account_id,
        "region": identity.region,
        "destination": identity.destination,
        "export_date": cp.export_date,
        "created_at": cp.created_at,
        "updated_at": cp.updated_at,
    })
}

/// A multi-stream job: its selection, then one line per stream (state, rows, parts, the last
/// run's error).
async fn describe_streams(
    store: &Arc<dyn ObjectStore>,
    record: &StreamRecord,
    as_json: bool,
) -> Result<String> {
    let last_run = LastRun::load(store.as_ref(), &record.job_id).await;
    // The last run's report of each stream, by stream (a job may have 170,000).
    let reports: std::collections::HashMap<&Stream, &StreamReport> = last_run
        .iter()
        .flat_map(|run| run.streams.iter().map(|r| (&r.stream, r)))
        .collect();
    let checkpoints: Vec<Result<Option<Checkpoint>>> = futures::stream::iter(&record.streams)
        .map(|stream| load(store, stream.job_id(&record.job_id)))
        .buffered(crate::job::fanout::CHECKPOINT_READS)
        .collect()
        .await;
    let mut complete = 0;
    let mut total = 0;
    let mut expected = Some(0);
    let mut counted_streams = 0;
    let mut lines = Vec::new();
    let mut streams_json = Vec::new();
    for (stream, checkpoint) in record.streams.iter().zip(checkpoints) {
        let checkpoint = checkpoint?;
        let report = reports.get(stream).copied();
        let (state, rows, parts, shards) = match &checkpoint {
            Some(cp) => (
                state(cp),
                cp.exported_count,
                cp.parts.len(),
                cp.shards.len().max(1),
            ),
            None => ("not started", 0, 0, 1),
        };
        complete += usize::from(state == "complete");
        total += rows;
        let counted = checkpoint.as_ref().and_then(|cp| cp.expected_count);
        counted_streams += usize::from(counted.is_some());
        expected = expected.zip(counted).map(|(sum, one)| sum + one);
        let failed = report.filter(|r| r.state == StreamState::Failed);
        streams_json.push(json!({
            "account_id": stream.account_id,
            "region": stream.region,
            "job_id": stream.job_id(&record.job_id),
            "state": state,
            "exported_count": rows,
            "expected_count": counted,
            "parts": parts,
            "last_error": failed.map(|r| json!({"kind": r.error_kind, "reason": r.reason})),
        }));
        let of = counted.map(|n| format!(" of {n}")).unwrap_or_default();
        let mut line = format!(
            "  {:<28}{state:<13}{rows:>10}{of} findings {parts:>6} parts {shards:>3} chains",
            stream.label()
        );
        if !stream.left_out.is_empty() {
            line.push_str(&format!("  leaves out {}", stream.left_out.join(",")));
        }
        if let Some(report) = failed {
            line.push_str(&format!(
                "  last error ({}): {}",
                report.error_kind.as_deref().unwrap_or("?"),
                report.reason.as_deref().unwrap_or("")
            ));
        }
        lines.push(line);
    }
    let identity = &record.identity;
    if as_json {
        return Ok(pretty(&json!({
            "kind": "streams",
            "job_id": record.job_id,
            "state": if complete == record.streams.len() { "complete" } else { "resumable" },
            "complete": complete == record.streams.len(),
            "exported_count": total,
            "expected_count": expected.filter(|_| counted_streams == record.streams.len()),
            "destination": identity.destination,
            "created_at": record.created_at,
            "streams": streams_json,
        })));
    }
    let mut out = vec![
        format!("job:          {}", record.job_id),
        format!(
            "state:        {}",
            if complete == record.streams.len() {
                "complete"
            } else {
                "resumable"
            }
        ),
        format!(
            "streams:      {} ({complete} complete), one per account and Region",
            record.streams.len()
        ),
        format!(
            "findings:     {}",
            match expected {
                Some(sum) => progress(total, Some(sum), 0.0),
                None if counted_streams > 0 => format!(
                    "{total} ({counted_streams} of {} streams counted by Security Hub)",
                    record.streams.len()
                ),
                None => total.to_string(),
            }
        ),
        format!(
            "selection:    accounts {} / Regions {} (caller {})",
            describe_accounts(&identity.selection.accounts),
            describe_regions(&identity.selection.regions),
            identity.selection.caller_account_id
        ),
        format!(
            "filters:      {}",
            serde_json::to_string(&identity.filters_as_given).unwrap_or_default()
        ),
        format!("destination:  {}", identity.destination),
        format!("created:      {}", record.created_at.to_rfc3339()),
    ];
    for account in &record.aggregation {
        out.push(format!(
            "aggregation:  {}: {}",
            account.account_id,
            account.aggregation.describe()
        ));
    }
    if let Some(run) = &last_run {
        out.push(format!(
            "last run:     ended {}",
            run.finished_at.to_rfc3339()
        ));
    }
    out.push("streams (account/Region, state, findings, parts):".into());
    out.extend(lines);
    Ok(out.join("\n"))
}

fn describe_accounts(accounts: &Accounts) -> String {
    match accounts {
        Accounts::Caller => "the caller's".into(),
        Accounts::Listed(ids) => ids.join(","),
        Accounts::Organization => "organization".into(),
    }
}

fn describe_regions(regions: &Regions) -> String {
    match regions {
        Regions::Caller => "the caller's".into(),
        Regions::Listed(names) => names.join(","),
        Regions::All => "all".into(),
    }
}

async fn list(store: &Arc<dyn ObjectStore>, destination: &str, as_json: bool) -> Result<String> {
    let mut lines = Vec::new();
    let mut jobs = Vec::new();
    for object in store.list(&format!("{}/", layout::STATE_DIR)).await? {
        let Some(rest) = object.key.strip_prefix(&format!("{}/", layout::STATE_DIR)) else {
            continue;
        };
        if let Some(job_id) = rest.strip_suffix("/streams.json") {
            match StreamRecord::load(store.as_ref(), job_id).await {
                Ok(Some(record)) => {
                    jobs.push(json!({"job_id": job_id, "kind": "streams", "streams": record.streams.len()}));
                    lines.push(format!(
                        "{job_id}\t{} streams (each listed as {job_id}.<account>.<region>)",
                        record.streams.len()
                    ))
                }
                Ok(None) => {}
                Err(err) => lines.push(format!("{job_id}\tunreadable: {err}")),
            }
            continue;
        }
        let Some(job_id) = rest.strip_suffix("/checkpoint.json") else {
            continue;
        };
        match load(store, job_id).await {
            Ok(Some(cp)) => {
                jobs.push(job_json(&cp));
                lines.push(format!(
                    "{job_id}\t{}\t{} findings\t{} parts\tupdated {}",
                    state(&cp),
                    cp.exported_count,
                    cp.parts.len(),
                    cp.updated_at.to_rfc3339()
                ))
            }
            Ok(None) => {}
            Err(err) => lines.push(format!("{job_id}\tunreadable: {err}")),
        }
    }
    for object in store.list(&format!("{}/", layout::FEED_DIR)).await? {
        let family = object
            .key
            .strip_prefix(&format!("{}/", layout::FEED_DIR))
            .and_then(|rest| rest.strip_suffix("/state.json"));
        let Some(family) = family else { continue };
        match feed::state::read(store.as_ref(), family).await {
            Ok(Some((state, _))) => {
                jobs.push(json!({"kind": "feed", "family": family, "runs_complete": state.runs.len(), "watermark": state.watermark, "in_progress": state.current.as_ref().map(|r| &r.job_id)}));
                lines.push(format!(
                    "feed {family}	{} runs complete	watermark {}{} (status --family {family})",
                    state.runs.len(),
                    state.watermark.map(iso).unwrap_or_else(|| "none".into()),
                    state
                        .current
                        .as_ref()
                        .map(|r| format!("	run in progress {}", r.job_id))
                        .unwrap_or_default()
                ))
            }
            Ok(None) => {}
            Err(err) => lines.push(format!("feed {family}	unreadable: {err}")),
        }
    }
    if as_json {
        return Ok(pretty(&json!({"destination": destination, "jobs": jobs})));
    }
    if lines.is_empty() {
        return Ok(format!("no jobs at {destination}"));
    }
    Ok(lines.join("\n"))
}

/// A feed family: watermark, the run in progress, the next window and the latest runs.
async fn describe_family(store: &Arc<dyn ObjectStore>, state: &FeedState) -> String {
    let mut out = vec![
        format!("feed:          {}", state.family),
        format!(
            "watermark:     {}",
            state
                .watermark
                .map(iso)
                .unwrap_or_else(|| "none (no run complete yet)".into())
        ),
        format!(
            "last snapshot: {}",
            state
                .last_snapshot
                .map(iso)
                .unwrap_or_else(|| "none".into())
        ),
    ];
    out.push(match &state.current {
        Some(run) => {
            let progress = load_progress(store, &run.job_id).await;
            format!(
                "in progress:   {} ({}, {}){progress}; the next run resumes it first",
                run.job_id,
                run.kind,
                describe_window(run)
            )
        }
        None => "in progress:   none".into(),
    });
    out.push(match state.watermark {
        Some(watermark) => format!("next window:   UpdatedAt from {} minus --overlap to the next run's start (a snapshot when the last is --snapshot-every old)", iso(watermark)),
        None => "next window:   a snapshot of everything up to the next run's start".into(),
    });
    let total: u64 = state.runs.iter().filter_map(|r| r.rows).sum();
    out.push(format!(
        "runs:          {} complete, {total} findings (the latest 10):",
        state.runs.len()
    ));
    for run in state.runs.iter().rev().take(10) {
        let reads = match (run.repairs, run.settled) {
            (_, Some(false)) => format!(
                " (read {} times, findings still changing: the next run reads it again)",
                run.repairs + 1
            ),
            (0, _) => String::new(),
            (n, _) => format!(" (read again {n} time(s): findings changed while it read)"),
        };
        out.push(format!(
            "  {}  {:<11}  {}  {} findings{reads}",
            run.job_id,
            run.kind.to_string(),
            describe_window(run),
            run.rows.unwrap_or(0)
        ));
    }
    out.push(format!(
        "filters:       {}",
        serde_json::to_string(&state.identity.filters_as_given).unwrap_or_default()
    ));
    out.push(format!("destination:   {}", state.identity.destination));
    out.join("\n")
}

/// ", N findings so far" for a job that has a checkpoint (a job over several streams has one
/// per stream: `status --job-id` shows them).
async fn load_progress(store: &Arc<dyn ObjectStore>, job_id: &str) -> String {
    match load(store, job_id).await {
        Ok(Some(cp)) => format!(", {} findings so far", cp.exported_count),
        _ => String::new(),
    }
}

fn state(checkpoint: &Checkpoint) -> &'static str {
    match checkpoint.state {
        JobState::Complete => "complete",
        JobState::Running => "resumable",
    }
}

/// One NextToken chain, or the shards and how many are finished; and why, after a fallback.
fn describe_chains(cp: &Checkpoint) -> String {
    let layout = describe_layout(cp);
    match &cp.order_fallback {
        Some(reason) => format!("{layout}; an earlier reading was dropped and the stream read again without relying on the service's order, after {reason}"),
        None => layout,
    }
}

fn describe_layout(cp: &Checkpoint) -> String {
    let finished = cp.shards.iter().filter(|s| s.done).count();
    let chains = cp.shards.len();
    let why = "(calls were too slow for one chain)";
    match cp.chain_layout() {
        ChainLayout::One => "1 (not sharded)".into(),
        ChainLayout::Pair => format!(
            "{chains} reading from both ends of the Ids (a meeting pair), {finished} finished {why}"
        ),
        ChainLayout::PairedShards(n) => format!(
            "{chains} in {n} shards on Id prefixes, each read from both ends, {finished} finished {why}"
        ),
        ChainLayout::Shards(n) => format!("{n} shards on Id prefixes, {finished} finished {why}"),
    }
}

/// Findings so far, with the total Security Hub counted and, while the job runs, an ETA at
/// the rate since it started (it may be running elsewhere: a Lambda, another machine).
fn progress_of(cp: &Checkpoint) -> String {
    if cp.state == JobState::Complete {
        return progress(cp.exported_count, cp.expected_count, 0.0);
    }
    let seconds = (cp.updated_at - cp.created_at).num_milliseconds() as f64 / 1000.0;
    let burst = burst_rows(cp.pace, cp.request.identity.page_size);
    let rate = steady_rate(cp.exported_count, burst, seconds);
    match cp.expected_count {
        Some(_) if cp.exported_count > 0 => format!(
            "{} at {rate:.0} findings/s since the job started",
            progress(cp.exported_count, cp.expected_count, rate)
        ),
        _ => progress(cp.exported_count, cp.expected_count, 0.0),
    }
}

/// A job's checkpoint in a few lines.
pub fn describe(cp: &Checkpoint) -> String {
    let filters = serde_json::to_string(&cp.request.filters).unwrap_or_default();
    [
        format!("job:          {}", cp.job_id),
        format!("state:        {}", state(cp)),
        format!("findings:     {}", progress_of(cp)),
        format!(
            "parts:        {} ({} bytes)",
            cp.parts.len(),
            cp.bytes_written
        ),
        format!("pages:        {}", cp.pages_fetched),
        format!("chains:       {}", describe_chains(cp)),
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
