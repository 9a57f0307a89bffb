//! The new Security Hub end to end against the project's emulator (moto does not serve
//! GetFindingsV2): OCSF findings exported through GetFindingsV2 exactly once, byte for byte,
//! typed, through kills and a throttling storm, filtered by composite filters, queryable through
//! the generated DDL and latest view in DuckDB; and each service situation's message.

mod common;

use std::path::Path;

use common::*;
use sechub_export::emulator::{Emulator, EmulatorConfig, Faults, Services};
use serde_json::{json, Value};

use common::generated_emulator as emulator;

fn export_v2(
    emulator: &Emulator,
    lake: &Path,
    job: &str,
    extra: &[&str],
) -> tokio::process::Command {
    let args = [&["--api", "v2"], extra].concat();
    tokio::process::Command::from(export_command(&emulator.url(), lake, job, &args))
}

/// The emulator's findings of `seed` as OCSF NDJSON (what GetFindingsV2 serves), in `dir`.
fn expected_ocsf(dir: &Path, count: u64, seed: u64) -> std::path::PathBuf {
    let path = dir.join("expected-ocsf.ndjson");
    generate_for("v2", count, seed, &path);
    path
}

fn check_ocsf(lake: &Path, expect: &Path) -> Value {
    lake_tool(&[
        "check-ocsf",
        lake.to_str().unwrap(),
        "--expect",
        expect.to_str().unwrap(),
    ])
}

fn assert_ocsf_exactly_once(report: &Value, count: u64) {
    for (field, want) in [
        ("rows", count),
        ("duckdb_rows", count),
        ("distinct_ids", count),
        ("duplicated_count", 0),
        ("missing_count", 0),
        ("unexpected_count", 0),
        ("byte_mismatches", 0),
        ("typed_mismatches", 0),
    ] {
        assert_eq!(report[field], want, "{field}: {report}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ocsf_export_lands_each_finding_once_byte_for_byte_typed_and_queryable() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let emulator = emulator(2_500, 41, 40.0, 20).await;
    let args = ["--rate", "40", "--burst", "20", "--part-rows", "1000"];
    let out = finish(export_v2(&emulator, &lake, "ocsf", &args))
        .await
        .ok();
    assert!(
        out.contains("complete: job ocsf: 2500 findings in 3 parts"),
        "{out}"
    );
    let report = check_ocsf(&lake, &expected_ocsf(dir.path(), 2_500, 41));
    assert_ocsf_exactly_once(&report, 2_500);
    assert_eq!(
        report["types"]["modified_time"], "TIMESTAMP WITH TIME ZONE",
        "{report}"
    );
    assert_eq!(report["types"]["class_uid"], "INTEGER", "{report}");
    assert_eq!(report["types"]["resource_uids"], "VARCHAR[]", "{report}");

    // The generated DDL declares every file's schema; the latest view holds each finding once.
    let ddl = dir.path().join("findings_ocsf.sql");
    let mut cmd = command(None);
    cmd.args([
        "athena-ddl",
        "--api",
        "v2",
        "--destination",
        "s3://bucket/sh",
        "--output",
    ])
    .arg(&ddl);
    run(cmd).ok();
    let queries = dir.path().join("queries.json");
    let by_class = "SELECT class_uid, class_name, count(*) FROM securityhub.findings_ocsf_latest GROUP BY 1, 2 ORDER BY 1";
    std::fs::write(&queries, json!({"by_class": by_class}).to_string()).unwrap();
    let athena = lake_tool(&[
        "ddl-check",
        lake.to_str().unwrap(),
        ddl.to_str().unwrap(),
        queries.to_str().unwrap(),
        "--table",
        "findings_ocsf",
    ]);
    assert_eq!(athena["schema_mismatches"], json!([]), "{athena}");
    assert_eq!(athena["latest_rows"], 2_500, "{athena}");
    assert_eq!(athena["archive_rows"], 2_500, "{athena}");
    let classes: Vec<(String, u64)> = athena["results"]["by_class"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row[1].as_str().unwrap().to_string(),
                row[2].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect();
    let names: Vec<&str> = classes.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "Vulnerability Finding",
            "Compliance Finding",
            "Detection Finding"
        ]
    );
    assert_eq!(classes.iter().map(|(_, n)| n).sum::<u64>(), 2_500);

    // The same command again exports nothing twice; verify reads the OCSF table.
    let again = finish(export_v2(&emulator, &lake, "ocsf", &args))
        .await
        .ok();
    assert!(
        again.contains("already complete: job ocsf holds 2500 findings"),
        "{again}"
    );
    let mut verify = command(Some(&emulator.url()));
    verify.args([
        "verify",
        "--destination",
        lake.to_str().unwrap(),
        "--job-id",
        "ocsf",
        "--deep",
    ]);
    let verified = run(verify).ok();
    assert!(verified.contains("2500"), "{verified}");
    let status = status_of(&emulator.url(), lake.to_str().unwrap(), "ocsf");
    assert!(status.contains("GetFindingsV2"), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ocsf_export_killed_again_and_again_in_a_throttling_storm_lands_each_finding_once() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let emulator = emulator(3_000, 42, 8.0, 4).await;
    emulator.set_faults(Faults {
        throttle_probability: 0.3,
        error_probability: 0.05,
        drop_probability: 0.05,
        ..Faults::default()
    });
    // Kills about a second apart are about the storm: the job's count (a read-only call beside
    // the first page, as heavy as a first page for this debug emulator) is left out here and
    // tested in tests/reconcile.rs.
    let args = [
        "--rate",
        "8",
        "--burst",
        "4",
        "--part-rows",
        "100",
        "--total",
        "off",
    ];
    let make = || export_v2(&emulator, &lake, "storm", &args);
    let kills = kill_repeatedly(make, &[900, 600, 1200, 700], &lake, "storm").await;
    kills.assert_progress(3);
    let out = finish(export_v2(&emulator, &lake, "storm", &args))
        .await
        .ok();
    assert!(out.contains("complete: job storm"), "{out}");
    assert_no_stray_parts(&lake, "storm");
    let stats = emulator.stats();
    assert!(
        stats.throttled_injected > 0 && stats.internal_errors > 0 && stats.dropped > 0,
        "{stats:?}"
    );
    // (A run started right after a SIGKILL meets the quota bucket its predecessor drained, so
    // quota 429s are expected here too; the paced loop retries them like the injected ones.)
    let report = check_ocsf(&lake, &expected_ocsf(dir.path(), 3_000, 42));
    assert_ocsf_exactly_once(&report, 3_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composite_filters_export_exactly_the_findings_they_match() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let emulator = emulator(2_000, 43, 40.0, 20).await;
    let product = |name: &str| json!({"FieldName": "metadata.product.name", "Filter": {"Value": name, "Comparison": "EQUALS"}});
    let filters = json!({
        "CompositeFilters": [
            {"StringFilters": [product("Inspector"), product("Macie")], "Operator": "OR"},
            {"NumberFilters": [{"FieldName": "severity_id", "Filter": {"Gte": 3}}]}
        ],
        "CompositeOperator": "AND"
    });
    let args = [
        "--rate",
        "40",
        "--burst",
        "20",
        "--filters",
        &filters.to_string(),
    ];
    let out = finish(export_v2(&emulator, &lake, "filtered", &args))
        .await
        .ok();
    assert!(out.contains("complete: job filtered"), "{out}");
    let all = std::fs::read_to_string(expected_ocsf(dir.path(), 2_000, 43)).unwrap();
    let matching: Vec<&str> = all
        .lines()
        .filter(|line| {
            let doc: Value = serde_json::from_str(line).unwrap();
            let name = doc["metadata"]["product"]["name"].as_str().unwrap();
            matches!(name, "Inspector" | "Macie") && doc["severity_id"].as_i64().unwrap() >= 3
        })
        .collect();
    assert!(
        matching.len() > 100 && matching.len() < 1_000,
        "{}",
        matching.len()
    );
    let expect = dir.path().join("matching.ndjson");
    std::fs::write(&expect, matching.join("\n") + "\n").unwrap();
    assert_ocsf_exactly_once(&check_ocsf(&lake, &expect), matching.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v2_job_over_two_accounts_reads_each_through_its_role_with_its_source_columns() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let emulator = start_emulator(EmulatorConfig {
        rate: 50.0,
        burst: 20,
        members: vec!["222222222222".into()],
        ..EmulatorConfig::generated(300, 45)
    })
    .await;
    let args = [
        "--accounts",
        "123456789012,222222222222",
        "--role-name",
        "SecurityHubExportRole",
        "--rate",
        "50",
        "--burst",
        "20",
    ];
    let out = finish(export_v2(&emulator, &lake, "org", &args)).await.ok();
    assert!(
        out.contains("complete: job org: 2 streams") && out.contains("job total 600 findings"),
        "{out}"
    );
    let sources = lake_tool(&[
        "sources",
        lake.to_str().unwrap(),
        "--table",
        "findings_ocsf",
    ]);
    assert_eq!(
        sources["by_source"],
        json!({"123456789012/us-east-1": 300, "222222222222/us-east-1": 300}),
        "{sources}"
    );
    assert_eq!(sources["wrong_source"], 0, "{sources}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_service_situation_exports_or_says_which_api_to_use() {
    let situations = [
        (
            "only CSPM",
            Services {
                cspm: true,
                v2: false,
            },
            None,
            Some("uses only Security Hub CSPM"),
        ),
        (
            "only the new Security Hub",
            Services {
                cspm: false,
                v2: true,
            },
            Some("uses only the new Security Hub"),
            None,
        ),
        (
            "neither",
            Services {
                cspm: false,
                v2: false,
            },
            Some("neither Security Hub CSPM nor the new Security Hub"),
            Some("neither Security Hub CSPM nor the new Security Hub"),
        ),
        (
            "both",
            Services {
                cspm: true,
                v2: true,
            },
            None,
            None,
        ),
    ];
    for (name, services, v1_error, v2_error) in situations {
        let emulator = start_emulator(EmulatorConfig {
            rate: 50.0,
            burst: 20,
            services,
            ..EmulatorConfig::generated(150, 44)
        })
        .await;
        for (api, error) in [("v1", v1_error), ("v2", v2_error)] {
            let dir = tempfile::tempdir().unwrap();
            let lake = dir.path().join("lake");
            let args = ["--api", api, "--rate", "50", "--burst", "20"];
            let out = finish(tokio::process::Command::from(export_command(
                &emulator.url(),
                &lake,
                "svc",
                &args,
            )))
            .await;
            match error {
                Some(message) => {
                    out.fails(3, &[message]);
                    for table in ["findings", "findings_ocsf"] {
                        assert!(!lake.join(table).exists(), "{name} {api}: no part written");
                    }
                    let checkpoint = state_file(&lake, "svc", "checkpoint.json");
                    assert!(
                        !checkpoint.exists(),
                        "{name} {api}: the refused read wrote no checkpoint"
                    );
                }
                None => {
                    let text = out.ok();
                    assert!(
                        text.contains("complete: job svc: 150 findings"),
                        "{name} {api}: {text}"
                    );
                }
            }
        }
    }
}
