//! Deterministic object keys below a destination: Hive-style parts in a format's table folder,
//! and per-job state files outside every table.

/// Folder of job state (checkpoints, manifests, locks), outside the tables.
pub const STATE_DIR: &str = "_sechub_export/jobs";

/// The partition column encoded in every part's key (`export_date=YYYY-MM-DD`), not in the file.
pub const PARTITION_COLUMN: &str = "export_date";

/// `<table>/export_date=2026-11-22/<job>-part-000001.parquet`.
pub fn part_key(table_dir: &str, export_date: &str, job_id: &str, part: u64) -> String {
    format!(
        "{}{}",
        partition_prefix(table_dir, export_date),
        part_file_name(job_id, part)
    )
}

/// `<table>/export_date=2026-11-22/`.
pub fn partition_prefix(table_dir: &str, export_date: &str) -> String {
    format!("{table_dir}/{PARTITION_COLUMN}={export_date}/")
}

/// `<job>-part-000001.parquet`: six digits keep keys sorted up to a million parts.
pub fn part_file_name(job_id: &str, part: u64) -> String {
    format!("{job_id}-part-{part:06}.parquet")
}

/// The part number of a key that belongs to `job_id`, if it does.
pub fn part_number(key: &str, job_id: &str) -> Option<u64> {
    let name = key.rsplit('/').next()?;
    let rest = name.strip_prefix(job_id)?.strip_prefix("-part-")?;
    let digits = rest.strip_suffix(".parquet")?;
    if digits.len() < 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn job_dir(job_id: &str) -> String {
    format!("{STATE_DIR}/{job_id}")
}

/// `_sechub_export/jobs/<job>/checkpoint.json`.
pub fn checkpoint_key(job_id: &str) -> String {
    format!("{}/checkpoint.json", job_dir(job_id))
}

/// `_sechub_export/jobs/<job>/manifest.json`.
pub fn manifest_key(job_id: &str) -> String {
    format!("{}/manifest.json", job_dir(job_id))
}

/// `_sechub_export/jobs/<job>/lock.json`.
pub fn lock_key(job_id: &str) -> String {
    format!("{}/lock.json", job_dir(job_id))
}

/// `_sechub_export/jobs/<job>/streams.json`: the frozen stream set of a multi-stream job.
pub fn streams_key(job_id: &str) -> String {
    format!("{}/streams.json", job_dir(job_id))
}

/// `_sechub_export/jobs/<job>/last-run.json`: how each stream of a multi-stream job ended in
/// its last run (state, rows, error).
pub fn last_run_key(job_id: &str) -> String {
    format!("{}/last-run.json", job_dir(job_id))
}

/// `_sechub_export/jobs/<job>/stream-items.json`: a multi-stream job's streams as the items of
/// a Step Functions Distributed Map (a JSON array of `{"stream": {account_id, region}}`).
pub fn stream_items_key(job_id: &str) -> String {
    format!("{}/stream-items.json", job_dir(job_id))
}

/// `_sechub_export/jobs/<stream job>/last-error.json`: why a stream run by a Distributed Map
/// last failed (read by the job's finish step; a report, not state the export relies on).
pub fn stream_error_key(stream_job_id: &str) -> String {
    format!("{}/last-error.json", job_dir(stream_job_id))
}

/// Folder of feed families' state, beside the jobs'.
pub const FEED_DIR: &str = "_sechub_export/feeds";

/// `_sechub_export/feeds/<family>/state.json`: a feed family's watermark and runs.
pub fn feed_state_key(family: &str) -> String {
    format!("{FEED_DIR}/{family}/state.json")
}

/// `feed_runs/<job>.parquet`: the record of one complete feed run (a table of its own).
pub fn feed_run_key(job_id: &str) -> String {
    format!("{}/{job_id}.parquet", crate::feed::runs::RUNS_DIR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_keys_are_hive_partitioned_sorted_and_parse_back() {
        let key = part_key("findings", "2026-11-22", "acct-us-east-1-ab12", 7);
        assert_eq!(
            key,
            "findings/export_date=2026-11-22/acct-us-east-1-ab12-part-000007.parquet"
        );
        assert_eq!(part_number(&key, "acct-us-east-1-ab12"), Some(7));
        assert!(part_key("t", "d", "j", 9) < part_key("t", "d", "j", 10));
    }

    #[test]
    fn part_numbers_of_other_jobs_sharing_a_prefix_are_not_claimed() {
        let other = part_key("findings", "2026-11-22", "job-a-part-x", 1);
        assert_eq!(part_number(&other, "job-a"), None);
        assert_eq!(
            part_number(
                "findings/export_date=d/job-a-part-000001.parquet.tmp",
                "job-a"
            ),
            None
        );
        assert_eq!(
            part_number("findings/export_date=d/job-ab-part-000001.parquet", "job-a"),
            None
        );
    }
}
