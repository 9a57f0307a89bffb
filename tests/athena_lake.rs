//! The lake as Athena sees it: the generated DDL matches every file's schema, its `latest` view
//! and the queries of docs/lake-and-athena.md give the right answers in DuckDB; `verify` proves completeness and
//! names each discrepancy.

mod common;

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use common::*;
use sechub_export::emulator::{generate::Generator, query::Dataset, EmulatorConfig};
use serde_json::Value;

const FINDINGS: u64 = 600;
const UPDATED: usize = 200;

/// Exports `findings` from an emulator that serves exactly them, as job `job`.
async fn export_dataset(lake: &Path, job: &str, findings: &[Value]) {
    let texts: Vec<String> = findings.iter().map(Value::to_string).collect();
    let config = EmulatorConfig {
        dataset: Dataset::Loaded(Arc::new(texts)),
        rate: 100.0,
        burst: 50,
        ..EmulatorConfig::generated(0, 1)
    };
    let emulator = start_emulator(config).await;
    // One chain: parts of whole pages, as the checks below count them (at 100/s the emulator's
    // first answer, which computes the export's UpdatedAt window, would look slow enough to shard).
    let extra = [
        "--rate",
        "100",
        "--burst",
        "50",
        "--part-rows",
        "200",
        "--max-shards",
        "1",
    ];
    let cmd = export_command(&emulator.url(), lake, job, &extra);
    let out = tokio::process::Command::from(cmd).output().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn updated_at(finding: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(finding["UpdatedAt"].as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

/// The queries of docs/lake-and-athena.md, by name, with the example id replaced.
fn readme_queries(id: &str) -> Value {
    let readme = std::fs::read_to_string(repo_file("docs/lake-and-athena.md")).unwrap();
    let start = readme.find("<!-- queries:start -->").unwrap();
    let end = readme.find("<!-- queries:end -->").unwrap();
    let mut queries = serde_json::Map::new();
    for block in readme[start..end].split("```sql").skip(1) {
        let sql = block.split("```").next().unwrap().trim();
        let name = sql.strip_prefix("-- ").unwrap().split(':').next().unwrap();
        let sql = sql.replace(
            "arn:aws:securityhub:us-east-1:111111111111:finding/example",
            id,
        );
        queries.insert(name.to_string(), sql.into());
    }
    Value::Object(queries)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ddl_matches_the_files_and_the_latest_view_keeps_the_newest_version() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let generator = Generator {
        seed: 21,
        ..Generator::default()
    };
    let first: Vec<Value> = (0..FINDINGS).map(|i| generator.finding_value(i)).collect();
    let mut second: Vec<Value> = first[..UPDATED].to_vec();
    for finding in &mut second {
        let later = updated_at(finding) + Duration::days(1);
        finding["UpdatedAt"] = later.to_rfc3339_opts(SecondsFormat::Millis, true).into();
        finding["Workflow"]["Status"] = "RESOLVED".into();
    }
    export_dataset(&lake, "first", &first).await;
    export_dataset(&lake, "second", &second).await;

    let changed_id = second[7]["Id"].as_str().unwrap();
    let report = ddl_check(dir.path(), &lake, &readme_queries(changed_id));

    assert_eq!(
        report["schema_mismatches"],
        serde_json::json!([]),
        "{report}"
    );
    assert_eq!(report["ddl_columns"], {
        use sechub_export::encode::Format;
        sechub_export::encode::asff::ASFF.table().columns.len()
    });
    assert_eq!(report["table_rows"], FINDINGS + UPDATED as u64);
    assert_eq!(report["latest_rows"], FINDINGS);

    // Expected answers, computed from the JSON the emulator served.
    let mut latest: Vec<&Value> = second.iter().collect();
    latest.extend(&first[UPDATED..]);
    let mut by_severity = std::collections::BTreeMap::<String, u64>::new();
    for finding in &latest {
        *by_severity
            .entry(finding["Severity"]["Label"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    let got: std::collections::BTreeMap<String, u64> = report["results"]["by_severity"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row[0].as_str().unwrap().to_string(),
                row[1].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, by_severity);

    let one = &report["results"]["one_finding"];
    assert_eq!(one.as_array().unwrap().len(), 1, "{one}");
    assert_eq!(one[0][0], changed_id);
    assert_eq!(one[0][1], "RESOLVED", "the newest version wins: {one}");

    let (from, to) = ("2026-09-01T00:00:00Z", "2026-10-01T00:00:00Z");
    let parse = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
    let in_range = latest
        .iter()
        .filter(|f| {
            f["AwsAccountId"] == "111111111111"
                && updated_at(f) >= parse(from)
                && updated_at(f) < parse(to)
        })
        .count();
    assert!(in_range > 0);
    assert_eq!(
        report["results"]["account_range"][0][0],
        in_range.to_string()
    );
}

fn verify(lake: &Path, extra: &[&str]) -> Run {
    let mut cmd = command(None);
    cmd.args([
        "verify",
        "--destination",
        lake.to_str().unwrap(),
        "--job-id",
        "v",
    ])
    .args(extra);
    run(cmd)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_passes_a_clean_job_and_names_a_deleted_a_stray_and_a_tampered_part() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let generator = Generator {
        seed: 22,
        ..Generator::default()
    };
    let findings: Vec<Value> = (0..FINDINGS).map(|i| generator.finding_value(i)).collect();
    export_dataset(&lake, "v", &findings).await;

    let clean = verify(&lake, &["--deep"]).ok();
    assert!(
        clean.contains("verified: job v: 600 findings in 3 parts"),
        "{clean}"
    );
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(state_file(&lake, "v", "manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["rows"], FINDINGS);
    assert_eq!(manifest["parts"].as_array().unwrap().len(), 3);

    let part = |n: u64| lake.join(manifest["parts"][n as usize - 1]["key"].as_str().unwrap());
    let stray = part(1).with_file_name("v-part-000009.parquet");
    std::fs::copy(part(1), &stray).unwrap();
    let extra = verify(&lake, &[]);
    extra.fails(7, &["extra part", "v-part-000009.parquet"]);
    std::fs::remove_file(&stray).unwrap();

    let saved = std::fs::read(part(2)).unwrap();
    std::fs::remove_file(part(2)).unwrap();
    let missing = verify(&lake, &[]);
    missing.fails(7, &["missing part", "v-part-000002.parquet (200 rows)"]);
    std::fs::write(part(2), &saved).unwrap();

    // A hand-edited count in the checkpoint is refused as corrupt state.
    let checkpoint_path = state_file(&lake, "v", "checkpoint.json");
    let mut checkpoint: Value =
        serde_json::from_slice(&std::fs::read(&checkpoint_path).unwrap()).unwrap();
    checkpoint["exported_count"] = (FINDINGS + 5).into();
    std::fs::write(&checkpoint_path, serde_json::to_vec(&checkpoint).unwrap()).unwrap();
    let tampered = verify(&lake, &[]);
    assert_eq!(
        tampered.code(),
        5,
        "a hand-edited checkpoint is refused: {}",
        tampered.stderr()
    );
    assert!(
        tampered.stderr().contains("inconsistent counts"),
        "{}",
        tampered.stderr()
    );
    checkpoint["exported_count"] = FINDINGS.into();
    std::fs::write(&checkpoint_path, serde_json::to_vec(&checkpoint).unwrap()).unwrap();

    let mut bytes = std::fs::read(part(3)).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(part(3), &bytes).unwrap();
    assert!(
        verify(&lake, &[]).ok().contains("verified"),
        "a flipped byte mid-file keeps footer and size"
    );
    let deep = verify(&lake, &["--deep"]);
    deep.fails(7, &["SHA-256"]);
}
