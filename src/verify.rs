//! The `verify` command: reconciles a job's manifest and checkpoint with the objects actually
//! present (Parquet footers read with ranged GETs), and with the SSM progress count.

use bytes::Bytes;
use parquet::file::metadata::{FooterTail, ParquetMetaDataReader};
use sha2::{Digest, Sha256};

use crate::aws::{self, AwsSettings, Failure};
use crate::checkpoint::{manifest, JobState, PartRecord};
use crate::error::{Error, Result};
use crate::layout;
use crate::pipeline::hex;
use crate::sink::ObjectStore;

/// Bytes fetched from the end of a part to read its footer (more if the footer is larger).
const FOOTER_GUESS: u64 = 64 * 1024;

/// Settings of a verification.
#[derive(Debug, Clone)]
pub struct VerifyArgs {
    pub destination: String,
    pub job_id: String,
    pub aws: AwsSettings,
    /// SSM parameter to compare; `None`: the export default for S3, none for local; `none`: skip.
    pub progress_parameter: Option<String>,
    /// Download every part and check its SHA-256 (default: sizes and footer row counts only).
    pub deep: bool,
}

/// Verifies a job; `Ok` holds the one-line summary, `Err` lists every discrepancy.
pub async fn verify(args: &VerifyArgs) -> Result<String> {
    let store = crate::status::open(&args.destination, &args.aws).await?;
    let job_id = &args.job_id;
    let Some(checkpoint) = crate::status::load(store.as_ref(), job_id).await? else {
        return Err(Error::Usage(format!(
            "no job {job_id} at {}; check --destination and --job-id",
            args.destination
        )));
    };
    let mut problems = Vec::new();
    let manifest = manifest::load(store.as_ref(), job_id).await?;
    let parts = match (&manifest, checkpoint.state) {
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
    };
    let present = store
        .list(&layout::partition_prefix(&checkpoint.export_date))
        .await?;
    for object in &present {
        let known = parts.iter().any(|p| p.key == object.key);
        if !known && layout::part_number(&object.key, job_id).is_some() {
            problems.push(format!(
                "extra part {} is not in the manifest",
                store.location(&object.key)
            ));
        }
    }
    let mut footer_rows = 0;
    for part in &parts {
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
            Some(_) => match check_part(store.as_ref(), part, args.deep).await {
                Ok(rows) => footer_rows += rows,
                Err(problem) => problems.push(problem),
            },
        }
    }
    let listed: u64 = parts.iter().map(|p| p.rows).sum();
    if listed != checkpoint.exported_count {
        problems.push(format!(
            "parts hold {listed} rows but the checkpoint counts {}",
            checkpoint.exported_count
        ));
    }
    let parameter = match args.progress_parameter.as_deref() {
        Some("none") => None,
        Some(name) => Some(name.to_string()),
        None if args.destination.starts_with("s3://") => {
            Some(format!("/sechub-export/{job_id}/exported-count"))
        }
        None => None,
    };
    if let Some(name) = parameter {
        match ssm_count(&args.aws, &name).await? {
            Some(value) if value == checkpoint.exported_count.to_string() => {}
            Some(value) => problems.push(format!(
                "SSM {name} holds {value}, the checkpoint counts {}",
                checkpoint.exported_count
            )),
            None => problems.push(format!("SSM parameter {name} does not exist")),
        }
    }
    if problems.is_empty() {
        let depth = if args.deep {
            "sizes, footers and SHA-256"
        } else {
            "sizes and footers"
        };
        Ok(format!("verified: job {job_id}: {footer_rows} findings in {} parts, all present, no extra parts, {depth} agree with the manifest and counts", parts.len()))
    } else {
        Err(Error::Verify {
            job_id: job_id.clone(),
            problems,
        })
    }
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
        let sha = hex(&Sha256::digest(&body));
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
    let start = tail.len() - needed as usize;
    let metadata = ParquetMetaDataReader::decode_metadata(&tail[start..tail.len() - 8])
        .map_err(|e| e.to_string())?;
    Ok(metadata.file_metadata().num_rows().max(0) as u64)
}

async fn ssm_count(settings: &AwsSettings, name: &str) -> Result<Option<String>> {
    let config = aws::load(settings).await?;
    match aws_sdk_ssm::Client::new(&config)
        .get_parameter()
        .name(name)
        .send()
        .await
    {
        Ok(out) => Ok(out.parameter().and_then(|p| p.value()).map(str::to_string)),
        Err(err) => {
            let failure = Failure::of(&err);
            if failure.code.as_deref() == Some("ParameterNotFound") {
                Ok(None)
            } else {
                Err(Error::auth(
                    format!("cannot read SSM parameter {name}: {}", failure.summary()),
                    None,
                ))
            }
        }
    }
}
