//! The feed deployed: feed slices invoked directly under the Runtime API stand-in, and the
//! template's state machine run by moto's ASL interpreter with the schedule's feed input.

mod common;

use std::time::Duration;

use common::lambda_host::LambdaHost;
use common::lambda_world::*;
use common::*;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_slices_finish_one_window_per_execution_and_leave_a_family_another_run_holds() {
    let world = World::new(1_200, 65, Moto::start()).await;
    let host = LambdaHost::listen(Duration::from_secs(4)).await;
    host.run_sandbox(world.sandbox());
    let pace = ["--rate", "3", "--burst", "2", "--part-rows", "100"];
    // A command-line run of the family holds it: its snapshot takes about 4 s at 3 requests/s.
    let mut cli = split_command(&world.emulator.url(), &world.moto.url);
    cli.args([
        "feed",
        "--destination",
        "s3://lake/sh",
        "--family",
        "f",
        "-q",
    ])
    .args(pace);
    let cli = tokio::process::Command::from(cli)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !world
        .lake("held")
        .join("_sechub_export/feeds/f/state.json")
        .exists()
    {
        assert!(std::time::Instant::now() < deadline, "the CLI run began");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let event = json!({"destination": "s3://lake/sh", "feed": {"family": "f"}, "execution": "exec-1", "rate": 3, "burst": 2, "part_rows": 100});
    let busy = host.invoke(&event).await.ok().clone();
    assert_eq!(busy["complete"], true, "{busy}");
    assert_eq!(busy["slice_rows"], 0, "{busy}");
    assert!(
        busy["busy"]
            .as_str()
            .unwrap()
            .contains("another run is exporting"),
        "{busy}"
    );
    let cli = cli.wait_with_output().await.unwrap();
    let printed = String::from_utf8_lossy(&cli.stdout);
    assert!(cli.status.success(), "{printed}");
    assert!(printed.contains("job total 1200 findings"), "{printed}");

    // The execution's own window: an incremental run in slices until complete.
    let mut slices = Vec::new();
    for _ in 0..10 {
        let result = host.invoke(&event).await.ok().clone();
        slices.push(result.clone());
        if result["complete"] == true {
            break;
        }
    }
    let done = slices.last().unwrap().clone();
    assert_eq!(done["complete"], true, "{slices:?}");
    assert_eq!(done["feed_family"], "f");
    assert_eq!(done["busy"], Value::Null, "{done}");
    let job = done["job_id"].as_str().unwrap().to_string();
    assert!(job.starts_with("feed-f-"), "{done}");
    let state = feed_state(&world, "f", "after-own");
    let runs = state["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{state}");
    assert_eq!(runs[1]["job_id"], job.as_str());
    assert_eq!(runs[1]["kind"], "incremental");
    assert_eq!(runs[1]["started_by"], "exec-1");
    assert_eq!(runs[0].get("started_by"), None, "the CLI's run: {state}");
    assert_eq!(
        time(&done["watermark"]),
        time(&state["watermark"]),
        "{done}"
    );

    // The last slice retried (its answer lost): it starts no second window.
    let again = host.invoke(&event).await.ok().clone();
    assert_eq!(again["complete"], true, "{again}");
    assert_eq!(again["slice_rows"], 0, "{again}");
    assert_eq!(
        feed_state(&world, "f", "after-retry")["runs"],
        state["runs"]
    );
    // A bad feed option is refused before any call.
    let bad = json!({"destination": "s3://lake/sh", "feed": {"overlap": "soon"}});
    let refused = host.invoke(&bad).await;
    assert_eq!(
        refused.error_type(),
        "SechubExport.BadRequest",
        "{refused:?}"
    );
    world.assert_landed_once();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_feed_execution_loops_its_window_to_the_watermark_and_the_next_reads_from_it() {
    let host = LambdaHost::listen(Duration::from_secs(4)).await;
    let port = host.url.rsplit(':').next().unwrap().to_string();
    let world = World::new(1_200, 66, Moto::start_with_env(&[("MOTO_PORT", &port)])).await;
    host.run_sandbox(world.sandbox());
    let moto = &world.moto;
    // What the schedule sends by default (the template's ScheduleInput), with a family name and
    // a slow pace so the window takes several slices.
    let template = repo_file(TEMPLATE);
    let default = aws_tool(&[
        "parameter-default",
        template.to_str().unwrap(),
        "ScheduleInput",
    ]);
    let mut input: Value = serde_json::from_str(default["default"].as_str().unwrap()).unwrap();
    assert_eq!(input, json!({"feed": {}}), "the schedule runs a feed");
    input["feed"]["family"] = json!("daily");
    for (field, value) in [("rate", 2), ("burst", 2), ("part_rows", 100)] {
        input[field] = json!(value);
    }
    let first = run_state_machine(moto, input.clone()).await;
    eprintln!("lambda: feed execution {first}");
    assert_eq!(first["status"], "SUCCEEDED", "{first}");
    let output = &first["output"];
    assert_eq!(output["complete"], true, "{first}");
    assert_eq!(output["feed_family"], "daily", "{first}");
    assert_eq!(output["exported_count"], world.findings, "{first}");
    assert!(
        first["slices_succeeded"].as_u64().unwrap() >= 2,
        "looped: {first}"
    );
    let state = feed_state(&world, "daily", "first");
    assert_eq!(state["current"], Value::Null, "{state}");
    assert_eq!(state["runs"][0]["kind"], "snapshot");
    assert_eq!(state["runs"][0]["started_by"], first["execution_name"]);
    assert_eq!(
        time(&output["watermark"]),
        time(&state["watermark"]),
        "{first}"
    );

    let second = run_state_machine(moto, input).await;
    assert_eq!(second["status"], "SUCCEEDED", "{second}");
    assert_eq!(second["output"]["busy"], Value::Null, "{second}");
    let state = feed_state(&world, "daily", "second");
    let runs = state["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "one window per execution: {state}");
    assert_eq!(runs[1]["kind"], "incremental");
    assert_eq!(runs[1]["started_by"], second["execution_name"]);
    assert_eq!(
        time(&runs[1]["window_start"]),
        time(&first["output"]["watermark"]) - chrono::Duration::days(1),
        "from the first execution's watermark minus the default overlap: {state}"
    );
    assert_eq!(second["output"]["job_id"], runs[1]["job_id"], "{second}");
    assert!(
        time(&state["watermark"]) > time(&first["output"]["watermark"]),
        "{state}"
    );
    world.assert_landed_once();
}
