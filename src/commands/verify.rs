//! `verify`: reconciles a job's (or each stream's) manifest and checkpoint with the objects actually present
//! (Parquet footers read with ranged GETs), and with the SSM progress count; with `--source`,
//! also with Security Hub's own counts of each stream's frozen request (see [`source`]).

mod source;

use std::sync::Arc;

use bytes::Bytes;
use parquet::file::metadata::{FooterTail, ParquetMetaDataReader};
use sha2::{Digest, Sha256};

use crate::aws::{self, AwsSettings, Failure};
use crate::error::{Error, Result};
use crate::job::checkpoint::{Checkpoint, CheckpointStore, JobState, PartRecord};
use crate::job::fanout::record::{LastRun, StreamRecord};
use crate::job::manifest;
use crate::plan::default_progress_parameter;
use crate::sink::{self, layout, Destination, ObjectMeta, ObjectStore};

/// Bytes fetched from the end of a part to read its footer (more if the footer is larger).
const FOOTER_GUESS: u64 = 64 * 1024;

/// Settings of a verification (the `verify` flags).
#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    /// s3://bucket/prefix, file:///path or a folder path.
    #[arg(long)]
    pub destination: String,
    /// The job to verify.
    #[arg(long)]
    pub job_id: String,
    /// SSM parameter to compare with the rows; `none` skips it (default: the one the job was
    /// exported with).
    #[arg(long)]
    pub progress_parameter: Option<String>,
    /// Also download every part and check its SHA-256.
    #[arg(long)]
    pub deep: bool,
    /// Also reconcile the lake with Security Hub's own counts of each stream's frozen request,
    /// per account and product (GetFindingStatisticsV2; for Security Hub CSPM a temporary
    /// custom insight, created and deleted by this run: this flag is the consent to it).
    #[arg(long)]
    pub source: bool,
    /// With --source: read the accounts whose counts differ again and name each missing
    /// finding (`Id` and product).
    #[arg(long, requires = "source")]
    pub list_missing: bool,
    /// With --source, for a job over several accounts: the role to assume in each account (as
    /// the export used).
    #[arg(long, requires = "source")]
    pub role_name: Option<String>,
    /// External id of that role.
    #[arg(long, requires = "role_name")]
    pub external_id: Option<String>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub aws: AwsSettings,
}

/// Verifies a job (every stream of a job over several accounts or Regions); `Ok` holds the
/// one-line summary, `Err` lists every discrepancy.
pub async fn verify(args: &VerifyArgs) -> Result<String> {
    let destination = Destination::parse(&args.destination)?;
    let store = sink::open_existing(&destination, &args.aws).await?;
    let job_id = &args.job_id;
    if let Some(record) = StreamRecord::load(store.as_ref(), job_id).await? {
        return verify_streams(args, &store, &destination, &record).await;
    }
    let Some(checkpoint) = CheckpointStore::new(store.clone(), job_id).load().await? else {
        return Err(Error::Usage(format!(
            "no job {job_id} at {}; check --destination and --job-id",
            args.destination
        )));
    };
    let mut problems = Vec::new();
    let checked = check_job(&store, &checkpoint, args.deep, &mut problems).await?;
    if let Some(name) = parameter_to_check(args, &checkpoint, &destination) {
        check_ssm(&args.aws, &name, checkpoint.exported_count, &mut problems).await?;
    }
    let reconciled = match args.source {
        true => Some(source::reconcile(args, &store, &mut problems).await?),
        false => None,
    };
    verdict(args, problems, checked, "", reconciled)
}

/// Verifies every stream of a multi-stream job, and the job's SSM count against their sum.
async fn verify_streams(
    args: &VerifyArgs,
    store: &Arc<dyn ObjectStore>,
    destination: &Destination,
    record: &StreamRecord,
) -> Result<String> {
    let mut problems = Vec::new();
    let mut checked = Checked::default();
    let mut exported = 0;
    for stream in &record.streams {
        let label = stream.label();
        let job_id = stream.job_id(&record.job_id);
        let Some(checkpoint) = CheckpointStore::new(store.clone(), &job_id).load().await? else {
            problems.push(format!(
                "stream {label} has not started; re-run the export command to finish it"
            ));
            continue;
        };
        let mut found = Vec::new();
        let one = check_job(store, &checkpoint, args.deep, &mut found).await?;
        checked.rows += one.rows;
        checked.parts += one.parts;
        exported += checkpoint.exported_count;
        problems.extend(found.into_iter().map(|p| format!("stream {label}: {p}")));
    }
    let last_run = LastRun::load(store.as_ref(), &record.job_id).await;
    let named = args
        .progress_parameter
        .clone()
        .or_else(|| last_run.and_then(|run| run.progress_parameter));
    let parameter = match named.as_deref() {
        Some("none") => None,
        Some(name) => Some(name.to_string()),
        None => default_progress_parameter(destination, &record.job_id),
    };
    if let Some(name) = parameter {
        check_ssm(&args.aws, &name, exported, &mut problems).await?;
    }
    let reconciled = match args.source {
        true => Some(source::reconcile(args, store, &mut problems).await?),
        false => None,
    };
    let streams = format!(" over {} streams", record.streams.len());
    verdict(args, problems, checked, &streams, reconciled)
}

/// What the parts of one or more jobs hold.
#[derive(Debug, Default, Clone, Copy)]
struct Checked {
    rows: u64,
    parts: usize,
}

fn verdict(
    args: &VerifyArgs,
    problems: Vec<String>,
    checked: Checked,
    scope: &str,
    reconciled: Option<String>,
) -> Result<String> {
    if !problems.is_empty() {
        return Err(Error::Verify {
            job_id: args.job_id.clone(),
            problems,
        });
    }
    let depth = if args.deep {
        "sizes, footers and SHA-256"
    } else {
        "sizes and footers"
    };
    let line = format!(
        "verified: job {}: {} in {}{scope}, all present, no extra parts, {depth} agree with the manifest and counts",
        args.job_id,
        crate::job::observer::plural(checked.rows, "finding", "findings"),
        crate::job::observer::plural(checked.parts as u64, "part", "parts"),
    );
    Ok(match reconciled {
        Some(source) => format!("{line}; {source}"),
        None => line,
    })
}

/// Checks one job's parts against its manifest (or checkpoint) and the objects present.
async fn check_job(
    store: &Arc<dyn ObjectStore>,
    checkpoint: &Checkpoint,
    deep: bool,
    problems: &mut Vec<String>,
) -> Result<Checked> {
    let parts = parts_to_check(store, checkpoint, problems).await?;
    let table_dir = checkpoint.request.identity.api.format().table().dir;
    let present = store
        .list(&layout::partition_prefix(
            table_dir,
            &checkpoint.export_date,
        ))
        .await?;
    for object in &present {
        let known = parts.iter().any(|p| p.key == object.key);
        if !known && layout::part_number(&object.key, &checkpoint.job_id).is_some() {
            problems.push(format!(
                "extra part {} is not in the manifest",
                store.location(&object.key)
            ));
        }
    }
    let rows = check_parts(store.as_ref(), &parts, &present, deep, problems).await;
    let listed: u64 = parts.iter().map(|p| p.rows).sum();
    if listed != checkpoint.exported_count {
        problems.push(format!(
            "parts hold {listed} rows but the checkpoint counts {}",
            checkpoint.exported_count
        ));
    }
    Ok(Checked {
        rows,
        parts: parts.len(),
    })
}

/// The SSM parameter to compare: the flag, else the one the job recorded, else the default of
/// checkpoints written before jobs recorded it.
fn parameter_to_check(
    args: &VerifyArgs,
    checkpoint: &Checkpoint,
    destination: &Destination,
) -> Option<String> {
    let named = args
        .progress_parameter
        .as_ref()
        .or(checkpoint.progress_parameter.as_ref());
    match named.map(String::as_str) {
        Some("none") => None,
        Some(name) => Some(name.to_string()),
        None => default_progress_parameter(destination, &checkpoint.job_id),
    }
}

/// The parts the manifest lists (or the checkpoint, when there is no manifest), noting why the
/// job is not provably complete.
async fn parts_to_check(
    store: &Arc<dyn ObjectStore>,
    checkpoint: &Checkpoint,
    problems: &mut Vec<String>,
) -> Result<Vec<PartRecord>> {
    let manifest = manifest::load(store.as_ref(), &checkpoint.job_id).await?;
    Ok(match (&manifest, checkpoint.state) {
        (Some(m), _) => {
            if m.rows != checkpoint.exported_count || m.parts != checkpoint.parts {
                problems.push(format!("manifest ({} rows, {} parts) disagrees with the checkpoint ({} rows, {} parts)", m.rows, m.parts.len(), checkpoint.exported_count, checkpoint.parts.len()));
            }
            m.parts.clone()
        }
        (None, JobState::Complete) => {
            problems.push(
                "the job is complete but has no manifest; re-run the export command to write it"
                    .into(),
            );
            checkpoint.parts.clone()
        }
        (None, JobState::Running) => {
            problems.push(format!("the job is not complete ({} findings so far); re-run the export command to finish it", checkpoint.exported_count));
            checkpoint.parts.clone()
        }
    })
}

/// Checks every listed part against the objects present; returns the rows their footers hold.
async fn check_parts(
    store: &dyn ObjectStore,
    parts: &[PartRecord],
    present: &[ObjectMeta],
    deep: bool,
    problems: &mut Vec<String>,
) -> u64 {
    let mut footer_rows = 0;
    for part in parts {
        match present.iter().find(|o| o.key == part.key) {
            None => problems.push(format!(
                "missing part {} ({} rows)",
                store.location(&part.key),
                part.rows
            )),
            Some(object) if object.size != part.bytes => problems.push(format!(
                "part {} is {} bytes, the manifest says {}",
                store.location(&part.key),
                object.size,
                part.bytes
            )),
            Some(_) => match check_part(store, part, deep).await {
                Ok(rows) => footer_rows += rows,
                Err(problem) => problems.push(problem),
            },
        }
    }
    footer_rows
}

/// Checks one present part: its footer row count (and its SHA-256 when `deep`).
async fn check_part(store: &dyn ObjectStore, part: &PartRecord, deep: bool) -> Result<u64, String> {
    let location = store.location(&part.key);
    let rows = footer_rows(store, &part.key, part.bytes)
        .await
        .map_err(|e| format!("part {location} has no readable footer ({e})"))?;
    if rows != part.rows {
        return Err(format!(
            "part {location} holds {rows} rows, the manifest says {}",
            part.rows
        ));
    }
    if deep {
        let body = store
            .get(&part.key)
            .await
            .map_err(|e| e.to_string())?
            .map(|(b, _)| b)
            .unwrap_or_default();
        let sha = hex::encode(Sha256::digest(&body));
        if sha != part.sha256 {
            return Err(format!(
                "part {location} has SHA-256 {sha}, the manifest says {}",
                part.sha256
            ));
        }
    }
    Ok(rows)
}

/// Reads a Parquet footer with ranged reads and returns the file's row count.
async fn footer_rows(
    store: &dyn ObjectStore,
    key: &str,
    size: u64,
) -> std::result::Result<u64, String> {
    let tail: Bytes = store
        .get_tail(key, FOOTER_GUESS.min(size))
        .await
        .map_err(|e| e.to_string())?;
    if tail.len() < 8 {
        return Err("shorter than a Parquet footer".into());
    }
    let footer = FooterTail::try_from(&tail[tail.len() - 8..]).map_err(|e| e.to_string())?;
    let needed = footer.metadata_length() as u64 + 8;
    let tail = if needed > tail.len() as u64 {
        store
            .get_tail(key, needed)
            .await
            .map_err(|e| e.to_string())?
    } else {
        tail
    };
    // A corrupt footer can claim more metadata than the object holds.
    let start = tail
        .len()
        .checked_sub(needed as usize)
        .ok_or_else(|| format!("its footer claims {needed} bytes of a {size}-byte object"))?;
    let metadata = ParquetMetaDataReader::decode_metadata(&tail[start..tail.len() - 8])
        .map_err(|e| e.to_string())?;
    Ok(metadata.file_metadata().num_rows().max(0) as u64)
}

/// Compares the SSM count with the checkpoint's.
async fn check_ssm(
    settings: &AwsSettings,
    name: &str,
    expected: u64,
    problems: &mut Vec<String>,
) -> Result<()> {
    let config = aws::load(settings).await?;
    let read = aws_sdk_ssm::Client::new(&config)
        .get_parameter()
        .name(name)
        .send()
        .await;
    let value = match read {
        Ok(out) => out.parameter().and_then(|p| p.value()).map(str::to_string),
        Err(err) => {
            let failure = Failure::of(&err);
            if failure.code.as_deref() != Some("ParameterNotFound") {
                return Err(Error::auth(
                    format!("cannot read SSM parameter {name}: {}", failure.summary()),
                    None,
                ));
            }
            None
        }
    };
    match value {
        Some(value) if value == expected.to_string() => {}
        Some(value) => problems.push(format!(
            "SSM {name} holds {value}, the checkpoint counts {expected}"
        )),
        None => problems.push(format!("SSM parameter {name} does not exist")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::memory::MemoryStore;

    async fn rows_of(body: Vec<u8>) -> std::result::Result<u64, String> {
        let store = MemoryStore::new();
        let size = body.len() as u64;
        store.put("p", Bytes::from(body), "x").await.unwrap();
        footer_rows(&store, "p", size).await
    }

    #[tokio::test]
    async fn truncated_garbage_and_lying_footers_are_reported_not_panicked_on() {
        let mut lying = b"PAR1 some bytes".to_vec();
        lying.extend_from_slice(&1_000_000u32.to_le_bytes());
        lying.extend_from_slice(b"PAR1");
        let mut short_claim = vec![0u8; 20];
        short_claim.extend_from_slice(&12u32.to_le_bytes());
        short_claim.extend_from_slice(b"PAR1");
        for body in [b"PAR".to_vec(), vec![7u8; 100], lying, short_claim] {
            let err = rows_of(body.clone()).await.unwrap_err();
            assert!(!err.is_empty(), "{body:?}");
        }
    }

    #[tokio::test]
    async fn a_real_part_reports_its_rows() {
        use crate::encode::{asff::ASFF, encode_pages, Compression, RowOrigin};
        let body = r#"{"Findings":[{"Id":"a"},{"Id":"b"}]}"#.to_string();
        let page = crate::source::Page::parse(1, body, 0).unwrap();
        let part = encode_pages(&ASFF, &[page], &RowOrigin::job("j"), Compression::Zstd).unwrap();
        assert_eq!(rows_of(part).await, Ok(2));
    }
}
