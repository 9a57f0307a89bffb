//! A stream whose GetFindings calls are slower than the quota allows one NextToken chain to
//! use: split into shards on Id prefixes, every finding exactly once, through kills; a slow
//! service that ignores the shard filter (moto) is read as one chain instead of duplicated.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use sechub_export::emulator::{EmulatorConfig, Faults};
use serde_json::Value;

const FINDINGS: u64 = 6_000;

fn checkpoint(lake: &Path, job: &str) -> Value {
    serde_json::from_slice(&std::fs::read(state_file(lake, job, "checkpoint.json")).unwrap())
        .unwrap()
}

/// An emulator answering in a mean of 300 ms at 20 requests/s: one chain reads 3.3 pages/s.
async fn slow_emulator(seed: u64) -> sechub_export::emulator::Emulator {
    start_emulator(EmulatorConfig {
        rate: 20.0,
        burst: 20,
        faults: Faults {
            latency_ms: 300,
            ..Faults::default()
        },
        ..EmulatorConfig::generated(FINDINGS, seed)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_calls_are_sharded_and_a_killed_sharded_stream_resumes_every_finding_once() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let emulator = slow_emulator(31).await;
    let flags = ["--rate", "20", "--burst", "20", "--part-rows", "300"];
    let export =
        || tokio::process::Command::from(export_command(&emulator.url(), &lake, "slow", &flags));
    let mut child = export()
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let checkpoint_file = state_file(&lake, "slow", "checkpoint.json");
    while !checkpoint_file.exists() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
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
    assert!(shards.len() >= 4, "{} shards", shards.len());
    assert!(killed["state"] == "running", "killed mid-way: {killed}");

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
