//! End-to-end exports against moto (Security Hub, S3, SSM, STS), read back with DuckDB and pyarrow.

mod common;

use common::*;

const SEEDED: u64 = 1_250;

/// A moto server seeded with `SEEDED` generated findings, and the NDJSON they came from.
fn seeded_moto(dir: &std::path::Path) -> (Moto, std::path::PathBuf) {
    common::seeded_moto(dir, SEEDED, 7)
}

#[test]
fn export_to_moto_s3_lands_every_seeded_finding_once_with_the_ssm_count() {
    let dir = tempfile::tempdir().unwrap();
    let (moto, ndjson) = seeded_moto(dir.path());
    lake_tool(&["create-bucket", &moto.url, "lake-bucket"]);
    let export = |extra: &[&str]| {
        let mut cmd = command(Some(&moto.url));
        cmd.args([
            "export",
            "--destination",
            "s3://lake-bucket/sh",
            "--job-id",
            "moto-s3",
            "--part-rows",
            "300",
            "-q",
        ]);
        cmd.args(extra);
        run(cmd)
    };
    let stdout = export(&[]).ok();
    assert!(stdout.contains("complete: job moto-s3"), "{stdout}");

    let landed = dir.path().join("landed");
    let listing = lake_tool(&[
        "download",
        &moto.url,
        "lake-bucket",
        "sh/",
        landed.to_str().unwrap(),
    ]);
    let parts: Vec<&serde_json::Value> = listing["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["key"].as_str().unwrap().ends_with(".parquet"))
        .collect();
    assert_eq!(
        parts.len(),
        5,
        "1,250 findings in parts of 300 rows: {listing}"
    );
    for part in &parts {
        assert_eq!(part["content_type"], "application/vnd.apache.parquet");
        assert!(
            part["key"]
                .as_str()
                .unwrap()
                .starts_with("sh/findings/export_date="),
            "{part}"
        );
    }
    let report = check_lake(&landed, &ndjson, false);
    assert_exactly_once(&report, SEEDED);
    assert_eq!(report["codec"], "ZSTD");
    assert_eq!(
        report["types"]["updated_at"], "TIMESTAMP WITH TIME ZONE",
        "{report}"
    );
    assert_eq!(
        report["types"]["severity_normalized"], "INTEGER",
        "{report}"
    );
    assert_eq!(
        report["types"]["product_fields"], "MAP(VARCHAR, VARCHAR)",
        "{report}"
    );

    let parameter = lake_tool(&[
        "get-parameter",
        &moto.url,
        "/sechub-export/moto-s3/exported-count",
    ]);
    assert_eq!(parameter["value"], SEEDED.to_string());

    let mut status = command(Some(&moto.url));
    status.args([
        "status",
        "--destination",
        "s3://lake-bucket/sh",
        "--job-id",
        "moto-s3",
    ]);
    let text = run(status).ok();
    assert!(
        text.contains("state:        complete") && text.contains("findings:     1250"),
        "{text}"
    );

    let again = export(&[]).ok();
    assert!(again.contains("already complete"), "{again}");
    let relisted = lake_tool(&[
        "download",
        &moto.url,
        "lake-bucket",
        "sh/",
        dir.path().join("again").to_str().unwrap(),
    ]);
    assert_eq!(
        relisted["objects"].as_array().unwrap().len(),
        listing["objects"].as_array().unwrap().len()
    );
}

#[test]
fn export_to_a_local_folder_matches_the_seed_and_needs_no_ssm() {
    let dir = tempfile::tempdir().unwrap();
    let (moto, ndjson) = seeded_moto(dir.path());
    let lake = dir.path().join("lake");
    let mut cmd = command(Some(&moto.url));
    cmd.args([
        "export",
        "--destination",
        lake.to_str().unwrap(),
        "--compression",
        "snappy",
        "-q",
    ]);
    let stdout = run(cmd).ok();
    assert!(
        stdout.contains("complete: job 123456789012-us-east-1-"),
        "default job id names account and Region: {stdout}"
    );
    let report = check_lake(&lake, &ndjson, false);
    assert_exactly_once(&report, SEEDED);
    assert_eq!(report["codec"], "SNAPPY");
    // A local destination publishes no count unless asked: no parameter at any path.
    let parameters = lake_tool(&["list-parameters", &moto.url]);
    assert_eq!(parameters["names"], serde_json::json!([]), "{parameters}");
}

#[test]
fn resume_after_max_duration_exports_each_finding_once() {
    let dir = tempfile::tempdir().unwrap();
    let (moto, ndjson) = seeded_moto(dir.path());
    let lake = dir.path().join("lake");
    let export = || {
        let slice = [
            "--part-rows",
            "100",
            "--rate",
            "4",
            "--burst",
            "1",
            "--max-duration",
            "1500ms",
            "--exit-zero-when-stopped",
        ];
        run(export_command(&moto.url, &lake, "slices", &slice)).ok()
    };
    let mut slices = 0;
    loop {
        slices += 1;
        let out = export();
        if out.contains("complete: job slices") {
            break;
        }
        assert!(
            out.contains("resumable: job slices stopped (--max-duration reached)"),
            "{out}"
        );
        assert!(slices < 20, "no progress: {out}");
    }
    assert!(
        slices >= 2,
        "the job should need several time-boxed slices, took {slices}"
    );
    let report = check_lake(&lake, &ndjson, false);
    assert_exactly_once(&report, SEEDED);
}

#[test]
fn the_same_job_id_with_different_filters_is_refused_and_nothing_changes() {
    let dir = tempfile::tempdir().unwrap();
    let (moto, _) = seeded_moto(dir.path());
    let lake = dir.path().join("lake");
    let export = |filters: &str| {
        let mut cmd = command(Some(&moto.url));
        cmd.args([
            "export",
            "--destination",
            lake.to_str().unwrap(),
            "--job-id",
            "fixed",
            "--filters",
            filters,
            "-q",
        ]);
        run(cmd)
    };
    export(r#"{"RecordState":[{"Value":"ACTIVE","Comparison":"EQUALS"}]}"#).ok();
    let before = tree(&lake);
    let refused = export(r#"{"RecordState":[{"Value":"ARCHIVED","Comparison":"EQUALS"}]}"#);
    refused.fails(5, &["different request (filters differ)"]);
    assert_eq!(
        refused.stderr().trim().lines().count(),
        1,
        "one line: {}",
        refused.stderr()
    );
    assert_eq!(tree(&lake), before);
}

#[test]
fn a_missing_bucket_is_a_destination_error_that_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (moto, _) = seeded_moto(dir.path());
    let mut cmd = command(Some(&moto.url));
    cmd.args(["export", "--destination", "s3://no-such-bucket/x", "-q"]);
    let failed = run(cmd);
    failed.fails(
        4,
        &[
            &format!("bucket no-such-bucket does not exist at {}", moto.url),
            "set AWS_ENDPOINT_URL_SECURITYHUB instead",
        ],
    );
    let parameters = lake_tool(&["list-parameters", &moto.url]);
    assert_eq!(parameters["names"], serde_json::json!([]), "{parameters}");
}

#[test]
fn verify_checks_the_ssm_parameter_the_job_was_exported_with_without_being_told_again() {
    let dir = tempfile::tempdir().unwrap();
    let (moto, _) = seeded_moto(dir.path());
    lake_tool(&["create-bucket", &moto.url, "lake-bucket"]);
    let destination = "s3://lake-bucket/named";
    let mut export = command(Some(&moto.url));
    export.args([
        "export",
        "--destination",
        destination,
        "--job-id",
        "named",
        "-q",
    ]);
    export.args(["--progress-parameter", "/team/sechub/count"]);
    run(export).ok();
    let parameter = lake_tool(&["get-parameter", &moto.url, "/team/sechub/count"]);
    assert_eq!(parameter["value"], SEEDED.to_string());
    let mut verify = command(Some(&moto.url));
    verify.args(["verify", "--destination", destination, "--job-id", "named"]);
    let out = run(verify).ok();
    assert!(out.contains("verified: job named: 1250 findings"), "{out}");
    // Verify reads the parameter itself: a wrong count there is a discrepancy naming it.
    lake_tool(&["put-parameter", &moto.url, "/team/sechub/count", "1249"]);
    let mut verify = command(Some(&moto.url));
    verify.args(["verify", "--destination", destination, "--job-id", "named"]);
    let failed = run(verify);
    assert_eq!(failed.code(), 7, "{}", failed.stderr());
    assert!(
        failed.stderr().contains("/team/sechub/count"),
        "{}",
        failed.stderr()
    );
}
