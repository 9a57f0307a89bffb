//! The feed's run records: one small Parquet file per complete run under `feed_runs/`, a table
//! of its own that the `latest` view reads to know which snapshots are complete and how recent
//! the lake's newest look at the service is.

use chrono::{DateTime, Utc};
use parquet::arrow::ArrowWriter;

use super::state::FeedRun;
use crate::encode::batch::{rows_batch, Cell};
use crate::encode::table::{col, Column, ColumnType};
use crate::error::{Error, Result};
use crate::sink::{layout, ObjectStore, PARQUET_CONTENT_TYPE};

/// Folder of the run records below the destination (the runs table's LOCATION).
pub const RUNS_DIR: &str = "feed_runs";

/// The runs table's columns, in file order.
pub const RUN_COLUMNS: &[Column] = &[
    col("feed_family", ColumnType::String, "the feed family the run belongs to"),
    col(
        "export_job_id",
        ColumnType::String,
        "the run's job: its rows carry this id (a stream's rows add .<account>.<region>)",
    ),
    col(
        "run_kind",
        ColumnType::String,
        "snapshot (every finding up to window_end), incremental (the window) or repair (a window read again)",
    ),
    col(
        "findings_table",
        ColumnType::String,
        "the folder of the findings table the run wrote",
    ),
    col(
        "window_start",
        ColumnType::Timestamp,
        "UpdatedAt from, inclusive, UTC; null for a snapshot",
    ),
    col(
        "window_end",
        ColumnType::Timestamp,
        "UpdatedAt to, inclusive, UTC: when the run started",
    ),
    col(
        "completed_at",
        ColumnType::Timestamp,
        "when the run's export completed, UTC",
    ),
    col("row_count", ColumnType::Int64, "findings the run exported"),
    col(
        "settled",
        ColumnType::Boolean,
        "no finding changed while the run (or its last repair) read the window: the read is exact",
    ),
];

/// Writes the record of a complete run (the same key each time: writing it again replaces it).
pub async fn write(
    store: &dyn ObjectStore,
    family: &str,
    run: &FeedRun,
    findings_table: &str,
    rows: u64,
    settled: Option<bool>,
    completed_at: DateTime<Utc>,
) -> Result<()> {
    let kind = run.kind.to_string();
    let batch = rows_batch(
        RUN_COLUMNS,
        vec![vec![
            Cell::Str(Some(family)),
            Cell::Str(Some(&run.job_id)),
            Cell::Str(Some(&kind)),
            Cell::Str(Some(findings_table)),
            Cell::Time(run.window_start.map(|t| t.timestamp_millis())),
            Cell::Time(Some(run.window_end.timestamp_millis())),
            Cell::Time(Some(completed_at.timestamp_millis())),
            Cell::Long(Some(rows as i64)),
            Cell::Bool(settled),
        ]],
    );
    let encode = || -> std::result::Result<Vec<u8>, parquet::errors::ParquetError> {
        let mut writer = ArrowWriter::try_new(Vec::new(), batch.schema(), None)?;
        writer.write(&batch)?;
        writer.into_inner()
    };
    let body = encode()
        .map_err(|e| Error::Internal(format!("encoding the record of {}: {e}", run.job_id)))?;
    store
        .put(
            &layout::feed_run_key(&run.job_id),
            body.into(),
            PARQUET_CONTENT_TYPE,
        )
        .await
}
