//! The reliability suite: crashes at every stage, throttling storms, S3 and SSM failures, odd
//! findings. Each test prints a `reliability:` line that scripts/reliability.sh collects.

mod common;

use std::process::Stdio;
use std::sync::Arc;

use common::*;
use rand::distr::{Alphanumeric, SampleString};
use rand::SeedableRng;
use sechub_export::emulator::{query::Dataset, EmulatorConfig, Faults};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashes_at_every_stage_lose_and_duplicate_nothing() {
    require_failpoints();
    const FINDINGS: u64 = 30_000;
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let emulator = start_emulator(EmulatorConfig {
        rate: 40.0,
        burst: 10,
        ..EmulatorConfig::generated(FINDINGS, 31)
    })
    .await;
    let points = [
        "part-before-upload",
        "part-after-upload",
        "checkpoint-before-commit",
        "checkpoint-after-commit",
        "local-write-before-rename",
    ];
    let mut rng = rand::rngs::SmallRng::seed_from_u64(31);
    let (mut aborted, mut killed) = (0, 0);
    let mut fired = std::collections::BTreeSet::new();
    let moto = Moto::start();
    let parameter = "/sechub-export/crash/exported-count";
    let export = || {
        let extra = [
            "--rate",
            "40",
            "--burst",
            "10",
            "--part-rows",
            "200",
            "--progress-parameter",
            parameter,
        ];
        let mut cmd = export_command(&emulator.url(), &lake, "crash", &extra);
        cmd.env("AWS_ENDPOINT_URL_SSM", &moto.url);
        cmd
    };
    for round in 0..28 {
        match crash_round(export(), round, &mut rng, &points).await {
            Crash::Aborted(point) => {
                aborted += 1;
                fired.insert(point);
            }
            Crash::Killed => killed += 1,
            Crash::Survived => {}
        }
    }
    let mut last = export();
    last.stdout(Stdio::piped()).stderr(Stdio::piped());
    let out = run(last).ok();
    assert!(out.contains("complete"), "{out}");
    assert!(
        aborted + killed >= 20,
        "crashes: {aborted} aborts, {killed} kills"
    );
    assert_every_point_fired(&points, &fired);
    let expect = dir.path().join("expected.ndjson");
    generate(FINDINGS, 31, &expect);
    let report = check_lake(&lake, &expect, false);
    assert_exactly_once(&report, FINDINGS);
    let count = lake_tool(&["get-parameter", &moto.url, parameter]);
    assert_eq!(
        count["value"],
        FINDINGS.to_string(),
        "the SSM count equals the rows"
    );
    let mut verify = command(None);
    verify.env("AWS_ENDPOINT_URL_SSM", &moto.url);
    verify.args([
        "verify",
        "--destination",
        lake.to_str().unwrap(),
        "--job-id",
        "crash",
        "--deep",
        "--progress-parameter",
        parameter,
    ]);
    let verified = run(verify).ok();
    assert!(
        verified.contains("verified: job crash: 30000 findings"),
        "{verified}"
    );
    println!("reliability: crash anywhere: {aborted} crash-point aborts + {killed} SIGKILLs survived; {FINDINGS} findings, lost 0, duplicated 0, verify --deep passed, SSM count {FINDINGS}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttling_storm_exports_everything_once_without_exceeding_the_quota() {
    const FINDINGS: u64 = 5_000;
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let faults = Faults {
        throttle_probability: 0.3,
        error_probability: 0.05,
        latency_ms: 40,
        ..Faults::default()
    };
    let emulator = start_emulator(EmulatorConfig {
        rate: 20.0,
        burst: 10,
        faults,
        ..EmulatorConfig::generated(FINDINGS, 32)
    })
    .await;
    // One chain: with the emulator's mean 40 ms at 20/s a stream would be sharded, and then
    // several requests leave the limiter together; an emulator sharing this loaded process
    // can see them arrive bunched. Sharded streams' pacing is measured in tests/shards.rs.
    let extra = ["--rate", "20", "--burst", "10", "--max-shards", "1"];
    finish(export_command(&emulator.url(), &lake, "storm", &extra))
        .await
        .ok();
    let stats = emulator.stats();
    assert!(stats.peak_demand <= 10.05, "{stats:?}");
    let expect = dir.path().join("expected.ndjson");
    generate(FINDINGS, 32, &expect);
    assert_exactly_once(&check_lake(&lake, &expect, false), FINDINGS);
    println!(
        "reliability: throttling storm: {} injected 429s + {} injected 500s in {} requests; peak demand {:.2} of burst 10; lost 0, duplicated 0",
        stats.throttled_injected, stats.internal_errors, stats.requests, stats.peak_demand
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_and_ssm_failures_never_lose_data_and_the_count_converges() {
    const FINDINGS: u64 = 3_000;
    let dir = tempfile::tempdir().unwrap();
    let (moto, proxy) = moto_with_proxy("lake");
    let emulator = start_emulator(EmulatorConfig {
        rate: 100.0,
        burst: 50,
        ..EmulatorConfig::generated(FINDINGS, 33)
    })
    .await;
    let export = |extra: &[&str]| {
        let mut cmd = split_command(&emulator.url(), &proxy.url);
        cmd.args([
            "export",
            "--destination",
            "s3://lake/sh",
            "--job-id",
            "s3f",
            "--rate",
            "100",
            "--burst",
            "50",
            "--part-rows",
            "300",
            "-q",
        ]);
        cmd.args(extra);
        cmd
    };
    // 1. Transient S3 faults (500, 503 SlowDown, resets on 30% of writes) and a throttled SSM.
    proxy.set(json!({"s3_probability": 0.3, "s3_error": "mix", "ssm_probability": 0.5, "ssm_error": "throttle", "seed": 3}));
    let first = finish(export(&[
        "--max-duration",
        "1s",
        "--exit-zero-when-stopped",
    ]))
    .await
    .ok();
    assert!(
        first.contains("resumable") || first.contains("complete"),
        "{first}"
    );
    // 2. A permanent failure: writes denied. The job stops, the checkpoint does not move.
    let before = std::fs::read(state_file(
        &s3_lake(&moto, dir.path(), "before"),
        "s3f",
        "checkpoint.json",
    ))
    .unwrap();
    // Only part uploads are denied: the lease and the run's claim land, the pipeline starts.
    proxy.set(json!({"s3_probability": 1.0, "s3_error": "403", "s3_only": ["put"]}));
    let denied = finish(export(&[])).await;
    denied.fails(3, &["access denied"]);
    let after = std::fs::read(state_file(
        &s3_lake(&moto, dir.path(), "after"),
        "s3f",
        "checkpoint.json",
    ))
    .unwrap();
    assert_same_progress(&before, &after);
    let (before, after): (Value, Value) = (
        serde_json::from_slice(&before).unwrap(),
        serde_json::from_slice(&after).unwrap(),
    );
    assert_eq!(
        after["owner_generation"].as_u64(),
        before["owner_generation"].as_u64().map(|g| g + 1),
        "the denied run had claimed the job: its pipeline started"
    );
    // 3. SSM down for the rest of the run: the export still completes.
    proxy.set(json!({"s3_probability": 0.2, "s3_error": "mix", "ssm_probability": 1.0, "ssm_error": "500", "seed": 4}));
    let done = finish(export(&[])).await.ok();
    assert!(done.contains("complete: job s3f"), "{done}");
    // 4. Causes removed: the same command is a no-op that sets the SSM count right.
    let totals = proxy.set(json!({}));
    assert!(finish(export(&[])).await.ok().contains("already complete"));
    let parameter = lake_tool(&[
        "get-parameter",
        &moto.url,
        "/sechub-export/s3f/exported-count",
    ]);
    assert_eq!(parameter["value"], FINDINGS.to_string());
    let landed = s3_lake(&moto, dir.path(), "final");
    let expect = dir.path().join("expected.ndjson");
    generate(FINDINGS, 33, &expect);
    assert_exactly_once(&check_lake(&landed, &expect, false), FINDINGS);
    println!(
        "reliability: S3/SSM failures: {} S3 write faults (500, 503 SlowDown, resets, 403 denials) and {} SSM faults injected; the permanent denial stopped the job (exit 3) with the checkpoint unchanged; lost 0, duplicated 0; SSM count converged to {FINDINGS}",
        totals["s3_faults"], totals["ssm_faults"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_uploads_retry_faults_and_a_denied_upload_leaves_nothing_behind() {
    const FINDINGS: usize = 600;
    let dir = tempfile::tempdir().unwrap();
    let (moto, proxy) = moto_with_proxy("lake");
    // 96 KB of random text per finding barely compresses, so each part of 300 findings is about
    // 21 MB of Parquet: above the 16 MiB multipart threshold, three uploaded pieces each.
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let texts: Vec<String> = (0..FINDINGS)
        .map(|i| {
            let noise = Alphanumeric.sample_string(&mut rng, 96_000);
            json!({"SchemaVersion": "2018-10-08", "Id": format!("mp-{i}"), "ProductArn": "arn:aws:securityhub:us-east-1::product/aws/inspector", "AwsAccountId": "111111111111", "UpdatedAt": "2026-11-01T10:00:00.000Z", "Evidence": noise}).to_string()
        })
        .collect();
    let expect = dir.path().join("mp.ndjson");
    std::fs::write(&expect, texts.join("\n")).unwrap();
    let emulator = start_emulator(EmulatorConfig {
        dataset: Dataset::Loaded(Arc::new(texts)),
        rate: 100.0,
        burst: 50,
        ..EmulatorConfig::generated(0, 1)
    })
    .await;
    let export = || {
        let mut cmd = split_command(&emulator.url(), &proxy.url);
        cmd.args(["export", "--destination", "s3://lake/sh", "--job-id", "mp"])
            .args(["--rate", "100", "--burst", "50", "--part-rows", "300", "-q"])
            // 10 MB pages take longer than 1/100 s: one chain keeps the parts at 300 rows.
            .args(["--max-shards", "1"]);
        cmd
    };
    // 1. Every piece upload denied: the job stops, aborts the upload, and nothing lands.
    proxy.set(json!({"s3_probability": 1.0, "s3_error": "403", "s3_only": ["upload_part"]}));
    let denied = finish(export()).await;
    denied.fails(3, &["access denied"]);
    let stats = proxy.set(json!({}));
    assert_eq!(stats["s3_ops"]["create_multipart"], 1, "{stats}");
    assert_eq!(
        stats["s3_ops"]["abort"], 1,
        "the failed upload is aborted: {stats}"
    );
    assert_eq!(
        lake_tool(&["uploads", &moto.url, "lake"])["uploads"],
        json!([])
    );
    let stopped = s3_lake(&moto, dir.path(), "denied");
    assert!(!stopped.join("findings").exists(), "no part landed");
    let checkpoint: Value = serde_json::from_slice(
        &std::fs::read(state_file(&stopped, "mp", "checkpoint.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(checkpoint["exported_count"], 0, "{checkpoint}");
    // 1b. The completion denied: the pending upload is aborted too, nothing lands.
    proxy.set(json!({"s3_probability": 1.0, "s3_error": "403", "s3_only": ["complete"]}));
    finish(export()).await.fails(3, &["access denied"]);
    let stats = proxy.set(json!({}));
    assert_eq!(stats["s3_ops"]["complete"], 1, "{stats}");
    assert_eq!(
        stats["s3_ops"]["abort"], 2,
        "(counts add up) the completed-but-denied upload is aborted too: {stats}"
    );
    assert_eq!(
        lake_tool(&["uploads", &moto.url, "lake"])["uploads"],
        json!([])
    );
    // 2. 30% of multipart calls (start, pieces, complete) fail with 500, 503 or a reset: retried.
    //    And every completion's first attempt lands with its answer lost.
    let faults = json!({"s3_probability": 0.3, "s3_error": "mix", "seed": 8,
        "s3_only": ["create_multipart", "upload_part", "complete"],
        "lost_first": ["complete"]});
    proxy.set(faults);
    let done = finish(export()).await.ok();
    assert!(
        done.contains("complete: job mp: 600 findings in 2 parts"),
        "{done}"
    );
    let stats = proxy.set(json!({}));
    let faulted: u64 = stats["s3_faulted_ops"]
        .as_object()
        .map_or(0, |ops| ops.values().filter_map(Value::as_u64).sum());
    assert!(faulted >= 1, "faults hit the multipart calls: {stats}");
    assert!(
        stats["lost_ops"]["complete"].as_u64().unwrap_or(0) >= 1,
        "a completion's answer was lost: {stats}"
    );
    assert!(
        stats["s3_ops"]["upload_part"].as_u64().unwrap() >= 7,
        "{stats}"
    );
    assert_eq!(
        lake_tool(&["uploads", &moto.url, "lake"])["uploads"],
        json!([])
    );
    let objects = lake_tool(&[
        "download",
        &moto.url,
        "lake",
        "sh/",
        dir.path().join("final").to_str().unwrap(),
    ]);
    let parts: Vec<&Value> = objects["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["key"].as_str().unwrap().ends_with(".parquet"))
        .collect();
    assert_eq!(parts.len(), 2, "{objects}");
    for part in &parts {
        let size = part["size"].as_u64().unwrap();
        assert!(size > 16 << 20, "{part}");
        let pieces = size.div_ceil(8 << 20);
        assert!(
            part["etag"]
                .as_str()
                .unwrap()
                .ends_with(&format!("-{pieces}")),
            "moto saw {pieces} pieces of 8 MiB: {part}"
        );
    }
    let report = check_lake(&dir.path().join("final"), &expect, true);
    assert_exactly_once(&report, FINDINGS as u64);
    assert_eq!(report["byte_mismatches"], 0, "{report}");
    let mut verify = split_command(&emulator.url(), &moto.url);
    verify.args([
        "verify",
        "--destination",
        "s3://lake/sh",
        "--job-id",
        "mp",
        "--deep",
    ]);
    finish(verify).await.ok();
    println!("reliability: multipart: 2 parts of {}+ MB in 3 pieces each; a denied piece upload stopped the job (exit 3), aborted the upload, landed nothing; then {faulted} faults on {} multipart calls retried; lost 0, duplicated 0, verify --deep passed",
        parts.iter().map(|p| p["size"].as_u64().unwrap() >> 20).min().unwrap(),
        stats["s3_ops"]["create_multipart"].as_u64().unwrap() + stats["s3_ops"]["upload_part"].as_u64().unwrap() + stats["s3_ops"]["complete"].as_u64().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_findings_are_exported_and_round_trip_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let mut nested = json!("bottom");
    for depth in 0..40 {
        nested = json!({ format!("level{depth}"): [nested] });
    }
    let big_details: serde_json::Map<String, Value> = (0..1_950)
        .map(|i| (format!("aws/evidence/{i}"), Value::from("x".repeat(96))))
        .collect();
    // Every finding has an UpdatedAt the service could hold: it requires one, and every export
    // closes its window on it (odd forms, and a CreatedAt that is not a date, are below).
    let base = |id: &str| json!({"SchemaVersion": "2018-10-08", "Id": id, "ProductArn": "arn:aws:securityhub:us-east-1::product/aws/guardduty", "AwsAccountId": "111111111111", "UpdatedAt": "2026-11-01T10:00:00Z"});
    let mut findings = vec![
        json!({"Id": "minimal", "ProductArn": "arn:aws:securityhub:eu-west-1::product/x/y", "UpdatedAt": "2026-11-01T10:00:00Z"}),
        {
            let mut f = base("near-240kb");
            f["ProductFields"] = Value::Object(big_details);
            f
        },
        {
            let mut f = base("deep");
            f["Resources"] =
                json!([{"Type": "Other", "Id": "r", "Details": {"Other": {"k": "v"}}}]);
            f["FutureField"] = nested;
            f
        },
        {
            let mut f = base("unicode");
            f["Title"] = "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 😀 — naïve 漢字 \u{7f} \"quoted\" \\ back".into();
            f
        },
    ];
    for (n, stamp) in [
        "2026-11-01T10:00:00Z",
        "2026-11-01T10:00:00.1Z",
        "2026-11-01T10:00:00.123456789Z",
        "2026-11-01T12:00:00.123+02:00",
        "2026-11-01T05:00:00-05:00",
        "not a date",
    ]
    .iter()
    .enumerate()
    {
        let mut f = base(&format!("stamp-{n}"));
        if *stamp != "not a date" {
            f["UpdatedAt"] = (*stamp).into();
        }
        f["CreatedAt"] = (*stamp).into();
        findings.push(f);
    }
    let mut texts: Vec<String> = findings.iter().map(Value::to_string).collect();
    // Escaped forms as a service may send them: \u escapes and a surrogate pair.
    texts.push(r#"{"Id":"escaped","Title":"caf\u00e9 \ud83d\ude00 tab\t","ProductArn":"arn:aws:securityhub:us-east-1::product/a/b","UpdatedAt":"2026-11-01T10:00:00.000Z","CreatedAt":"2026-11-01T10:00:00.000Z"}"#.to_string());
    assert!(
        texts[1].len() > 220_000 && texts[1].len() < 245_760,
        "{}",
        texts[1].len()
    );
    let expect = dir.path().join("odd.ndjson");
    std::fs::write(&expect, texts.join("\n")).unwrap();
    let config = EmulatorConfig {
        dataset: Dataset::Loaded(Arc::new(texts.clone())),
        rate: 50.0,
        burst: 10,
        ..EmulatorConfig::generated(0, 1)
    };
    let emulator = start_emulator(config).await;
    finish(export_command(&emulator.url(), &lake, "odd", &[]))
        .await
        .ok();
    let report = check_lake(&lake, &expect, true);
    assert_eq!(report["rows"], texts.len());
    assert_eq!(report["missing_count"], 0, "{report}");
    assert_eq!(report["byte_mismatches"], 0, "{report}");
    assert_eq!(report["json_mismatches"], 0, "{report}");
    assert_eq!(
        report["timestamp_mismatches"], 0,
        "unparseable stamps are null, the rest exact: {report}"
    );
    println!("reliability: odd findings: {} exported (a 230 KB one, a 40-deep unknown field, unicode, 6 timestamp forms, escapes), byte mismatches 0", texts.len());
}
