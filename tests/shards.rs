//! A stream whose GetFindings calls are slower than the quota allows one NextToken chain to
//! use: read by a meeting pair from both ends of its Ids, or (slower still) split into shards
//! on Id prefixes (each read by a meeting pair when the service sorts, one chain when it does
//! not), every finding exactly once, through kills; a slow service that ignores the sort and
//! the shard filter (moto) is read as one chain instead of duplicated.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use sechub_export::emulator::{EmulatorConfig, Faults, SortMode};
use serde_json::Value;

const FINDINGS: u64 = 6_000;

fn checkpoint(lake: &Path, job: &str) -> Value {
    serde_json::from_slice(&std::fs::read(state_file(lake, job, "checkpoint.json")).unwrap())
        .unwrap()
}

/// An emulator answering in a mean of 300 ms at 20 requests/s: one chain reads 3.3 pages/s;
/// `ignore_sort`: it answers in its own order whatever the SortCriteria (filters still apply).
async fn slow_emulator(seed: u64, ignore_sort: bool) -> sechub_export::emulator::Emulator {
    start_emulator(EmulatorConfig {
        rate: 20.0,
        burst: 20,
        faults: Faults {
            latency_ms: 300,
            sort_mode: if ignore_sort {
                SortMode::Ignore
            } else {
                SortMode::Global
            },
            ..Faults::default()
        },
        ..EmulatorConfig::generated(FINDINGS, seed)
    })
    .await
}

/// A service that sorts on Id: the slow stream's prefix shards are each read by a meeting pair.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_calls_are_read_by_paired_shards_and_a_killed_stream_resumes_every_finding_once() {
    let shards = killed_sharded_stream_resumes_every_finding_once(false).await;
    assert!(shards.len() >= 6 && shards.len() % 2 == 0, "{shards:?}");
    for (index, shard) in shards.iter().enumerate() {
        assert_eq!(
            shard["partner"],
            index ^ 1,
            "chains 2k and 2k+1 pair up: {shard}"
        );
        assert_eq!(shard["sort"], ["asc", "desc"][index % 2], "{shard}");
        assert_eq!(
            shard["id_filter"],
            shards[index ^ 1]["id_filter"],
            "{shard}"
        );
    }
}

/// A service that applies the Id filter but ignores the sort: single-chain prefix shards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_calls_ignoring_the_sort_are_sharded_and_a_killed_stream_resumes_every_finding_once() {
    let shards = killed_sharded_stream_resumes_every_finding_once(true).await;
    assert!(shards.len() >= 4, "{} shards", shards.len());
    assert!(
        shards
            .iter()
            .all(|s| s.get("partner").is_none() && s.get("sort").is_none()),
        "{shards:?}"
    );
}

/// Exports a slow stream, SIGKILLs it once sharded, resumes it, checks every finding once and
/// the shards frozen; returns the shards of the killed checkpoint.
async fn killed_sharded_stream_resumes_every_finding_once(ignore_sort: bool) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let emulator = slow_emulator(31, ignore_sort).await;
    let mut flags = vec!["--rate", "20", "--burst", "20", "--part-rows", "300"];
    if !ignore_sort {
        flags.push("--trust-id-order");
    }
    let export =
        || tokio::process::Command::from(export_command(&emulator.url(), &lake, "slow", &flags));
    let mut child = export()
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed once its shards have committed a part (polled, not slept for).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let committed = || {
        std::fs::read(state_file(&lake, "slow", "checkpoint.json"))
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
            .and_then(|cp| cp["exported_count"].as_u64())
            .unwrap_or(0)
    };
    while committed() == 0 {
        assert!(std::time::Instant::now() < deadline, "no part in 60 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().await.unwrap();
    let _ = child.wait().await;
    // The service's bucket refills (burst / rate = 1 s) before the resume: a new process cannot
    // know what a killed one spent, and this test is about one run's shards sharing a limiter.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let killed = checkpoint(&lake, "slow");
    let shards = killed["shards"]
        .as_array()
        .expect("the stream was sharded")
        .clone();
    assert!(killed["state"] == "running", "killed mid-way: {killed}");
    assert!(
        shards
            .iter()
            .all(|s| !s["id_filter"].as_array().unwrap().is_empty()),
        "every chain reads a prefix shard: {shards:?}"
    );

    let done = finish(export()).await.ok();
    assert!(
        done.contains(&format!("job total {FINDINGS} findings")),
        "{done}"
    );
    let completed = checkpoint(&lake, "slow");
    let filters = |cp: &Value| -> Vec<Value> {
        cp["shards"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id_filter"].clone())
            .collect()
    };
    assert_eq!(
        filters(&completed),
        filters(&killed),
        "the shards are frozen in the checkpoint"
    );
    assert!(completed["shards"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["done"] == true));

    let expected = dir.path().join("expected.ndjson");
    generate(FINDINGS, 31, &expected);
    assert_exactly_once(&check_lake(&lake, &expected, true), FINDINGS);
    let stats = emulator.stats();
    assert_eq!(
        stats.throttled_quota, 0,
        "all shards share the stream's one limiter: {stats:?}"
    );
    let shown = status_of(&emulator.url(), lake.to_str().unwrap(), "slow");
    assert!(shown.contains("shards on Id prefixes"), "{shown}");
    let paired = shown.contains("each read from both ends");
    assert_eq!(paired, !ignore_sort, "{shown}");
    shards
}

/// An emulator answering in a mean of 80 ms (40 to 120) at 20 requests/s: one chain reads
/// 12.5 pages/s, a pair 25 (the tests allow two chains, so the probe's choice does not hang on
/// how slow its two calls happened to be).
async fn pair_emulator(seed: u64) -> sechub_export::emulator::Emulator {
    start_emulator(EmulatorConfig {
        rate: 20.0,
        burst: 20,
        faults: Faults {
            latency_ms: 80,
            ..Faults::default()
        },
        ..EmulatorConfig::generated(FINDINGS, seed)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meeting_pair_reads_both_ends_once_and_stops_where_they_meet() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let emulator = pair_emulator(33).await;
    let flags = [
        "--rate",
        "20",
        "--burst",
        "20",
        "--part-rows",
        "1000",
        "--max-shards",
        "2",
        "--trust-id-order",
    ];
    let out = finish(export_command(&emulator.url(), &lake, "pair", &flags))
        .await
        .ok();
    assert!(out.contains("from both ends of the Ids"), "{out}");
    let cp = checkpoint(&lake, "pair");
    let sorts: Vec<&Value> = cp["shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["sort"])
        .collect();
    assert_eq!(sorts, ["asc", "desc"], "{cp}");
    let expected = dir.path().join("expected.ndjson");
    generate(FINDINGS, 33, &expected);
    assert_exactly_once(&check_lake(&lake, &expected, true), FINDINGS);
    let stats = emulator.stats();
    // 60 pages of findings, the partner's page in flight when they met, and the settle check:
    // a pair that read on past its meeting would need up to twice the pages.
    assert!(stats.requests <= 64, "{stats:?}");
    assert_eq!(stats.throttled_quota, 0, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meeting_pair_killed_again_and_again_resumes_where_its_durable_parts_end() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let emulator = pair_emulator(34).await;
    let flags = [
        "--rate",
        "20",
        "--burst",
        "20",
        "--part-rows",
        "200",
        "--max-shards",
        "2",
        "--trust-id-order",
    ];
    let export = || {
        tokio::process::Command::from(export_command(&emulator.url(), &lake, "pairkill", &flags))
    };
    let kills = kill_repeatedly(export, &[700, 500, 900, 600], &lake, "pairkill").await;
    kills.assert_progress(3);
    let killed = checkpoint(&lake, "pairkill");
    assert_eq!(killed["shards"][0]["partner"], 1, "{killed}");
    let done = finish(export()).await.ok();
    assert!(
        done.contains(&format!("job total {FINDINGS} findings")),
        "{done}"
    );
    assert_no_stray_parts(&lake, "pairkill");
    let expected = dir.path().join("expected.ndjson");
    generate(FINDINGS, 34, &expected);
    assert_exactly_once(&check_lake(&lake, &expected, true), FINDINGS);
    let shown = status_of(&emulator.url(), lake.to_str().unwrap(), "pairkill");
    assert!(
        shown.contains("both ends of the Ids") && shown.contains("2 finished"),
        "{shown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meeting_pair_crashing_at_every_stage_around_its_meeting_lands_each_finding_once() {
    require_failpoints();
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let emulator = pair_emulator(35).await;
    // One page a part: a commit per page, so the crashes fall on the pages where they meet.
    let flags = [
        "--rate",
        "20",
        "--burst",
        "20",
        "--part-rows",
        "100",
        "--max-shards",
        "2",
        "--trust-id-order",
    ];
    // The first run stops 8 commits short of the 60 pages; then every run crashes at its first
    // part upload, before its first commit or just after it: a page a run, through the meeting.
    let points = [
        "part-after-upload",
        "checkpoint-before-commit",
        "checkpoint-after-commit",
    ];
    let mut crashes = 0;
    let mut fired = [0; 3];
    let mut counts = Vec::new();
    for round in 0..40 {
        let mut run = export_command(&emulator.url(), &lake, "pairer", &flags);
        let failpoint = match round {
            0 => "checkpoint-before-commit=52*off->return".to_string(),
            _ => format!("{}=return", points[round % points.len()]),
        };
        run.env("FAILPOINTS", failpoint);
        let status = tokio::process::Command::from(run).status().await.unwrap();
        // A crash is the abort the crash point raises; any other failure is a bug.
        use std::os::unix::process::ExitStatusExt;
        let aborted = status.signal() == Some(libc::SIGABRT);
        assert!(aborted || status.success(), "round {round}: {status:?}");
        crashes += usize::from(aborted);
        if aborted && round > 0 {
            fired[round % points.len()] += 1;
        }
        let cp = checkpoint(&lake, "pairer");
        counts.push(cp["exported_count"].as_u64().unwrap());
        if cp["state"] == "complete" {
            break;
        }
    }
    assert!(crashes >= 20, "{crashes} crashes: {counts:?}");
    assert!(
        fired.iter().all(|&n| n > 0),
        "every crash point fired: {fired:?}"
    );
    assert!(
        counts.iter().any(|&c| c > 5_200 && c < FINDINGS),
        "crashed between the first run's end and the meeting: {counts:?}"
    );
    let done = finish(export_command(&emulator.url(), &lake, "pairer", &flags))
        .await
        .ok();
    assert!(done.contains(&format!("{FINDINGS} findings")), "{done}");
    let expected = dir.path().join("expected.ndjson");
    generate(FINDINGS, 35, &expected);
    assert_exactly_once(&check_lake(&lake, &expected, true), FINDINGS);
}

#[test]
fn a_slow_service_ignoring_the_shard_filter_is_read_as_one_chain_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let (moto, proxy) = moto_with_proxy("lake");
    let generated = dir.path().join("generated.ndjson");
    generate(1_500, 8, &generated);
    let seeded = dir.path().join("seeded.ndjson");
    let imported = lake_tool(&[
        "seed",
        &moto.url,
        generated.to_str().unwrap(),
        seeded.to_str().unwrap(),
    ]);
    assert_eq!(imported["failed"], 0);
    // moto answers slowly through the proxy and, unlike the service, ignores every filter.
    proxy.set(serde_json::json!({"findings_latency_ms": 400}));
    let mut cmd = command(Some(&proxy.url));
    cmd.args(["export", "--destination", "s3://lake/sh", "--job-id", "m"])
        .args(["--rate", "20", "--burst", "20", "--part-rows", "100", "-q"]);
    let out = run(cmd);
    let done = out.ok();
    assert!(
        done.contains("job total 1500 findings") && !done.contains("shards"),
        "{done}"
    );
    assert!(
        out.stderr().contains("ignored a shard's Id filter") && out.stderr().contains("one chain"),
        "{}",
        out.stderr()
    );
    let landed = s3_lake(&moto, dir.path(), "landed");
    assert_exactly_once(&check_lake(&landed, &seeded, false), 1_500);
}
