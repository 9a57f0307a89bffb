//! A job over many accounts and Regions deployed: the template's state machine plans it, runs
//! one Distributed Map child workflow per stream (each looping that stream's Lambda slices at
//! its own quota) and finishes it, in moto's ASL interpreter against the built function.

mod common;

use std::time::Duration;

use common::lambda_host::LambdaHost;
use common::lambda_world::*;
use common::org::*;
use common::*;
use sechub_export::emulator::{EmulatorConfig, Faults, EMULATOR_ACCOUNT};
use serde_json::{json, Value};

const MEMBER_A: &str = "111111111111";
const MEMBER_B: &str = "222222222222";
const REGIONS: [&str; 2] = ["eu-west-1", "us-east-1"];
const PER_HUB: u64 = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_distributed_map_runs_each_stream_ends_partial_on_a_missing_role_and_a_rerun_finishes_it()
{
    let host = LambdaHost::listen(Duration::from_secs(6)).await;
    let port = host.url.rsplit(':').next().unwrap().to_string();
    let moto = Moto::start_with_env(&[("MOTO_PORT", &port)]);
    host.forward_others_to(&moto.url);
    lake_tool(&["create-bucket", &moto.url, "lake"]);
    let emulator = start_emulator(EmulatorConfig {
        rate: 20.0,
        burst: 10,
        faults: Faults {
            missing_roles: vec![MEMBER_B.into()],
            ..Faults::default()
        },
        members: vec![MEMBER_A.into(), MEMBER_B.into()],
        regions: REGIONS.iter().map(|r| r.to_string()).collect(),
        ..EmulatorConfig::generated(PER_HUB, 9)
    })
    .await;
    let world = World {
        dir: tempfile::tempdir().unwrap(),
        moto,
        emulator,
        findings: 3 * 2 * PER_HUB,
        seed: 9,
    };
    // Three sandboxes: the function runs up to three slices at once, each its own process.
    host.run_sandboxes(3, || world.sandbox()).await;
    let input = json!({
        "job_id": "org",
        "accounts": [EMULATOR_ACCOUNT, MEMBER_A, MEMBER_B],
        "regions": REGIONS,
        "role_name": "SecurityHubExportRole",
        "rate": 20,
        "burst": 10,
        "part_rows": 100,
        // Three child workflows at once, each stream's slices in their own sandbox.
        "max_streams": 3,
        // One chain per stream: three sandboxes on a loaded machine can make calls slow enough
        // to shard (tests/shards.rs covers that), and the request counts below would then vary.
        "max_shards": 1,
    });
    let partial = run_state_machine(&world.moto, input.clone()).await;
    eprintln!("lambda map: {partial}");
    assert!(
        host.peak_running() > 1,
        "the Map runs its children at once: peak {}",
        host.peak_running()
    );
    assert_eq!(partial["status"], "FAILED", "{partial}");
    assert_eq!(partial["error"], "SechubExport.Partial", "{partial}");
    let cause = partial["cause"].as_str().unwrap();
    for needle in [
        "4 of 6 streams complete (1200 findings), 2 failed",
        "222222222222/eu-west-1, 222222222222/us-east-1: cannot assume arn:aws:iam::222222222222:role/SecurityHubExportRole",
        "222222222222/us-east-1",
        "re-run the same command",
    ] {
        assert!(cause.contains(needle), "{needle}: {cause}");
    }
    let lake = world.lake("partial");
    let items: Value = serde_json::from_slice(
        &std::fs::read(lake.join("_sechub_export/jobs/org/stream-items.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(items.as_array().unwrap().len(), 6, "{items}");
    // Each item carries its whole stream and the digest of the job's frozen request: a child's
    // slice checks its request against it instead of loading the job's stream record.
    let item = &items[0]["stream"];
    assert_eq!(
        item["request_digest"].as_str().unwrap().len(),
        64,
        "{items}"
    );
    assert_eq!(item["own_findings_only"], true, "{items}");
    let shown = status_of_s3(&world, "org");
    assert!(shown.contains("streams:      6 (4 complete)"), "{shown}");
    assert!(
        shown.contains("last error (SechubExport.AccessDenied)"),
        "{shown}"
    );

    // The role appears: the same job again runs the two unfinished streams to the end; the
    // complete ones answer at once from their checkpoints.
    world.emulator.set_faults(Faults::default());
    let requests = world.emulator.stats().requests;
    let done = run_state_machine(&world.moto, input.clone()).await;
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    assert_eq!(done["output"]["complete"], true, "{done}");
    assert_eq!(done["output"]["exported_count"], world.findings, "{done}");
    assert_eq!(done["output"]["job_id"], "org", "{done}");
    assert_eq!(
        world.emulator.stats().requests - requests,
        8,
        "only the unfinished streams are read (3 pages and a settle check each)"
    );
    let landed = world.lake("landed");
    let accounts = [EMULATOR_ACCOUNT, MEMBER_A, MEMBER_B];
    let expected = org_expected(world.dir.path(), &accounts, &REGIONS, PER_HUB);
    assert_exactly_once(&check_lake(&landed, &expected, true), world.findings);
    assert_eq!(sources(&landed).1, 0, "each row from its own stream");
    let shown = status_of_s3(&world, "org");
    assert!(shown.contains("streams:      6 (6 complete)"), "{shown}");
    world.assert_verified("org");

    // A slice whose request differs from the job's (other filters) under the same item is
    // refused before it reads anything: the digest does not match, and the record says why.
    let mut other = input.clone();
    other["filters"] = json!({"SeverityLabel": [{"Value": "HIGH", "Comparison": "EQUALS"}]});
    other["stream"] = item.clone();
    other["destination"] = json!("s3://lake/sh");
    let refused = host.invoke(&other).await;
    assert_eq!(
        refused.error_type(),
        "SechubExport.JobConflict",
        "{refused:?}"
    );
}

/// `status --job-id job` of the lake in moto.
fn status_of_s3(world: &World, job: &str) -> String {
    let mut cmd = split_command(&world.emulator.url(), &world.moto.url);
    cmd.args(["status", "--destination", "s3://lake/sh", "--job-id", job]);
    run(cmd).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_map_job_whose_findings_moved_under_a_streams_read_fails_unsettled() {
    use sechub_export::emulator::changes::Change;
    let host = LambdaHost::listen(Duration::from_secs(6)).await;
    let port = host.url.rsplit(':').next().unwrap().to_string();
    let moto = Moto::start_with_env(&[("MOTO_PORT", &port)]);
    host.forward_others_to(&moto.url);
    lake_tool(&["create-bucket", &moto.url, "lake"]);
    let emulator = start_emulator(EmulatorConfig {
        members: vec![MEMBER_A.into()],
        regions: vec!["eu-west-1".into()],
        ..EmulatorConfig::generated(400, 9)
    })
    .await;
    // Once both streams read past their first page, 5 findings of every hub's first page get
    // a new UpdatedAt: they leave each stream's window and its offset cursor skips 5.
    emulator.change_after_pages(4, Change::Update((0..5).collect()));
    let world = World {
        dir: tempfile::tempdir().unwrap(),
        moto,
        emulator,
        findings: 800,
        seed: 9,
    };
    host.run_sandboxes(2, || world.sandbox()).await;
    let input = json!({
        "job_id": "moved-org",
        "accounts": [EMULATOR_ACCOUNT, MEMBER_A],
        "regions": ["eu-west-1"],
        "role_name": "SecurityHubExportRole",
        "rate": 2,
        "burst": 2,
        "part_rows": 100,
        "max_streams": 2,
        "max_shards": 1,
    });
    let done = run_state_machine(&world.moto, input).await;
    assert_eq!(done["status"], "FAILED", "{done}");
    assert_eq!(done["error"], "SechubExport.Unsettled", "{done}");
    assert!(
        done["cause"].as_str().unwrap().contains("not proven exact"),
        "{done}"
    );
}
