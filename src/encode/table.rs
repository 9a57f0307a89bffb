//! A table's columns: one list per format that the Arrow schema, the row builder, the Athena DDL
//! and the docs' schema tables are all made from, plus the job columns every format ends with.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// The logical type of a column, with its Arrow and Hive (Athena) forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// UTF-8 text.
    String,
    /// 32-bit signed integer (Athena misreads unsigned ones).
    Int32,
    /// 64-bit signed integer (counts).
    Int64,
    /// True or false.
    Boolean,
    /// `TIMESTAMP(MILLIS)` adjusted to UTC.
    Timestamp,
    /// `array<string>`.
    StringList,
    /// `map<string,string>`.
    StringMap,
}

/// One column of a table.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// Lower-case snake_case name.
    pub name: &'static str,
    /// Its type.
    pub kind: ColumnType,
    /// What it holds and where it comes from.
    pub doc: &'static str,
    /// False only for columns every row has (`finding_json`).
    pub nullable: bool,
}

/// A nullable column.
pub const fn col(name: &'static str, kind: ColumnType, doc: &'static str) -> Column {
    Column {
        name,
        kind,
        doc,
        nullable: true,
    }
}

/// A format's typed column and `E`, the function that reads its cell from the format's view of
/// a finding.
pub struct TypedColumn<E> {
    /// The column.
    pub column: Column,
    /// Reads its cell.
    pub value: E,
}

/// A nullable typed column read by `value`.
pub const fn typed<E>(
    name: &'static str,
    kind: ColumnType,
    doc: &'static str,
    value: E,
) -> TypedColumn<E> {
    TypedColumn {
        column: col(name, kind, doc),
        value,
    }
}

/// The columns every format's table ends with: the raw document, the job that exported it and
/// the stream (account, Region) that fetched it.
pub const JOB_COLUMNS: &[Column] = &[
    Column {
        name: "finding_json",
        kind: ColumnType::String,
        doc: "the finding exactly as Security Hub returned it (GetFindings or GetFindingsV2)",
        nullable: false,
    },
    col(
        "export_job_id",
        ColumnType::String,
        "the job that exported this row",
    ),
    col(
        "exported_at",
        ColumnType::Timestamp,
        "when the page holding this row was fetched, UTC",
    ),
    col(
        "source_account_id",
        ColumnType::String,
        "the account whose Security Hub returned this row (the stream's account)",
    ),
    col(
        "source_region",
        ColumnType::String,
        "the Region whose Security Hub returned this row (the stream's Region)",
    ),
];

/// A table of one format: its folder, columns, and how the `latest` view picks a row.
#[derive(Debug)]
pub struct Table {
    /// Folder below the destination (the Athena table's LOCATION) and default table name.
    pub dir: &'static str,
    /// Every column in file order: the format's typed columns, then [`JOB_COLUMNS`].
    pub columns: Vec<Column>,
    /// Columns that identify one finding across exports.
    pub identity: &'static [&'static str],
    /// The column whose newest value makes a row the latest state of its finding.
    pub version: &'static str,
    /// Large free-text columns written without a dictionary.
    pub no_dictionary: &'static [&'static str],
    schema: SchemaRef,
}

impl Table {
    /// A table of `typed` columns followed by the job columns.
    pub fn new(
        dir: &'static str,
        typed: impl IntoIterator<Item = Column>,
        identity: &'static [&'static str],
        version: &'static str,
        no_dictionary: &'static [&'static str],
    ) -> Table {
        let columns: Vec<Column> = typed
            .into_iter()
            .chain(JOB_COLUMNS.iter().copied())
            .collect();
        let schema = schema_of(&columns);
        Table {
            dir,
            columns,
            identity,
            version,
            no_dictionary,
            schema,
        }
    }

    /// The Arrow schema of every part of this table.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// The format's own columns (before the job columns).
    pub fn typed_columns(&self) -> &[Column] {
        &self.columns[..self.columns.len() - JOB_COLUMNS.len()]
    }
}

/// The Arrow schema of a list of columns.
pub fn schema_of(columns: &[Column]) -> SchemaRef {
    let fields: Vec<Field> = columns
        .iter()
        .map(|c| Field::new(c.name, c.kind.arrow(), c.nullable))
        .collect();
    Arc::new(Schema::new(fields))
}

impl ColumnType {
    /// The Arrow type written to Parquet.
    pub fn arrow(self) -> DataType {
        match self {
            ColumnType::String => DataType::Utf8,
            ColumnType::Int32 => DataType::Int32,
            ColumnType::Int64 => DataType::Int64,
            ColumnType::Boolean => DataType::Boolean,
            ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            ColumnType::StringList => {
                DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
            }
            ColumnType::StringMap => DataType::Map(
                Arc::new(Field::new(
                    "entries",
                    DataType::Struct(
                        vec![
                            Field::new("keys", DataType::Utf8, false),
                            Field::new("values", DataType::Utf8, true),
                        ]
                        .into(),
                    ),
                    false,
                )),
                false,
            ),
        }
    }

    /// The Hive type Athena declares for it.
    pub fn hive(self) -> &'static str {
        match self {
            ColumnType::String => "string",
            ColumnType::Int32 => "int",
            ColumnType::Int64 => "bigint",
            ColumnType::Boolean => "boolean",
            ColumnType::Timestamp => "timestamp",
            ColumnType::StringList => "array<string>",
            ColumnType::StringMap => "map<string,string>",
        }
    }
}
