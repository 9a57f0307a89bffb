//! The views over a findings table (Trino SQL, as Athena runs it): `<table>_archive`, the newest
//! row of every finding ever exported, and `<table>_latest`, the service's findings as the lake
//! last saw them. Both rank a finding's rows the same way: the newest `updated_at`, then the
//! newest export.

use super::TableSpec;
use crate::sink::layout::PARTITION_COLUMN;

/// Days Security Hub keeps a finding after its last update.
pub const RETENTION_DAYS: u32 = 90;

/// Every column of the table and its partition, quoted, each prefixed by `alias`.
fn select_list(spec: &TableSpec, alias: &str) -> String {
    spec.format
        .table()
        .columns
        .iter()
        .map(|c| c.name)
        .chain([PARTITION_COLUMN])
        .map(|n| format!("{alias}\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The table's rows, each with its rank among its finding's rows (1: the newest).
fn ranked_rows(spec: &TableSpec) -> String {
    let table = spec.format.table();
    let identity = table
        .identity
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "SELECT *, row_number() OVER (\n    \
           PARTITION BY {identity}\n    \
           ORDER BY \"{version}\" DESC NULLS LAST, \"exported_at\" DESC, \"{part}\" DESC\n  \
         ) AS \"version_rank\"\n  \
         FROM \"{db}\".\"{table}\"",
        version = table.version,
        part = PARTITION_COLUMN,
        db = spec.database,
        table = spec.table,
    )
}

/// `CREATE OR REPLACE VIEW ..._archive`: one row per finding identity (ASFF: `id`,
/// `product_arn`), its newest, whatever the service holds now.
pub fn create_archive_view(spec: &TableSpec) -> String {
    format!(
        "CREATE OR REPLACE VIEW \"{db}\".\"{view}\" AS\n\
         SELECT {cols}\n\
         FROM (\n  {ranked}\n)\n\
         WHERE \"version_rank\" = 1",
        db = spec.database,
        view = spec.archive_view(),
        cols = select_list(spec, ""),
        ranked = ranked_rows(spec),
    )
}

/// `CREATE OR REPLACE VIEW ..._latest`: the newest row of each finding, without
/// - a finding whose newest `updated_at` is more than [`RETENTION_DAYS`] older than the newest
///   complete feed run's window end (Security Hub had deleted it by then); a lake without feed
///   runs drops nothing this way;
/// - a finding whose newest row came from a feed run older than its family's newest *judged*
///   snapshot (one a later run of the family followed): that snapshot read every finding of the
///   family, and this one was not among them (deleted, or out of the family's filters). A
///   snapshot is judged only once a later run completed, so a finding updated while the
///   snapshot ran, which the snapshot's window left to the next run, is never dropped for it;
///   and only when it settled (it, or its last repair, read the window with nothing changing),
///   so a finding an unsettled read may have skipped is never dropped for it either.
///
/// Rows of plain exports and of runs not yet complete are judged by retention alone.
pub fn create_latest_view(spec: &TableSpec) -> String {
    let table_dir = spec.format.table().dir;
    format!(
        "CREATE OR REPLACE VIEW \"{db}\".\"{view}\" AS\n\
         WITH \"newest\" AS (\n  {ranked}\n),\n\
         \"runs\" AS (\n  \
           SELECT \"feed_family\", \"export_job_id\", \"run_kind\", \"window_end\", \"settled\"\n  \
           FROM \"{db}\".\"{runs}\"\n  \
           WHERE \"findings_table\" = '{table_dir}'\n\
         ),\n\
         \"judged_snapshots\" AS (\n  \
           SELECT \"s\".\"feed_family\", max(\"s\".\"window_end\") AS \"snapshot_end\"\n  \
           FROM \"runs\" AS \"s\"\n  \
           JOIN \"runs\" AS \"later\"\n    \
             ON \"later\".\"feed_family\" = \"s\".\"feed_family\" AND \"later\".\"window_end\" > \"s\".\"window_end\"\n  \
           WHERE \"s\".\"run_kind\" = 'snapshot' AND coalesce(\"s\".\"settled\", true)\n  \
           GROUP BY \"s\".\"feed_family\"\n\
         ),\n\
         \"lake\" AS (\n  \
           SELECT max(\"window_end\") AS \"newest_run_end\" FROM \"runs\"\n\
         )\n\
         SELECT {cols}\n\
         FROM \"newest\" AS \"n\"\n\
         CROSS JOIN \"lake\"\n\
         LEFT JOIN \"runs\" AS \"r\" ON \"r\".\"export_job_id\" = split_part(\"n\".\"export_job_id\", '.', 1)\n\
         LEFT JOIN \"judged_snapshots\" AS \"j\" ON \"j\".\"feed_family\" = \"r\".\"feed_family\"\n\
         WHERE \"n\".\"version_rank\" = 1\n  \
           AND (\"lake\".\"newest_run_end\" IS NULL OR \"n\".\"{version}\" IS NULL\n    \
             OR \"n\".\"{version}\" >= \"lake\".\"newest_run_end\" - INTERVAL '{RETENTION_DAYS}' DAY)\n  \
           AND (\"j\".\"snapshot_end\" IS NULL OR \"r\".\"window_end\" >= \"j\".\"snapshot_end\")",
        db = spec.database,
        view = spec.latest_view(),
        runs = spec.runs_table(),
        ranked = ranked_rows(spec),
        cols = select_list(spec, "\"n\"."),
        version = spec.format.table().version,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::Destination;

    #[test]
    fn both_views_select_every_column_and_rank_on_the_identity() {
        let destination = Destination::parse("s3://bkt/p").unwrap();
        let spec = TableSpec::new("db", "t", &destination, &crate::encode::asff::ASFF).unwrap();
        let archive = create_archive_view(&spec);
        let latest = create_latest_view(&spec);
        for sql in [&archive, &latest] {
            assert!(
                sql.contains("PARTITION BY \"id\", \"product_arn\""),
                "{sql}"
            );
            for c in &spec.format.table().columns {
                assert!(sql.contains(&format!("\"{}\"", c.name)), "{}", c.name);
            }
        }
        assert!(archive.contains("VIEW \"db\".\"t_archive\""));
        assert!(latest.contains("VIEW \"db\".\"t_latest\""));
        assert!(latest.contains("FROM \"db\".\"t_feed_runs\""));
        assert!(latest.contains("\"findings_table\" = 'findings'"));
        assert!(latest.contains("INTERVAL '90' DAY"));
    }
}
