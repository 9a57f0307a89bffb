//! Encode stage: raw finding JSON to Arrow record batches to Parquet part bytes.

pub mod finding;
pub mod schema;
pub mod timestamp;

use std::str::FromStr;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, Int32Builder, ListBuilder, MapBuilder, MapFieldNames, StringBuilder,
    TimestampMillisecondBuilder,
};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression as ParquetCompression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;

use crate::page::Page;
use finding::{FindingView, Text};
pub use schema::{schema, COLUMNS};

/// Parquet codec for the parts (both are fully supported by Athena).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    #[default]
    Zstd,
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

/// Builds the Arrow record batch for the findings of one page.
pub fn page_batch(page: &Page, job_id: &str) -> RecordBatch {
    let mut builder = BatchBuilder::with_capacity(page.len(), page.finding_bytes());
    for text in page.findings() {
        builder.append(text, job_id, page.fetched_at_ms);
    }
    builder.finish()
}

/// Column builders for one batch, in `COLUMNS` order.
struct BatchBuilder {
    strings: Vec<StringBuilder>,
    severity_normalized: Int32Builder,
    timestamps: Vec<TimestampMillisecondBuilder>,
    lists: Vec<ListBuilder<StringBuilder>>,
    maps: Vec<MapBuilder<StringBuilder, StringBuilder>>,
}

// Indexes into BatchBuilder's vectors.
const S_ID: usize = 0;
const S_PRODUCT_ARN: usize = 1;
const S_PRODUCT_NAME: usize = 2;
const S_COMPANY: usize = 3;
const S_GENERATOR: usize = 4;
const S_ACCOUNT: usize = 5;
const S_REGION: usize = 6;
const S_TITLE: usize = 7;
const S_DESCRIPTION: usize = 8;
const S_SEVERITY: usize = 9;
const S_COMPLIANCE: usize = 10;
const S_WORKFLOW: usize = 11;
const S_RECORD_STATE: usize = 12;
const S_JSON: usize = 13;
const S_JOB: usize = 14;
const STRING_COLUMNS: usize = 15;

impl BatchBuilder {
    fn with_capacity(rows: usize, json_bytes: usize) -> Self {
        let mut strings: Vec<StringBuilder> = (0..STRING_COLUMNS)
            .map(|_| StringBuilder::with_capacity(rows, rows * 32))
            .collect();
        strings[S_JSON] = StringBuilder::with_capacity(rows, json_bytes);
        let map_names = || MapFieldNames {
            entry: "entries".into(),
            key: "keys".into(),
            value: "values".into(),
        };
        BatchBuilder {
            strings,
            severity_normalized: Int32Builder::with_capacity(rows),
            timestamps: (0..5)
                .map(|_| TimestampMillisecondBuilder::with_capacity(rows).with_timezone("UTC"))
                .collect(),
            lists: (0..3)
                .map(|_| ListBuilder::new(StringBuilder::new()))
                .collect(),
            maps: (0..2)
                .map(|_| {
                    MapBuilder::new(
                        Some(map_names()),
                        StringBuilder::new(),
                        StringBuilder::new(),
                    )
                })
                .collect(),
        }
    }

    fn append(&mut self, text: &str, job_id: &str, exported_at_ms: i64) {
        let view = FindingView::parse(text);
        let text_of = |field: &finding::Lenient<Text<'_>>| field.get().map(|t| t.to_string());
        let severity = view.severity.get();
        let values: [(usize, Option<String>); 13] = [
            (S_ID, text_of(&view.id)),
            (S_PRODUCT_ARN, text_of(&view.product_arn)),
            (S_PRODUCT_NAME, text_of(&view.product_name)),
            (S_COMPANY, text_of(&view.company_name)),
            (S_GENERATOR, text_of(&view.generator_id)),
            (S_ACCOUNT, text_of(&view.aws_account_id)),
            (S_REGION, view.region().map(str::to_string)),
            (S_TITLE, text_of(&view.title)),
            (S_DESCRIPTION, text_of(&view.description)),
            (S_SEVERITY, severity.and_then(|s| text_of(&s.label))),
            (
                S_COMPLIANCE,
                view.compliance.get().and_then(|c| text_of(&c.status)),
            ),
            (
                S_WORKFLOW,
                view.workflow.get().and_then(|w| text_of(&w.status)),
            ),
            (S_RECORD_STATE, text_of(&view.record_state)),
        ];
        for (index, value) in values {
            self.strings[index].append_option(value);
        }
        self.strings[S_JSON].append_value(text);
        self.strings[S_JOB].append_value(job_id);

        let normalized = severity
            .and_then(|s| s.normalized.get().copied())
            .filter(|n| n.is_finite() && *n >= i32::MIN as f64 && *n <= i32::MAX as f64)
            .map(|n| n.round() as i32);
        self.severity_normalized.append_option(normalized);

        let times = [
            &view.created_at,
            &view.updated_at,
            &view.first_observed_at,
            &view.last_observed_at,
        ];
        for (builder, field) in self.timestamps.iter_mut().zip(times) {
            builder.append_option(field.get().and_then(|t| timestamp::parse_millis(t)));
        }
        self.timestamps[4].append_value(exported_at_ms);

        append_list(
            &mut self.lists[0],
            view.types.get().map(|v| v.iter().map(|t| Some(t.as_ref()))),
        );
        let resources = view.resources.get();
        append_list(
            &mut self.lists[1],
            resources.map(|r| r.iter().map(|r| r.r#type.get().map(|t| t.as_ref()))),
        );
        append_list(
            &mut self.lists[2],
            resources.map(|r| r.iter().map(|r| r.id.get().map(|t| t.as_ref()))),
        );
        for (builder, field) in self
            .maps
            .iter_mut()
            .zip([&view.product_fields, &view.user_defined_fields])
        {
            if let Some(map) = field.get() {
                for (key, value) in map {
                    builder.keys().append_value(key);
                    builder.values().append_value(value);
                }
                builder.append(true).expect("keys and values stay aligned");
            } else {
                builder.append(false).expect("keys and values stay aligned");
            }
        }
    }

    fn finish(mut self) -> RecordBatch {
        let mut s = |i: usize| Arc::new(self.strings[i].finish()) as ArrayRef;
        let strings: Vec<ArrayRef> = (0..STRING_COLUMNS).map(&mut s).collect();
        let times: Vec<ArrayRef> = self
            .timestamps
            .iter_mut()
            .map(|b| Arc::new(b.finish()) as ArrayRef)
            .collect();
        let lists: Vec<ArrayRef> = self
            .lists
            .iter_mut()
            .map(|b| Arc::new(b.finish()) as ArrayRef)
            .collect();
        let maps: Vec<ArrayRef> = self
            .maps
            .iter_mut()
            .map(|b| Arc::new(b.finish()) as ArrayRef)
            .collect();
        let columns: Vec<ArrayRef> = vec![
            strings[S_ID].clone(),
            strings[S_PRODUCT_ARN].clone(),
            strings[S_PRODUCT_NAME].clone(),
            strings[S_COMPANY].clone(),
            strings[S_GENERATOR].clone(),
            strings[S_ACCOUNT].clone(),
            strings[S_REGION].clone(),
            lists[0].clone(),
            strings[S_TITLE].clone(),
            strings[S_DESCRIPTION].clone(),
            strings[S_SEVERITY].clone(),
            Arc::new(self.severity_normalized.finish()),
            strings[S_COMPLIANCE].clone(),
            strings[S_WORKFLOW].clone(),
            strings[S_RECORD_STATE].clone(),
            times[0].clone(),
            times[1].clone(),
            times[2].clone(),
            times[3].clone(),
            lists[1].clone(),
            lists[2].clone(),
            maps[0].clone(),
            maps[1].clone(),
            strings[S_JSON].clone(),
            strings[S_JOB].clone(),
            times[4].clone(),
        ];
        RecordBatch::try_new(schema(), columns).expect("batch columns follow COLUMNS")
    }
}

fn append_list<'a>(
    builder: &mut ListBuilder<StringBuilder>,
    items: Option<impl Iterator<Item = Option<&'a str>>>,
) {
    match items {
        Some(items) => {
            for item in items {
                builder.values().append_option(item);
            }
            builder.append(true);
        }
        None => builder.append(false),
    }
}

/// Writer properties: the chosen codec, no dictionary on the large free-text columns.
pub fn writer_properties(compression: Compression) -> WriterProperties {
    let codec = match compression {
        Compression::Zstd => ParquetCompression::ZSTD(ZstdLevel::try_new(3).expect("valid level")),
        Compression::Snappy => ParquetCompression::SNAPPY,
    };
    let mut props = WriterProperties::builder()
        .set_compression(codec)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_created_by(concat!("sechub-export ", env!("CARGO_PKG_VERSION")).into());
    for column in ["finding_json", "description"] {
        props = props.set_column_dictionary_enabled(ColumnPath::from(column), false);
    }
    props.build()
}

/// Accumulates pages into one Parquet part held in memory.
pub struct PartWriter {
    writer: ArrowWriter<Vec<u8>>,
    rows: u64,
}

impl PartWriter {
    pub fn new(compression: Compression) -> Result<Self, parquet::errors::ParquetError> {
        let writer =
            ArrowWriter::try_new(Vec::new(), schema(), Some(writer_properties(compression)))?;
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

/// Encodes pages into one complete Parquet file (used by tests, benches and the demo).
pub fn encode_pages(
    pages: &[Page],
    job_id: &str,
    compression: Compression,
) -> Result<Vec<u8>, parquet::errors::ParquetError> {
    let mut writer = PartWriter::new(compression)?;
    for page in pages {
        writer.write(&page_batch(page, job_id))?;
    }
    writer.finish()
}
