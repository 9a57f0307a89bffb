//! Athena / Glue DDL for a format's table, the feed's runs table and the views over them, made
//! from the same column lists as the Parquet files, with partition projection so new partitions
//! need no crawler or repair.

pub mod cloudformation;
pub mod views;

use crate::encode::table::{Column, Table};
use crate::encode::Format;
use crate::error::{Error, Result};
use crate::feed::runs::{RUNS_DIR, RUN_COLUMNS};
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

    /// Name of the view of the service's current findings (newest row per finding, without
    /// the findings the service no longer holds).
    pub fn latest_view(&self) -> String {
        format!("{}_latest", self.table)
    }

    /// Name of the view of the newest row of every finding ever exported.
    pub fn archive_view(&self) -> String {
        format!("{}_archive", self.table)
    }

    /// Name of the table of complete feed runs.
    pub fn runs_table(&self) -> String {
        format!("{}_feed_runs", self.table)
    }

    /// The runs table's LOCATION.
    pub fn runs_location(&self) -> String {
        format!("{}/{RUNS_DIR}/", self.destination.trim_end_matches('/'))
    }
}

/// The column lines of a `CREATE EXTERNAL TABLE`.
fn column_lines(columns: &[Column]) -> String {
    columns
        .iter()
        .map(|c| {
            format!(
                "  `{}` {} COMMENT '{}'",
                c.name,
                c.kind.hive(),
                c.doc.replace(['`', '\''], "")
            )
        })
        .collect::<Vec<_>>()
        .join(",\n")
}

/// The table's properties: Parquet, and partition projection over `export_date` reading the
/// real key layout below `location` (the same for the DDL and the CloudFormation table).
pub(crate) fn table_properties(location: &str) -> Vec<(String, String)> {
    let part = PARTITION_COLUMN;
    [
        ("parquet.compression", "ZSTD".to_string()),
        ("projection.enabled", "true".into()),
        (&format!("projection.{part}.type"), "date".into()),
        (&format!("projection.{part}.format"), "yyyy-MM-dd".into()),
        (
            &format!("projection.{part}.range"),
            format!("{PROJECTION_START},NOW"),
        ),
        (&format!("projection.{part}.interval"), "1".into()),
        (&format!("projection.{part}.interval.unit"), "DAYS".into()),
        (
            "storage.location.template",
            format!("{location}{part}=${{{part}}}/"),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// What the partition column holds.
pub(crate) const PARTITION_DOC: &str = "start date of the export job, UTC, yyyy-MM-dd";

/// `CREATE EXTERNAL TABLE` (Hive DDL, as Athena runs it).
pub fn create_table(spec: &TableSpec) -> String {
    let location = spec.location();
    let properties: Vec<String> = table_properties(&location)
        .iter()
        .map(|(k, v)| format!("  '{k}'='{v}'"))
        .collect();
    format!(
        "CREATE EXTERNAL TABLE IF NOT EXISTS `{db}`.`{table}` (\n{columns}\n)\n\
         PARTITIONED BY (`{part}` string COMMENT '{PARTITION_DOC}')\n\
         STORED AS PARQUET\n\
         LOCATION '{location}'\n\
         TBLPROPERTIES (\n{properties}\n)",
        db = spec.database,
        table = spec.table,
        columns = column_lines(&spec.columns().columns),
        properties = properties.join(",\n"),
        part = PARTITION_COLUMN,
    )
}

/// `CREATE EXTERNAL TABLE` of the feed's runs table (one small file per complete run).
pub fn create_runs_table(spec: &TableSpec) -> String {
    format!(
        "CREATE EXTERNAL TABLE IF NOT EXISTS `{db}`.`{table}` (\n{columns}\n)\n\
         STORED AS PARQUET\n\
         LOCATION '{location}'",
        db = spec.database,
        table = spec.runs_table(),
        columns = column_lines(RUN_COLUMNS),
        location = spec.runs_location(),
    )
}

/// Every statement, each ending in `;`, as one script (in the order Athena must run them).
pub fn ddl(spec: &TableSpec) -> String {
    format!(
        "-- Generated by `sechub-export athena-ddl`; do not edit (tests check it is current).\n\
         -- Findings table: Parquet parts under {location}, partition projection on {part}.\n\
         {table};\n\n\
         -- Complete feed runs: one file per run under {runs_location}.\n\
         {runs};\n\n\
         -- Newest state of every finding ever exported, kept after the service deletes it.\n\
         {archive};\n\n\
         -- The service's findings as the lake last saw them: the newest state of each, without\n\
         -- those past Security Hub's 90-day retention or gone from the feed's latest snapshot.\n\
         {latest};\n",
        location = spec.location(),
        part = PARTITION_COLUMN,
        table = create_table(spec),
        runs_location = spec.runs_location(),
        runs = create_runs_table(spec),
        archive = views::create_archive_view(spec),
        latest = views::create_latest_view(spec),
    )
}

/// The spec of the DDL shipped in `infra/athena/<table>.sql` for `format` (`findings.sql`,
/// `findings_ocsf.sql`).
pub fn shipped_spec(format: &'static dyn Format) -> TableSpec {
    let destination = Destination::parse("s3://your-bucket/your-prefix").expect("valid");
    TableSpec::new("securityhub", format.table().dir, &destination, format).expect("valid names")
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
    fn the_shipped_ddl_files_are_current() {
        // Found at run time: a cached target directory may hold a binary built elsewhere.
        let root = std::env::var("CARGO_MANIFEST_DIR").expect("run under cargo test");
        let formats: [(&'static dyn Format, &str); 2] = [
            (&crate::encode::asff::ASFF, ""),
            (&crate::encode::ocsf::OCSF, " --api v2"),
        ];
        for (format, flag) in formats {
            let dir = format.table().dir;
            let shipped = std::fs::read_to_string(format!("{root}/infra/athena/{dir}.sql"))
                .expect("the shipped DDL exists");
            assert_eq!(shipped, ddl(&shipped_spec(format)), "regenerate with: sechub-export athena-ddl{flag} --destination s3://your-bucket/your-prefix --output infra/athena/{dir}.sql");
        }
    }

    #[test]
    fn the_cloudformation_table_is_current_and_matches_the_ddl() {
        let root = std::env::var("CARGO_MANIFEST_DIR").expect("run under cargo test");
        let template =
            std::fs::read_to_string(format!("{root}/infra/cloudformation/sechub-export.yaml"))
                .expect("the template exists");
        let begin = template.find(cloudformation::BEGIN).expect("begin marker");
        let end = template[begin..]
            .find(cloudformation::END)
            .expect("end marker")
            + begin;
        let shipped = &template[begin..end + cloudformation::END.len() + 1];
        let generated = cloudformation::resources();
        assert_eq!(
            shipped, generated,
            "regenerate the block with: sechub-export athena-ddl --cloudformation"
        );
        // The same columns, types and projection as the DDL.
        let sql = ddl(&shipped_spec(&crate::encode::asff::ASFF));
        for c in &crate::encode::asff::ASFF.table().columns {
            assert!(generated.contains(&format!(
                "- Name: {}\n              Type: \"{}\"",
                c.name,
                c.kind.hive()
            )));
            assert!(sql.contains(&format!("`{}` {} ", c.name, c.kind.hive())));
        }
        for (key, _) in table_properties("s3://x/") {
            assert!(generated.contains(&format!("          {key}: ")), "{key}");
            assert!(sql.contains(&format!("'{key}'=")), "{key}");
        }
    }
}
