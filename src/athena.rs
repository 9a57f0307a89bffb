//! Athena / Glue DDL for a format's table and its `latest` view, made from the same column list
//! as the Parquet schema, with partition projection so new partitions need no crawler or repair.

use crate::encode::table::Table;
use crate::encode::Format;
use crate::error::{Error, Result};
use crate::sink::layout::PARTITION_COLUMN;
use crate::sink::Destination;

/// First date partition projection considers (Security Hub keeps findings 90 days; exports made
/// before this date would need a wider range).
pub const PROJECTION_START: &str = "2024-01-01";

/// Where and under which names a format's table is declared.
#[derive(Clone)]
pub struct TableSpec {
    /// Glue database.
    pub database: String,
    /// Table name (the view is `<table>_latest`).
    pub table: String,
    /// `s3://bucket/prefix` of the export destination (the table lives in its folder below it).
    pub destination: String,
    /// The format whose table it is.
    pub format: &'static dyn Format,
}

impl TableSpec {
    /// A spec after checking the names as Glue accepts them and that Athena can read the
    /// destination.
    pub fn new(
        database: &str,
        table: &str,
        destination: &Destination,
        format: &'static dyn Format,
    ) -> Result<TableSpec> {
        if !destination.is_s3() {
            return Err(Error::Usage(
                "athena-ddl needs an s3://bucket/prefix destination (Athena reads S3)".into(),
            ));
        }
        for name in [database, table] {
            let valid = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !valid {
                return Err(Error::Usage(format!(
                    "invalid Glue name {name:?}: use lower-case letters, digits and _"
                )));
            }
        }
        Ok(TableSpec {
            database: database.into(),
            table: table.into(),
            destination: destination.url(),
            format,
        })
    }

    fn columns(&self) -> &'static Table {
        self.format.table()
    }

    /// The table's LOCATION: the format's folder below the destination.
    pub fn location(&self) -> String {
        format!(
            "{}/{}/",
            self.destination.trim_end_matches('/'),
            self.columns().dir
        )
    }

    /// Name of the view that keeps the newest row per finding.
    pub fn latest_view(&self) -> String {
        format!("{}_latest", self.table)
    }
}

/// `CREATE EXTERNAL TABLE` (Hive DDL, as Athena runs it).
pub fn create_table(spec: &TableSpec) -> String {
    let columns: Vec<String> = spec
        .columns()
        .columns
        .iter()
        .map(|c| {
            format!(
                "  `{}` {} COMMENT '{}'",
                c.name,
                c.kind.hive(),
                c.doc.replace(['`', '\''], "")
            )
        })
        .collect();
    let location = spec.location();
    format!(
        "CREATE EXTERNAL TABLE IF NOT EXISTS `{db}`.`{table}` (\n{columns}\n)\n\
         PARTITIONED BY (`{part}` string COMMENT 'start date of the export job, UTC, yyyy-MM-dd')\n\
         STORED AS PARQUET\n\
         LOCATION '{location}'\n\
         TBLPROPERTIES (\n  \
           'parquet.compression'='ZSTD',\n  \
           'projection.enabled'='true',\n  \
           'projection.{part}.type'='date',\n  \
           'projection.{part}.format'='yyyy-MM-dd',\n  \
           'projection.{part}.range'='{start},NOW',\n  \
           'projection.{part}.interval'='1',\n  \
           'projection.{part}.interval.unit'='DAYS',\n  \
           'storage.location.template'='{location}{part}=${{{part}}}/'\n\
         )",
        db = spec.database,
        table = spec.table,
        columns = columns.join(",\n"),
        part = PARTITION_COLUMN,
        start = PROJECTION_START,
    )
}

/// `CREATE OR REPLACE VIEW ..._latest` (Trino SQL): one row per finding identity (ASFF: `id`,
/// `product_arn`), the newest version column (`updated_at`), ties broken by the newest export.
pub fn create_latest_view(spec: &TableSpec) -> String {
    let table = spec.columns();
    let quoted = |names: &[&str]| {
        names
            .iter()
            .map(|n| format!("\"{n}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let names: Vec<String> = table
        .columns
        .iter()
        .map(|c| c.name)
        .chain([PARTITION_COLUMN])
        .map(|n| format!("\"{n}\""))
        .collect();
    format!(
        "CREATE OR REPLACE VIEW \"{db}\".\"{view}\" AS\n\
         SELECT {cols}\n\
         FROM (\n  \
           SELECT *, row_number() OVER (\n    \
             PARTITION BY {identity}\n    \
             ORDER BY \"{version}\" DESC NULLS LAST, \"exported_at\" DESC, \"{part}\" DESC\n  \
           ) AS \"version_rank\"\n  \
           FROM \"{db}\".\"{table}\"\n\
         )\n\
         WHERE \"version_rank\" = 1",
        db = spec.database,
        view = spec.latest_view(),
        table = spec.table,
        cols = names.join(", "),
        part = PARTITION_COLUMN,
        identity = quoted(table.identity),
        version = table.version,
    )
}

/// Both statements, each ending in `;`, as one script.
pub fn ddl(spec: &TableSpec) -> String {
    format!(
        "-- Generated by `sechub-export athena-ddl`; do not edit (tests check it is current).\n\
         -- Findings table: Parquet parts under {location}, partition projection on {part}.\n\
         {table};\n\n\
         -- Latest state of each finding across every export.\n\
         {view};\n",
        location = spec.location(),
        part = PARTITION_COLUMN,
        table = create_table(spec),
        view = create_latest_view(spec),
    )
}

/// The spec of the DDL shipped in `infra/athena/findings.sql`.
pub fn shipped_spec() -> TableSpec {
    let destination = Destination::parse("s3://your-bucket/your-prefix").expect("valid");
    TableSpec::new(
        "securityhub",
        "findings",
        &destination,
        &crate::encode::asff::ASFF,
    )
    .expect("valid names")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_declares_every_column_and_projects_the_real_key_layout() {
        let destination = Destination::parse("s3://bkt/p/").unwrap();
        let spec = TableSpec::new("db", "t", &destination, &crate::encode::asff::ASFF).unwrap();
        let sql = create_table(&spec);
        for c in &spec.columns().columns {
            assert!(
                sql.contains(&format!("`{}` {} ", c.name, c.kind.hive())),
                "{}",
                c.name
            );
        }
        assert!(sql.contains("LOCATION 's3://bkt/p/findings/'"));
        let template =
            "'storage.location.template'='s3://bkt/p/findings/export_date=${export_date}/'";
        assert!(sql.contains(template), "{sql}");
        let key = crate::sink::layout::part_key("findings", "2026-11-22", "j", 1);
        assert!(
            format!("s3://bkt/p/{key}").starts_with("s3://bkt/p/findings/export_date=2026-11-22/")
        );
    }

    #[test]
    fn glue_names_and_destinations_athena_cannot_read_are_refused() {
        let s3 = Destination::parse("s3://bkt/p").unwrap();
        let local = Destination::parse("/tmp/lake").unwrap();
        let asff = &crate::encode::asff::ASFF;
        assert!(TableSpec::new("db", "Bad-Name", &s3, asff).is_err());
        assert!(TableSpec::new("", "t", &s3, asff).is_err());
        assert!(TableSpec::new("db", "t", &local, asff).is_err());
    }

    #[test]
    fn the_shipped_ddl_file_is_current() {
        // Found at run time: a cached target directory may hold a binary built elsewhere.
        let root = std::env::var("CARGO_MANIFEST_DIR").expect("run under cargo test");
        let shipped = std::fs::read_to_string(format!("{root}/infra/athena/findings.sql"))
            .expect("infra/athena/findings.sql exists");
        assert_eq!(shipped, ddl(&shipped_spec()), "regenerate with: sechub-export athena-ddl --destination s3://your-bucket/your-prefix --output infra/athena/findings.sql");
    }
}
