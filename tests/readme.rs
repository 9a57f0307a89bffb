//! Keeps the docs true: the schema tables of docs/lake-and-athena.md and docs/ocsf.md are the
//! encoders' column lists.

use sechub_export::encode::{asff::ASFF, ocsf::OCSF, Format};
use sechub_export::sink::layout::PARTITION_COLUMN;

/// The table rows between `<!-- {marker}:start -->` and `<!-- {marker}:end -->` of `page`.
fn readme_rows(page: &str, marker: &str) -> Vec<String> {
    // Found at run time: a cached target directory may hold a binary built in another checkout.
    let root = std::env::var("CARGO_MANIFEST_DIR").expect("run under cargo test");
    let readme = std::fs::read_to_string(format!("{root}/{page}")).unwrap();
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
fn the_lake_page_schema_table_lists_every_column_with_its_athena_type() {
    assert_eq!(
        readme_rows("docs/lake-and-athena.md", "schema-table"),
        expected_rows(&ASFF)
    );
}

#[test]
fn the_ocsf_page_schema_table_lists_every_column_with_its_athena_type() {
    for row in expected_rows(&OCSF) {
        println!("{row}");
    }
    assert_eq!(
        readme_rows("docs/ocsf.md", "ocsf-schema-table"),
        expected_rows(&OCSF)
    );
}

/// Every `sechub-export ...` command in README.md's shell blocks, continuation lines joined,
/// without a trailing comment or redirection, split as the shell would.
fn readme_commands() -> Vec<Vec<String>> {
    let root = std::env::var("CARGO_MANIFEST_DIR").expect("run under cargo test");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let mut commands = Vec::new();
    for block in readme.split("```sh").skip(1) {
        let block = block.split("```").next().unwrap().replace("\\\n", " ");
        for line in block.lines() {
            // A command line, or a crontab line that runs one.
            let line = line.trim_start();
            let start = match line.find("sechub-export ") {
                Some(0) => 0,
                Some(at) if line.starts_with(|c: char| c.is_ascii_digit()) => at,
                _ => continue,
            };
            let line = &line[start..];
            let line = line.split(" #").next().unwrap();
            let line = line.split(" > ").next().unwrap();
            let words = shlex::split(line).unwrap_or_else(|| panic!("unbalanced quotes: {line}"));
            commands.push(words);
        }
    }
    commands
}

#[test]
fn every_command_the_readme_shows_parses_with_todays_flags() {
    use clap::Parser;
    let commands = readme_commands();
    assert!(commands.len() >= 10, "{commands:?}");
    for words in commands {
        match sechub_export::cli::Cli::try_parse_from(&words) {
            Ok(cli) => {
                // What an export would check offline (filters, destination, flags) holds too.
                use sechub_export::cli::Command;
                let request = match &cli.command {
                    Command::Export(flags) => Some(&flags.request),
                    Command::Feed(flags) => Some(&flags.request),
                    Command::Permissions(args) => Some(&args.request),
                    _ => None,
                };
                if let Some(request) = request {
                    if let Err(err) = sechub_export::plan::ExportPlan::new(request) {
                        panic!(
                            "README shows `{}`, which is refused: {err}",
                            words.join(" ")
                        );
                    }
                }
            }
            Err(err) if err.kind() == clap::error::ErrorKind::DisplayHelp => {}
            Err(err) => panic!(
                "README shows `{}`, which does not parse: {err}",
                words.join(" ")
            ),
        }
    }
}
