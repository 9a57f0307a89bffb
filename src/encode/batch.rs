//! Builds one Arrow record batch per page, column by column in the table's order: the format
//! supplies each typed cell, this builder adds the job columns.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Int32Builder, Int64Builder, ListBuilder, MapBuilder, MapFieldNames,
    StringBuilder, TimestampMillisecondBuilder,
};
use arrow::record_batch::RecordBatch;

use super::table::{Column, ColumnType, Table};
use super::RowOrigin;

/// One typed value of a row, borrowed from the finding's text where it can be.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell<'a> {
    /// A `String` column's value.
    Str(Option<&'a str>),
    /// An `Int32` column's value.
    Int(Option<i32>),
    /// An `Int64` column's value.
    Long(Option<i64>),
    /// A `Boolean` column's value.
    Bool(Option<bool>),
    /// A `Timestamp` column's value, milliseconds since the epoch, UTC.
    Time(Option<i64>),
    /// A `StringList` column's value.
    List(Option<Vec<Option<&'a str>>>),
    /// A `StringMap` column's value.
    Map(Option<Vec<(&'a str, &'a str)>>),
}

impl<'a> Cell<'a> {
    /// A `StringList` cell of `items` (`None`: no list).
    pub(crate) fn strings(items: Option<impl Iterator<Item = Option<&'a str>>>) -> Cell<'a> {
        Cell::List(items.map(Iterator::collect))
    }
}

enum ColumnBuilder {
    Str(StringBuilder),
    Int(Int32Builder),
    Long(Int64Builder),
    Bool(BooleanBuilder),
    Time(TimestampMillisecondBuilder),
    List(ListBuilder<StringBuilder>),
    Map(MapBuilder<StringBuilder, StringBuilder>),
}

impl ColumnBuilder {
    fn new(kind: ColumnType, rows: usize, text_bytes: usize) -> Self {
        match kind {
            ColumnType::String => Self::Str(StringBuilder::with_capacity(rows, text_bytes)),
            ColumnType::Int32 => Self::Int(Int32Builder::with_capacity(rows)),
            ColumnType::Int64 => Self::Long(Int64Builder::with_capacity(rows)),
            ColumnType::Boolean => Self::Bool(BooleanBuilder::with_capacity(rows)),
            ColumnType::Timestamp => {
                Self::Time(TimestampMillisecondBuilder::with_capacity(rows).with_timezone("UTC"))
            }
            ColumnType::StringList => Self::List(ListBuilder::new(StringBuilder::new())),
            ColumnType::StringMap => Self::Map(MapBuilder::new(
                Some(MapFieldNames {
                    entry: "entries".into(),
                    key: "keys".into(),
                    value: "values".into(),
                }),
                StringBuilder::new(),
                StringBuilder::new(),
            )),
        }
    }

    fn append(&mut self, cell: Cell<'_>) {
        match (self, cell) {
            (Self::Str(b), Cell::Str(v)) => b.append_option(v),
            (Self::Int(b), Cell::Int(v)) => b.append_option(v),
            (Self::Long(b), Cell::Long(v)) => b.append_option(v),
            (Self::Bool(b), Cell::Bool(v)) => b.append_option(v),
            (Self::Time(b), Cell::Time(v)) => b.append_option(v),
            (Self::List(b), Cell::List(items)) => match items {
                Some(items) => {
                    for item in items {
                        b.values().append_option(item);
                    }
                    b.append(true);
                }
                None => b.append(false),
            },
            (Self::Map(b), Cell::Map(entries)) => {
                let present = entries.is_some();
                for (key, value) in entries.into_iter().flatten() {
                    b.keys().append_value(key);
                    b.values().append_value(value);
                }
                b.append(present).expect("keys and values stay aligned");
            }
            (_, cell) => panic!("cell {cell:?} does not fit its column's type"),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Self::Str(b) => Arc::new(b.finish()),
            Self::Int(b) => Arc::new(b.finish()),
            Self::Long(b) => Arc::new(b.finish()),
            Self::Bool(b) => Arc::new(b.finish()),
            Self::Time(b) => Arc::new(b.finish()),
            Self::List(b) => Arc::new(b.finish()),
            Self::Map(b) => Arc::new(b.finish()),
        }
    }
}

/// The builders of one batch, one per column of the table.
pub struct BatchBuilder {
    table: &'static Table,
    columns: Vec<ColumnBuilder>,
    next: usize,
}

impl BatchBuilder {
    /// Builders sized for `rows` findings of `text_bytes` bytes of JSON in all.
    pub fn new(table: &'static Table, rows: usize, text_bytes: usize) -> Self {
        let columns = table
            .columns
            .iter()
            .map(|c| {
                let bytes = if c.name == "finding_json" {
                    text_bytes
                } else {
                    rows * 32
                };
                ColumnBuilder::new(c.kind, rows, bytes)
            })
            .collect();
        BatchBuilder {
            table,
            columns,
            next: 0,
        }
    }

    /// Appends the next typed cell of the current row (in the table's column order).
    pub fn push(&mut self, cell: Cell<'_>) {
        self.columns[self.next].append(cell);
        self.next += 1;
    }

    /// Ends a row whose typed cells were pushed: adds the raw text and the job columns.
    pub fn end_row(&mut self, text: &str, origin: &RowOrigin, exported_at_ms: i64) {
        debug_assert_eq!(
            self.next,
            self.table.typed_columns().len(),
            "a row must give every typed column"
        );
        for cell in [
            Cell::Str(Some(text)),
            Cell::Str(Some(&origin.job_id)),
            Cell::Time(Some(exported_at_ms)),
            Cell::Str(Some(&origin.account_id)),
            Cell::Str(Some(&origin.region)),
        ] {
            self.push(cell);
        }
        self.next = 0;
    }

    /// The batch of every row appended.
    pub fn finish(mut self) -> RecordBatch {
        let arrays: Vec<ArrayRef> = self.columns.iter_mut().map(ColumnBuilder::finish).collect();
        RecordBatch::try_new(self.table.schema(), arrays).expect("builders follow the table")
    }
}

/// A batch of rows of a small table outside the formats (the feed's run records), one cell a
/// column in order.
pub fn rows_batch(columns: &[Column], rows: Vec<Vec<Cell<'_>>>) -> RecordBatch {
    let mut builders: Vec<ColumnBuilder> = columns
        .iter()
        .map(|c| ColumnBuilder::new(c.kind, rows.len(), rows.len() * 32))
        .collect();
    for row in rows {
        assert_eq!(row.len(), columns.len(), "a row gives every column");
        for (builder, cell) in builders.iter_mut().zip(row) {
            builder.append(cell);
        }
    }
    let arrays: Vec<ArrayRef> = builders.iter_mut().map(ColumnBuilder::finish).collect();
    RecordBatch::try_new(super::table::schema_of(columns), arrays)
        .expect("builders follow the columns")
}
