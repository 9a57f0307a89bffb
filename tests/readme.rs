//! Keeps README.md true: its schema table is the encoder's column list.

use sechub_export::encode::{asff::ASFF, Format};
use sechub_export::sink::layout::PARTITION_COLUMN;

#[test]
fn the_readme_schema_table_lists_every_column_with_its_athena_type() {
    // Found at run time: a cached target directory may hold a binary built in another checkout.
    let root = std::env::var("CARGO_MANIFEST_DIR").expect("run under cargo test");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let start = readme
        .find("<!-- schema-table:start -->")
        .expect("start marker");
    let end = readme
        .find("<!-- schema-table:end -->")
        .expect("end marker");
    let rows: Vec<&str> = readme[start..end]
        .lines()
        .filter(|l| l.starts_with("| `"))
        .collect();
    let mut expected: Vec<String> = ASFF
        .table()
        .columns
        .iter()
        .map(|c| format!("| `{}` | `{}` | {} |", c.name, c.kind.hive(), c.doc))
        .collect();
    expected.push(format!(
        "| `{PARTITION_COLUMN}` | partition (`string` yyyy-MM-dd, in the key) | the job's start date, UTC |"
    ));
    assert_eq!(rows, expected);
}
