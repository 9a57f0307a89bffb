//! The ASFF findings table (`findings`): GetFindings documents as typed columns, each column
//! declared once with the function that reads it from a finding.

mod view;

use std::sync::OnceLock;

use super::batch::{BatchBuilder, Cell};
use super::lenient::text;
use super::table::{typed, ColumnType, Table, TypedColumn};
use super::timestamp::parse_millis;
use super::Format;
use view::{AnyText, FindingView, Lenient, Text};

/// The ASFF format.
#[derive(Debug, Clone, Copy, Default)]
pub struct Asff;

/// The ASFF format, for `&'static dyn Format`.
pub static ASFF: Asff = Asff;

/// Reads one column's cell from a finding.
type Extract = for<'v, 'a> fn(&'v FindingView<'a>) -> Cell<'v>;

/// A typed column and how to read it.
type AsffColumn = TypedColumn<Extract>;

fn time(field: &Lenient<Text<'_>>) -> Cell<'static> {
    Cell::Time(field.get().and_then(|t| parse_millis(t)))
}

fn map<'v>(field: &'v Lenient<std::collections::BTreeMap<Text<'_>, AnyText<'_>>>) -> Cell<'v> {
    Cell::Map(
        field
            .get()
            .map(|m| m.iter().map(|(k, v)| (k.as_ref(), v.0.as_ref())).collect()),
    )
}

use ColumnType::{Int32, String as Str, StringList, StringMap, Timestamp};

/// Every typed column, in file order (the job columns follow).
const COLUMNS: &[AsffColumn] = &[
    typed("id", Str, "`Id`: the finding id", |v| {
        Cell::Str(text(&v.id))
    }),
    typed("product_arn", Str, "`ProductArn`", |v| {
        Cell::Str(text(&v.product_arn))
    }),
    typed("product_name", Str, "`ProductName`", |v| {
        Cell::Str(text(&v.product_name))
    }),
    typed("company_name", Str, "`CompanyName`", |v| {
        Cell::Str(text(&v.company_name))
    }),
    typed("generator_id", Str, "`GeneratorId`", |v| {
        Cell::Str(text(&v.generator_id))
    }),
    typed("aws_account_id", Str, "`AwsAccountId`", |v| {
        Cell::Str(text(&v.aws_account_id))
    }),
    typed(
        "region",
        Str,
        "`Region`, else the Region of `ProductArn`",
        |v| Cell::Str(v.region()),
    ),
    typed("types", StringList, "`Types`", |v| {
        Cell::strings(v.types.get().map(|t| t.iter().map(|s| Some(s.as_ref()))))
    }),
    typed("title", Str, "`Title`", |v| Cell::Str(text(&v.title))),
    typed("description", Str, "`Description`", |v| {
        Cell::Str(text(&v.description))
    }),
    typed("severity_label", Str, "`Severity.Label`", |v| {
        Cell::Str(v.severity.get().and_then(|s| text(&s.label)))
    }),
    typed(
        "severity_normalized",
        Int32,
        "`Severity.Normalized` (0-100)",
        |v| {
            Cell::Int(
                v.severity
                    .get()
                    .and_then(|s| s.normalized.get().map(|n| n.0))
                    .filter(|n| n.is_finite() && *n >= i32::MIN as f64 && *n <= i32::MAX as f64)
                    .map(|n| n.round() as i32),
            )
        },
    ),
    typed("compliance_status", Str, "`Compliance.Status`", |v| {
        Cell::Str(v.compliance.get().and_then(|c| text(&c.status)))
    }),
    typed("workflow_status", Str, "`Workflow.Status`", |v| {
        Cell::Str(v.workflow.get().and_then(|w| text(&w.status)))
    }),
    typed(
        "record_state",
        Str,
        "`RecordState` (ACTIVE or ARCHIVED)",
        |v| Cell::Str(text(&v.record_state)),
    ),
    typed("created_at", Timestamp, "`CreatedAt`, UTC", |v| {
        time(&v.created_at)
    }),
    typed("updated_at", Timestamp, "`UpdatedAt`, UTC", |v| {
        time(&v.updated_at)
    }),
    typed(
        "first_observed_at",
        Timestamp,
        "`FirstObservedAt`, UTC",
        |v| time(&v.first_observed_at),
    ),
    typed(
        "last_observed_at",
        Timestamp,
        "`LastObservedAt`, UTC",
        |v| time(&v.last_observed_at),
    ),
    typed("resource_types", StringList, "`Resources[].Type`", |v| {
        Cell::strings(v.resources.get().map(|r| r.iter().map(|r| text(&r.r#type))))
    }),
    typed("resource_ids", StringList, "`Resources[].Id`", |v| {
        Cell::strings(v.resources.get().map(|r| r.iter().map(|r| text(&r.id))))
    }),
    typed("product_fields", StringMap, "`ProductFields`", |v| {
        map(&v.product_fields)
    }),
    typed(
        "user_defined_fields",
        StringMap,
        "`UserDefinedFields`",
        |v| map(&v.user_defined_fields),
    ),
];

impl Format for Asff {
    fn table(&self) -> &'static Table {
        static TABLE: OnceLock<Table> = OnceLock::new();
        TABLE.get_or_init(|| {
            Table::new(
                "findings",
                COLUMNS.iter().map(|c| c.column),
                &["id", "product_arn"],
                "updated_at",
                &["finding_json", "description"],
            )
        })
    }

    fn append_typed(&self, text: &str, row: &mut BatchBuilder) {
        let view = FindingView::parse(text);
        for column in COLUMNS {
            row.push((column.value)(&view));
        }
    }

    fn updated_at(&self, text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
        super::timestamp::updated_at_of(text)
    }
}

#[cfg(test)]
mod tests;
