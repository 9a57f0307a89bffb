//! Encode stage: a [`Format`] turns each raw finding of a page into typed cells of its table;
//! the batch builder adds the job columns, and [`PartWriter`] writes Parquet part bytes.

pub mod asff;
pub mod batch;
pub(crate) mod lenient;
pub mod ocsf;
pub mod table;
pub mod timestamp;

use std::str::FromStr;

use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression as ParquetCompression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;
use serde::{Deserialize, Serialize};

use crate::source::Page;
use batch::BatchBuilder;
use table::Table;

/// The findings of one API as a table: its columns, and each finding's typed cells.
pub trait Format: Send + Sync {
    /// The table every part of this format belongs to.
    fn table(&self) -> &'static Table;
    /// Pushes one cell per typed column of the table, in order, for the finding `text`. Any
    /// shape of document gives a row: unreadable fields are null, never a dropped finding.
    fn append_typed(&self, text: &str, row: &mut BatchBuilder);
    /// When the finding `text` last changed (ASFF `UpdatedAt`, OCSF
    /// `finding_info.modified_time`), if it says.
    fn updated_at(&self, text: &str) -> Option<chrono::DateTime<chrono::Utc>>;
}

/// Parquet codec for the parts (both are fully supported by Athena).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// ZSTD level 3.
    #[default]
    Zstd,
    /// SNAPPY.
    Snappy,
}

impl FromStr for Compression {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "zstd" => Ok(Compression::Zstd),
            "snappy" => Ok(Compression::Snappy),
            _ => Err(format!("unknown compression {s:?}; use zstd or snappy")),
        }
    }
}

/// Rows per Parquet row group: large enough for Athena scans, small enough to bound memory.
pub const ROW_GROUP_ROWS: usize = 20_000;

/// Where the rows of a stream come from: the job that exported them and the account and Region
/// whose Security Hub returned them (the job columns of every row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowOrigin {
    /// `export_job_id`.
    pub job_id: String,
    /// `source_account_id`.
    pub account_id: String,
    /// `source_region`.
    pub region: String,
}

impl RowOrigin {
    /// Rows of `job_id` fetched by no particular stream (tests and benches).
    pub fn job(job_id: &str) -> RowOrigin {
        RowOrigin {
            job_id: job_id.into(),
            account_id: "123456789012".into(),
            region: "us-east-1".into(),
        }
    }
}

/// Builds the Arrow record batch for the findings of one page.
pub fn page_batch(format: &dyn Format, page: &Page, origin: &RowOrigin) -> RecordBatch {
    let mut builder = BatchBuilder::new(format.table(), page.len(), page.finding_bytes());
    for text in page.findings() {
        format.append_typed(text, &mut builder);
        builder.end_row(text, origin, page.fetched_at_ms);
    }
    builder.finish()
}

/// Writer properties: the chosen codec, no dictionary on the table's large free-text columns.
pub fn writer_properties(table: &Table, compression: Compression) -> WriterProperties {
    let codec = match compression {
        Compression::Zstd => ParquetCompression::ZSTD(ZstdLevel::try_new(3).expect("valid level")),
        Compression::Snappy => ParquetCompression::SNAPPY,
    };
    let mut props = WriterProperties::builder()
        .set_compression(codec)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_created_by(concat!("sechub-export ", env!("CARGO_PKG_VERSION")).into());
    for column in table.no_dictionary {
        props = props.set_column_dictionary_enabled(ColumnPath::from(*column), false);
    }
    props.build()
}

/// Accumulates pages into one Parquet part held in memory.
pub struct PartWriter {
    writer: ArrowWriter<Vec<u8>>,
    rows: u64,
}

impl PartWriter {
    /// An empty part of `table`.
    pub fn new(
        table: &Table,
        compression: Compression,
    ) -> Result<Self, parquet::errors::ParquetError> {
        let props = writer_properties(table, compression);
        let writer = ArrowWriter::try_new(Vec::new(), table.schema(), Some(props))?;
        Ok(PartWriter { writer, rows: 0 })
    }

    /// Appends one batch of rows.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), parquet::errors::ParquetError> {
        self.rows += batch.num_rows() as u64;
        self.writer.write(batch)
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Closes the file and returns its bytes.
    pub fn finish(self) -> Result<Vec<u8>, parquet::errors::ParquetError> {
        self.writer.into_inner()
    }
}

/// Encodes pages into one complete Parquet file (used by tests and benches).
pub fn encode_pages(
    format: &dyn Format,
    pages: &[Page],
    origin: &RowOrigin,
    compression: Compression,
) -> Result<Vec<u8>, parquet::errors::ParquetError> {
    let mut writer = PartWriter::new(format.table(), compression)?;
    for page in pages {
        writer.write(&page_batch(format, page, origin))?;
    }
    writer.finish()
}
