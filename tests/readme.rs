//! Keeps README.md true: its schema tables are the encoders' column lists.

use sechub_export::encode::{asff::ASFF, ocsf::OCSF, Format};
use sechub_export::sink::layout::PARTITION_COLUMN;

/// The table rows between `<!-- {marker}:start -->` and `<!-- {marker}:end -->`.
fn readme_rows(marker: &str) -> Vec<String> {
    // Found at run time: a cached target directory may hold a binary built in another checkout.
    let root = std::env::var("CARGO_MANIFEST_DIR").expect("run under cargo test");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let start = readme
        .find(&format!("<!-- {marker}:start -->"))
        .expect("start marker");
    let end = readme
        .find(&format!("<!-- {marker}:end -->"))
        .expect("end marker");
    readme[start..end]
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(str::to_string)
        .collect()
}

/// The rows a format's table must have: every column with its Athena type, then the partition.
fn expected_rows(format: &dyn Format) -> Vec<String> {
    let mut expected: Vec<String> = format
        .table()
        .columns
        .iter()
        .map(|c| format!("| `{}` | `{}` | {} |", c.name, c.kind.hive(), c.doc))
        .collect();
    expected.push(format!(
        "| `{PARTITION_COLUMN}` | partition (`string` yyyy-MM-dd, in the key) | the job's start date, UTC |"
    ));
    expected
}

#[test]
fn the_readme_schema_table_lists_every_column_with_its_athena_type() {
    assert_eq!(readme_rows("schema-table"), expected_rows(&ASFF));
}

#[test]
fn the_readme_ocsf_schema_table_lists_every_column_with_its_athena_type() {
    for row in expected_rows(&OCSF) {
        println!("{row}");
    }
    assert_eq!(readme_rows("ocsf-schema-table"), expected_rows(&OCSF));
}
