//! A scheduled feed over several accounts runs each run's streams through the Distributed Map,
//! one child workflow per stream, never all of them in one invocation: the template's state
//! machine in moto's ASL interpreter against the built function.

mod common;

use std::time::Duration;

use common::lambda_host::LambdaHost;
use common::lambda_world::*;
use common::org::*;
use common::*;
use sechub_export::emulator::{EmulatorConfig, EMULATOR_ACCOUNT};
use serde_json::{json, Value};

const MEMBER: &str = "111111111111";
const PER_HUB: u64 = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_over_two_accounts_runs_each_window_through_the_map_and_records_it() {
    let host = LambdaHost::listen(Duration::from_secs(6)).await;
    let port = host.url.rsplit(':').next().unwrap().to_string();
    let moto = Moto::start_with_env(&[("MOTO_PORT", &port)]);
    host.forward_others_to(&moto.url);
    lake_tool(&["create-bucket", &moto.url, "lake"]);
    let emulator = start_emulator(EmulatorConfig {
        rate: 20.0,
        burst: 10,
        members: vec![MEMBER.into()],
        regions: vec!["eu-west-1".into()],
        ..EmulatorConfig::generated(PER_HUB, 9)
    })
    .await;
    let world = World {
        dir: tempfile::tempdir().unwrap(),
        moto,
        emulator,
        findings: 2 * PER_HUB,
        seed: 9,
    };
    host.run_sandboxes(2, || world.sandbox()).await;
    let input = json!({
        "feed": {"family": "org"},
        "accounts": [EMULATOR_ACCOUNT, MEMBER],
        "regions": ["eu-west-1"],
        "role_name": "SecurityHubExportRole",
        "rate": 20,
        "burst": 10,
        "part_rows": 100,
        "max_streams": 2,
        "max_shards": 1,
    });
    let first = run_state_machine(&world.moto, input.clone()).await;
    eprintln!("feed map: {first}");
    assert_eq!(first["status"], "SUCCEEDED", "{first}");
    let output = &first["output"];
    assert_eq!(output["complete"], true, "{first}");
    assert_eq!(output["feed_family"], "org", "{first}");
    assert!(output["watermark"].is_string(), "{first}");
    // The two streams ran in child workflows of their own, at once: each slice one stream.
    assert!(
        host.peak_running() > 1,
        "the Map ran the run's streams at once: peak {}",
        host.peak_running()
    );
    let stream_slices: Vec<String> = host
        .json_logs()
        .iter()
        .filter(|l| l["fields"]["message"] == "slice ended")
        .filter_map(|l| l["fields"]["job_id"].as_str().map(str::to_string))
        .filter(|job| job.contains(EMULATOR_ACCOUNT) || job.contains(MEMBER))
        .collect();
    assert!(
        stream_slices.iter().any(|j| j.contains(EMULATOR_ACCOUNT))
            && stream_slices.iter().any(|j| j.contains(MEMBER)),
        "each stream's slices are its own: {stream_slices:?}"
    );
    let state = feed_state(&world, "org", "after-first");
    let runs = state["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "{state}");
    assert_eq!(runs[0]["kind"], "snapshot", "{state}");
    assert_eq!(runs[0]["rows"], world.findings, "{state}");
    assert_eq!(state["current"], Value::Null, "{state}");
    let lake = world.lake("landed");
    let expected = org_expected(
        world.dir.path(),
        &[EMULATOR_ACCOUNT, MEMBER],
        &["eu-west-1"],
        PER_HUB,
    );
    assert_exactly_once(&check_lake(&lake, &expected, true), world.findings);

    // The next execution: an incremental window from the watermark, through the Map again.
    let second = run_state_machine(&world.moto, input).await;
    assert_eq!(second["status"], "SUCCEEDED", "{second}");
    assert_eq!(second["output"]["complete"], true, "{second}");
    let state = feed_state(&world, "org", "after-second");
    let runs = state["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{state}");
    assert_eq!(runs[1]["kind"], "incremental", "{state}");
    assert_eq!(runs[1]["started_by"], second["execution_name"], "{state}");
}
