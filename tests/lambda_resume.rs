//! A job outlives its execution: the template's state machine continues a long job in a fresh
//! execution (same job id) before the history limit, and its Distributed Map survives a child
//! that fails abnormally, in moto's ASL interpreter against the built function.

mod common;

use std::time::Duration;

use common::lambda_host::{InvokeFault, LambdaHost};
use common::lambda_world::*;
use common::org::*;
use common::*;
use sechub_export::emulator::{EmulatorConfig, EMULATOR_ACCOUNT};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_job_continues_in_fresh_executions_and_lands_every_finding_once() {
    let host = LambdaHost::listen(Duration::from_secs(4)).await;
    let port = host.url.rsplit(':').next().unwrap().to_string();
    let world = World::new(1_500, 41, Moto::start_with_env(&[("MOTO_PORT", &port)])).await;
    // The interpreter's other calls (starting the next execution) reach moto through the host.
    host.forward_others_to(&world.moto.url);
    host.run_sandbox(world.sandbox());
    // Two slices per execution (the default is 1,500): a 1,500-finding job at 2 pages of 100
    // a second in 2-second slices needs several.
    let input = json!({"rate": 2, "burst": 2, "part_rows": 100, "slices_per_execution": 2});
    let done = run_state_machine(&world.moto, input).await;
    eprintln!("lambda resume: {done}");
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    assert_eq!(done["output"]["complete"], true, "{done}");
    assert_eq!(done["output"]["exported_count"], world.findings, "{done}");
    let executions = done["executions"].as_array().unwrap();
    assert!(executions.len() >= 2, "continued: {done}");
    let first = done["execution_name"].as_str().unwrap();
    let mut count_before = -1;
    for (index, run) in executions.iter().enumerate() {
        assert_eq!(run["status"], "SUCCEEDED", "{run}");
        // Plan, at most two slices, and the start of the next execution.
        assert!(run["slices_succeeded"].as_u64().unwrap() <= 4, "{run}");
        if index > 0 {
            // The same job: the first execution's name, and the count it had reached.
            assert_eq!(run["input"]["execution"], first, "{run}");
            assert_eq!(run["input"]["continued_after_count"], count_before, "{run}");
        }
        if index + 1 < executions.len() {
            let output = &run["output"];
            assert_eq!(output["complete"], false, "{run}");
            assert_eq!(output["job_id"], first, "{run}");
            assert!(output["continued_in"]
                .as_str()
                .unwrap()
                .contains(":execution:"));
            let count = output["exported_count"].as_i64().unwrap();
            assert!(
                count > count_before,
                "each execution moves the job on: {run}"
            );
            count_before = count;
        }
    }
    world.assert_landed_once();
    world.assert_verified(first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_map_tolerates_a_child_that_fails_abnormally_and_the_job_still_completes() {
    const MEMBER: &str = "111111111111";
    const PER_HUB: u64 = 200;
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
    // The plan step runs; the first child's first slice gets an answer its task cannot read,
    // which fails that child execution (no Catch takes States.Runtime on AWS).
    host.inject(&[InvokeFault::Pass, InvokeFault::Unreadable]);
    let input = json!({
        "job_id": "org-resume",
        "accounts": [EMULATOR_ACCOUNT, MEMBER],
        "regions": ["eu-west-1"],
        "role_name": "SecurityHubExportRole",
        "rate": 20,
        "burst": 10,
        "part_rows": 100,
        "max_streams": 2,
        "max_shards": 1,
    });
    let done = run_state_machine(&world.moto, input).await;
    eprintln!("lambda map resume: {done}");
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    assert_eq!(done["output"]["complete"], true, "{done}");
    assert_eq!(done["output"]["exported_count"], world.findings, "{done}");
    let executions = done["executions"].as_array().unwrap();
    assert!(
        executions.len() >= 2,
        "the failed child's stream is continued by a new execution: {done}"
    );
    // The first execution's Map ended with a failed child, and its Finish still ran: it
    // recorded the stream as unfinished and moved the job to a new execution.
    let first = &executions[0];
    assert_eq!(first["output"]["complete"], false, "{first}");
    assert_eq!(first["output"]["job_id"], "org-resume", "{first}");
    let lake = world.lake("landed");
    let last_run: Value = serde_json::from_slice(
        &std::fs::read(lake.join("_sechub_export/jobs/org-resume/last-run.json")).unwrap(),
    )
    .unwrap();
    let states: Vec<&Value> = last_run["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["state"])
        .collect();
    assert_eq!(states, vec!["complete", "complete"], "{last_run}");
    let accounts = [EMULATOR_ACCOUNT, MEMBER];
    let expected = org_expected(world.dir.path(), &accounts, &["eu-west-1"], PER_HUB);
    assert_exactly_once(&check_lake(&lake, &expected, true), world.findings);
    world.assert_verified("org-resume");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_streams_end_abnormally_every_time_fails_stalled_instead_of_looping() {
    const MEMBER: &str = "111111111111";
    let host = LambdaHost::listen(Duration::from_secs(6)).await;
    let port = host.url.rsplit(':').next().unwrap().to_string();
    let moto = Moto::start_with_env(&[("MOTO_PORT", &port)]);
    host.forward_others_to(&moto.url);
    lake_tool(&["create-bucket", &moto.url, "lake"]);
    let emulator = start_emulator(EmulatorConfig {
        members: vec![MEMBER.into()],
        regions: vec!["eu-west-1".into()],
        ..EmulatorConfig::generated(100, 9)
    })
    .await;
    let world = World {
        dir: tempfile::tempdir().unwrap(),
        moto,
        emulator,
        findings: 200,
        seed: 9,
    };
    host.run_sandboxes(2, || world.sandbox()).await;
    // Each execution: its plan step runs, both children get answers their tasks cannot read,
    // its finish step runs. The first execution moved the job from nothing to nothing (its
    // count starts unknown), so it continues; the second moved it nowhere, so it fails.
    use InvokeFault::{Pass, Unreadable};
    host.inject(&[
        Pass, Unreadable, Unreadable, Pass, Pass, Unreadable, Unreadable,
    ]);
    let input = json!({
        "job_id": "never-moves",
        "accounts": [EMULATOR_ACCOUNT, MEMBER],
        "regions": ["eu-west-1"],
        "role_name": "SecurityHubExportRole",
        "max_streams": 2,
    });
    let done = run_state_machine(&world.moto, input).await;
    eprintln!("stalled: {done}");
    let executions = done["executions"].as_array().unwrap();
    assert_eq!(
        executions.len(),
        2,
        "one continuation, then the end: {done}"
    );
    assert_eq!(executions[0]["output"]["exported_count"], 0, "{done}");
    assert_eq!(done["status"], "FAILED", "{done}");
    assert_eq!(done["error"], "SechubExport.Stalled", "{done}");
    let cause = done["cause"].as_str().unwrap();
    assert!(
        cause.contains(
            "job never-moves made no progress in a whole execution (0 findings exported)"
        ) && cause.contains("0 of 2 streams complete")
            && cause.contains("same job_id"),
        "{cause}"
    );
}
