//! Keeps README.md true: its schema table is the encoder's column list.

use sechub_export::encode::schema::{COLUMNS, PARTITION_COLUMN};

#[test]
fn the_readme_schema_table_lists_every_column_with_its_athena_type() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
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
    let mut expected: Vec<String> = COLUMNS
        .iter()
        .map(|c| format!("| `{}` | `{}` | {} |", c.name, c.kind.hive(), c.doc))
        .collect();
    expected.push(format!(
        "| `{PARTITION_COLUMN}` | partition (`string` yyyy-MM-dd, in the key) | the job's start date, UTC |"
    ));
    assert_eq!(rows, expected);
}
