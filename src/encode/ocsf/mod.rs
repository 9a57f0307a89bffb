//! The OCSF findings table (`findings_ocsf`): GetFindingsV2 documents as typed columns named
//! after the OCSF attributes analysts filter on, each declared once with the function that
//! reads it; everything else (`unmapped` included) stays in `finding_json`.

mod view;

use std::sync::OnceLock;

use chrono::{DateTime, Utc};

use super::batch::{BatchBuilder, Cell};
use super::lenient::{text, Lenient, Number};
use super::table::{typed, ColumnType, Table, TypedColumn};
use super::Format;
use view::{millis, FindingInfo, OcsfView};

/// The OCSF format.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ocsf;

/// The OCSF format, for `&'static dyn Format`.
pub static OCSF: Ocsf = Ocsf;

/// Reads one column's cell from a finding.
type Extract = for<'v, 'a> fn(&'v OcsfView<'a>) -> Cell<'v>;

/// A typed column and how to read it.
type OcsfColumn = TypedColumn<Extract>;

fn int(field: &Lenient<Number>) -> Option<i32> {
    field
        .get()
        .map(|n| n.0)
        .filter(|n| n.is_finite() && *n >= i32::MIN as f64 && *n <= i32::MAX as f64)
        .map(|n| n.round() as i32)
}

fn info_time(v: &OcsfView<'_>, pick: fn(&FindingInfo<'_>) -> Option<i64>) -> Cell<'static> {
    Cell::Time(v.info().and_then(pick))
}

use ColumnType::{Int32, Int64, String as Str, StringList, Timestamp};

/// Every typed column, in file order (the job columns follow).
const COLUMNS: &[OcsfColumn] = &[
    typed(
        "finding_uid",
        Str,
        "`finding_info.uid`: the finding id",
        |v| Cell::Str(v.info().and_then(|i| text(&i.uid))),
    ),
    typed("product_uid", Str, "`metadata.product.uid`", |v| {
        Cell::Str(
            v.metadata
                .get()
                .and_then(|m| m.product.get())
                .and_then(|p| text(&p.uid)),
        )
    }),
    typed("product_name", Str, "`metadata.product.name`", |v| {
        Cell::Str(
            v.metadata
                .get()
                .and_then(|m| m.product.get())
                .and_then(|p| text(&p.name)),
        )
    }),
    typed(
        "class_uid",
        Int32,
        "`class_uid` (2002 Vulnerability, 2003 Compliance, 2004 Detection Finding)",
        |v| Cell::Int(int(&v.class_uid)),
    ),
    typed("class_name", Str, "`class_name`", |v| {
        Cell::Str(text(&v.class_name))
    }),
    typed("category_name", Str, "`category_name`", |v| {
        Cell::Str(text(&v.category_name))
    }),
    typed(
        "type_uid",
        Int64,
        "`type_uid` (class_uid * 100 + activity_id)",
        |v| {
            Cell::Long(
                v.type_uid
                    .get()
                    .map(|n| n.0)
                    .filter(|n| n.is_finite() && n.abs() < 9e15)
                    .map(|n| n.round() as i64),
            )
        },
    ),
    typed("title", Str, "`finding_info.title`", |v| {
        Cell::Str(v.info().and_then(|i| text(&i.title)))
    }),
    typed("description", Str, "`finding_info.desc`", |v| {
        Cell::Str(v.info().and_then(|i| text(&i.desc)))
    }),
    typed(
        "severity",
        Str,
        "`severity` (Informational .. Fatal)",
        |v| Cell::Str(text(&v.severity)),
    ),
    typed("severity_id", Int32, "`severity_id` (0-6, 99 Other)", |v| {
        Cell::Int(int(&v.severity_id))
    }),
    typed(
        "status",
        Str,
        "`status` (New, In Progress, Suppressed, Resolved, ...)",
        |v| Cell::Str(text(&v.status)),
    ),
    typed("status_id", Int32, "`status_id`", |v| {
        Cell::Int(int(&v.status_id))
    }),
    typed(
        "activity_name",
        Str,
        "`activity_name` (Create, Update, Close)",
        |v| Cell::Str(text(&v.activity_name)),
    ),
    typed("compliance_status", Str, "`compliance.status`", |v| {
        Cell::Str(v.compliance.get().and_then(|c| text(&c.status)))
    }),
    typed("account_uid", Str, "`cloud.account.uid`", |v| {
        Cell::Str(
            v.cloud
                .get()
                .and_then(|c| c.account.get())
                .and_then(|a| text(&a.uid)),
        )
    }),
    typed("region", Str, "`cloud.region`", |v| {
        Cell::Str(v.cloud.get().and_then(|c| text(&c.region)))
    }),
    typed("resource_types", StringList, "`resources[].type`", |v| {
        Cell::strings(v.resources.get().map(|r| r.iter().map(|r| text(&r.r#type))))
    }),
    typed("resource_uids", StringList, "`resources[].uid`", |v| {
        Cell::strings(v.resources.get().map(|r| r.iter().map(|r| text(&r.uid))))
    }),
    typed(
        "vulnerability_uids",
        StringList,
        "`vulnerabilities[].cve.uid` (CVE ids)",
        |v| {
            Cell::strings(
                v.vulnerabilities
                    .get()
                    .map(|list| list.iter().map(|x| x.cve.get().and_then(|c| text(&c.uid)))),
            )
        },
    ),
    typed(
        "created_time",
        Timestamp,
        "`finding_info.created_time` (or `_dt`), UTC",
        |v| info_time(v, |i| millis(&i.created_time, &i.created_time_dt)),
    ),
    typed(
        "modified_time",
        Timestamp,
        "`finding_info.modified_time` (or `_dt`), UTC",
        |v| info_time(v, |i| millis(&i.modified_time, &i.modified_time_dt)),
    ),
    typed(
        "first_seen_time",
        Timestamp,
        "`finding_info.first_seen_time` (or `_dt`), UTC",
        |v| info_time(v, |i| millis(&i.first_seen_time, &i.first_seen_time_dt)),
    ),
    typed(
        "last_seen_time",
        Timestamp,
        "`finding_info.last_seen_time` (or `_dt`), UTC",
        |v| info_time(v, |i| millis(&i.last_seen_time, &i.last_seen_time_dt)),
    ),
];

impl Format for Ocsf {
    fn table(&self) -> &'static Table {
        static TABLE: OnceLock<Table> = OnceLock::new();
        TABLE.get_or_init(|| {
            Table::new(
                "findings_ocsf",
                COLUMNS.iter().map(|c| c.column),
                &["account_uid", "finding_uid", "product_uid"],
                "modified_time",
                &["finding_json", "description"],
            )
        })
    }

    fn append_typed(&self, text: &str, row: &mut BatchBuilder) {
        let view = OcsfView::parse(text);
        for column in COLUMNS {
            row.push((column.value)(&view));
        }
    }

    fn updated_at(&self, text: &str) -> Option<DateTime<Utc>> {
        let view = OcsfView::parse(text);
        let info = view.info()?;
        DateTime::from_timestamp_millis(millis(&info.modified_time, &info.modified_time_dt)?)
    }
}

#[cfg(test)]
mod tests;
