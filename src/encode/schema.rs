//! The findings table's columns: one list that the Arrow schema, the Athena DDL and the README
//! table are all made from.

use std::sync::{Arc, OnceLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// The logical type of a column, with its Arrow and Hive (Athena) forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    String,
    Int32,
    /// `TIMESTAMP(MILLIS)` adjusted to UTC.
    Timestamp,
    StringList,
    StringMap,
}

/// One column of the findings table.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub kind: ColumnType,
    /// What it holds and where it comes from in ASFF.
    pub doc: &'static str,
}

const fn col(name: &'static str, kind: ColumnType, doc: &'static str) -> Column {
    Column { name, kind, doc }
}

use ColumnType::{Int32, String as Str, StringList, StringMap, Timestamp};

/// Every column, in file order.
pub const COLUMNS: &[Column] = &[
    col("id", Str, "`Id`: the finding id"),
    col("product_arn", Str, "`ProductArn`"),
    col("product_name", Str, "`ProductName`"),
    col("company_name", Str, "`CompanyName`"),
    col("generator_id", Str, "`GeneratorId`"),
    col("aws_account_id", Str, "`AwsAccountId`"),
    col("region", Str, "`Region`, else the Region of `ProductArn`"),
    col("types", StringList, "`Types`"),
    col("title", Str, "`Title`"),
    col("description", Str, "`Description`"),
    col("severity_label", Str, "`Severity.Label`"),
    col(
        "severity_normalized",
        Int32,
        "`Severity.Normalized` (0-100)",
    ),
    col("compliance_status", Str, "`Compliance.Status`"),
    col("workflow_status", Str, "`Workflow.Status`"),
    col("record_state", Str, "`RecordState` (ACTIVE or ARCHIVED)"),
    col("created_at", Timestamp, "`CreatedAt`, UTC"),
    col("updated_at", Timestamp, "`UpdatedAt`, UTC"),
    col("first_observed_at", Timestamp, "`FirstObservedAt`, UTC"),
    col("last_observed_at", Timestamp, "`LastObservedAt`, UTC"),
    col("resource_types", StringList, "`Resources[].Type`"),
    col("resource_ids", StringList, "`Resources[].Id`"),
    col("product_fields", StringMap, "`ProductFields`"),
    col("user_defined_fields", StringMap, "`UserDefinedFields`"),
    col(
        "finding_json",
        Str,
        "the finding exactly as GetFindings returned it",
    ),
    col("export_job_id", Str, "the job that exported this row"),
    col(
        "exported_at",
        Timestamp,
        "when the page holding this row was fetched, UTC",
    ),
];

/// The partition column encoded in the object key (`export_date=YYYY-MM-DD`), not in the file.
pub const PARTITION_COLUMN: &str = "export_date";

impl ColumnType {
    /// The Arrow type written to Parquet.
    pub fn arrow(self) -> DataType {
        match self {
            ColumnType::String => DataType::Utf8,
            ColumnType::Int32 => DataType::Int32,
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
            ColumnType::Timestamp => "timestamp",
            ColumnType::StringList => "array<string>",
            ColumnType::StringMap => "map<string,string>",
        }
    }
}

/// The Arrow schema of every part.
pub fn schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let fields: Vec<Field> = COLUMNS
                .iter()
                .map(|c| Field::new(c.name, c.kind.arrow(), c.name != "finding_json"))
                .collect();
            Arc::new(Schema::new(fields))
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_names_are_athena_safe_snake_case_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for c in COLUMNS {
            assert!(
                c.name
                    .chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_'),
                "{}",
                c.name
            );
            assert!(seen.insert(c.name), "duplicate {}", c.name);
        }
        assert!(!seen.contains(PARTITION_COLUMN));
    }
}
