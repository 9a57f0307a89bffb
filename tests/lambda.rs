//! The AWS deployment, run for real on this machine: the built binary as a Lambda function
//! under a Runtime API stand-in, invoked in short slices against the emulator and moto; the
//! template's state machine executed by moto's ASL interpreter with its Lambda tasks reaching
//! that function; the template's notification rule fed real-shaped events; the template linted.

mod common;

use std::time::Duration;

use common::lambda_host::{InvokeFault, LambdaHost, Outcome};
use common::*;
use sechub_export::emulator::{Emulator, EmulatorConfig};
use serde_json::{json, Value};

const TEMPLATE: &str = "infra/cloudformation/sechub-export.yaml";

/// moto for S3 and SSM, the emulator for Security Hub, and the function's sandbox command.
struct World {
    dir: tempfile::TempDir,
    moto: Moto,
    emulator: Emulator,
    findings: u64,
    seed: u64,
}

impl World {
    async fn new(findings: u64, seed: u64, moto: Moto) -> World {
        lake_tool(&["create-bucket", &moto.url, "lake"]);
        let emulator = start_emulator(EmulatorConfig {
            rate: 100.0,
            burst: 50,
            ..EmulatorConfig::generated(findings, seed)
        })
        .await;
        World {
            dir: tempfile::tempdir().unwrap(),
            moto,
            emulator,
            findings,
            seed,
        }
    }

    /// The function's process: Security Hub on the emulator, S3 and SSM on moto, a short lease.
    fn sandbox(&self) -> std::process::Command {
        let mut cmd = split_command(&self.emulator.url(), &self.moto.url);
        cmd.env("SECHUB_EXPORT_LEASE_SECS", "4");
        cmd
    }

    fn lake(&self, name: &str) -> std::path::PathBuf {
        s3_lake(&self.moto, self.dir.path(), name)
    }

    fn assert_landed_once(&self) {
        assert_s3_landed_once(&self.moto, self.dir.path(), self.findings, self.seed);
    }

    fn assert_verified(&self, job: &str) {
        let emulator = self.emulator.url();
        assert_s3_verified(&emulator, &self.moto.url, job, self.findings);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slices_with_short_deadlines_export_every_finding_once_even_when_one_is_killed() {
    let world = World::new(2_000, 61, Moto::start()).await;
    let host = LambdaHost::listen(Duration::from_secs(4)).await;
    host.run_sandbox(world.sandbox());
    let event = json!({"destination": "s3://lake/sh", "job_id": "slices", "rate": 3, "burst": 2, "part_rows": 100});
    let mut done = None;
    for invocation in 0..30 {
        if invocation == 1 {
            // The second slice's sandbox dies mid-way (as at an out-of-memory kill).
            host.inject(&[InvokeFault::KillAfter(Duration::from_millis(1500))]);
        }
        if let Outcome::Ok(result) = host.invoke(&event).await {
            if result["complete"] == true {
                done = Some(result);
                break;
            }
        }
    }
    let done = done.expect("the job completes within 30 slices");
    let outcomes = host.outcomes();
    let slices: Vec<&Value> = outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Ok(v) => Some(v),
            _ => None,
        })
        .collect();
    let killed = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::FunctionError { .. }))
        .count();
    eprintln!(
        "lambda: {} slices ok, {killed} killed; results {slices:?}",
        slices.len()
    );
    assert!(slices.len() >= 3, "at least 3 slices: {outcomes:?}");
    assert_eq!(killed, 1, "{outcomes:?}");
    assert_eq!(outcomes[1].error_type(), "Runtime.ExitError");
    assert!(
        slices[0]["stopped"].as_str().unwrap().contains("time box"),
        "{}",
        slices[0]
    );
    let counts: Vec<u64> = slices
        .iter()
        .map(|s| s["exported_count"].as_u64().unwrap())
        .collect();
    assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{counts:?}");
    assert_eq!(done["exported_count"], world.findings);
    assert_eq!(done["job_id"], "slices");
    let logs = host.json_logs();
    assert!(
        logs.iter()
            .any(|l| l["fields"]["message"] == "slice ended" && l["fields"]["complete"] == true),
        "each slice logs its end as JSON fields"
    );
    world.assert_landed_once();
    world.assert_verified("slices");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_event_fails_the_slice_with_its_error_type_and_writes_nothing() {
    let world = World::new(300, 62, Moto::start()).await;
    let host = LambdaHost::listen(Duration::from_secs(20)).await;
    host.run_sandbox(world.sandbox());
    let done = host
        .invoke(
            &json!({"destination": "s3://lake/sh", "job_id": "frozen", "rate": 50, "burst": 10}),
        )
        .await;
    assert_eq!(done.ok()["complete"], true);
    let before = tree(&world.lake("before"));
    for (event, error_type, needle) in [
        (
            json!({"job_id": "x"}),
            "SechubExport.BadRequest",
            "destination",
        ),
        (
            json!({"destination": "s3://lake/sh", "filters": {"Nope": []}}),
            "SechubExport.BadRequest",
            "Nope",
        ),
        (
            json!({"destination": "s3://lake/sh", "filters": "{not json"}),
            "SechubExport.BadRequest",
            "filters",
        ),
        (
            json!({"destination": "s3://lake/sh", "job_id": "frozen", "filters": {"SeverityLabel": [{"Value": "HIGH", "Comparison": "EQUALS"}]}}),
            "SechubExport.JobConflict",
            "different request",
        ),
    ] {
        let outcome = host.invoke(&event).await;
        assert_eq!(outcome.error_type(), error_type, "{event}: {outcome:?}");
        let Outcome::FunctionError { message, .. } = &outcome else {
            unreachable!()
        };
        assert!(
            message.contains(needle) && !message.contains('\n'),
            "{event}: {message}"
        );
    }
    assert_eq!(
        before,
        tree(&world.lake("after")),
        "a refused slice wrote nothing"
    );
}

/// Runs the template's state machine in moto with `input`; `aws_tool.py sfn-run`'s answer.
fn run_state_machine(moto: &Moto, input: Value) -> Value {
    run_state_machine_with(moto, input, &[])
}

/// The same, with `aws_tool.py`'s options (`fast-retries`).
fn run_state_machine_with(moto: &Moto, input: Value, options: &[&str]) -> Value {
    let function = "arn:aws:lambda:us-east-1:123456789012:function:sechub-export";
    let template = repo_file(TEMPLATE);
    let input = input.to_string();
    let mut args = vec!["sfn-run", &moto.url, template.to_str().unwrap(), function];
    args.extend(["s3://lake/sh", &input, "240"]);
    args.extend(options);
    aws_tool(&args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_machine_loops_slices_to_completion_through_retry_and_fails_through_catch() {
    // Function timeout 4 s; the first invocation fails in Lambda itself, the second overruns
    // its timeout and its sandbox is killed mid-slice; the retry after it resumes the job.
    let host = LambdaHost::listen(Duration::from_secs(4)).await;
    // moto's ASL interpreter sends its Lambda invocations to MOTO_PORT: our function.
    let port = host.url.rsplit(':').next().unwrap().to_string();
    let world = World::new(1_500, 63, Moto::start_with_env(&[("MOTO_PORT", &port)])).await;
    host.run_sandbox(world.sandbox());
    host.inject(&[InvokeFault::ServiceException, InvokeFault::Overrun]);
    let moto = &world.moto;
    let done = run_state_machine(moto, json!({"rate": 2, "burst": 2, "part_rows": 100}));
    eprintln!("lambda: state machine {done}");
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    assert_eq!(done["output"]["complete"], true, "{done}");
    assert_eq!(done["output"]["exported_count"], world.findings, "{done}");
    assert_eq!(
        done["task_failures"],
        json!(["Lambda.ServiceException", "Sandbox.Timedout"]),
        "Lambda's error and a timed-out slice each retried: {done}"
    );
    assert!(
        done["slices_succeeded"].as_u64().unwrap() >= 2,
        "looped: {done}"
    );
    world.assert_landed_once();
    // The default job id is the execution's name: a redriven execution resumes its own job.
    assert_eq!(done["output"]["job_id"], done["execution_name"], "{done}");
    world.assert_verified(done["execution_name"].as_str().unwrap());

    let failed = run_state_machine(moto, json!({"filters": {"Nope": []}}));
    assert_eq!(failed["status"], "FAILED", "{failed}");
    assert_eq!(failed["error"], "SechubExport.BadRequest", "{failed}");
    assert!(
        failed["cause"].as_str().unwrap().contains("Nope"),
        "{failed}"
    );
    assert_eq!(
        failed["task_failures"],
        json!(["SechubExport.BadRequest"]),
        "not retried: {failed}"
    );

    // Lambda failing on every attempt: the Retry's 6 attempts run out, then Catch -> Fail.
    // (The template's waits, 2 s doubling, would take 2 minutes; fast-retries makes them 1 s.)
    host.inject(&[InvokeFault::ServiceException; 7]);
    let input = json!({"job_id": "never", "rate": 2, "burst": 2});
    let exhausted = run_state_machine_with(moto, input, &["fast-retries"]);
    assert_eq!(exhausted["status"], "FAILED", "{exhausted}");
    assert_eq!(exhausted["error"], "Lambda.ServiceException", "{exhausted}");
    assert_eq!(
        exhausted["task_failures"],
        json!(vec!["Lambda.ServiceException"; 7]),
        "1 try + 6 retries: {exhausted}"
    );
}

#[test]
fn the_notification_rule_matches_this_state_machines_ends_and_nothing_else() {
    let moto = Moto::start();
    let machine = "arn:aws:states:us-east-1:123456789012:stateMachine:sechub-export-Export";
    let template = repo_file(TEMPLATE);
    let answer = aws_tool(&["events", &moto.url, template.to_str().unwrap(), machine]);
    let delivered: Vec<String> = answer["delivered"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_string())
        .collect();
    assert_eq!(delivered.len(), 4, "{answer}");
    for (name, status) in [
        ("ok-1", "SUCCEEDED"),
        ("bad-1", "FAILED"),
        ("slow-1", "TIMED_OUT"),
        ("stop-1", "ABORTED"),
    ] {
        assert!(
            delivered
                .iter()
                .any(|m| m.contains(&format!("execution {name} ended {status}"))),
            "{name} {status}: {delivered:?}"
        );
    }
    assert!(
        delivered
            .iter()
            .any(|m| m.contains("Error: SechubExport.BadRequest. Cause: invalid filters")),
        "a failure's notification carries its error and cause: {delivered:?}"
    );
}

#[test]
fn the_template_passes_cfn_lint_and_checkov() {
    let venv = std::env::var_os("SECHUB_IAC_VENV")
        .expect("SECHUB_IAC_VENV is not set: run the suite with scripts/test.sh, which installs cfn-lint and checkov");
    let bin = std::path::Path::new(&venv).join("bin");
    let template = repo_file(TEMPLATE);
    let lint = std::process::Command::new(bin.join("cfn-lint"))
        .arg(&template)
        .output()
        .unwrap();
    assert!(
        lint.status.success(),
        "cfn-lint: {}",
        String::from_utf8_lossy(&lint.stdout)
    );
    let checkov = std::process::Command::new(bin.join("checkov"))
        .args([
            "--framework",
            "cloudformation",
            "--compact",
            "--quiet",
            "--skip-download",
            "-f",
        ])
        .arg(&template)
        .env("BC_SKIP_MAPPING", "TRUE")
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&checkov.stdout);
    assert!(checkov.status.success(), "checkov: {report}");
    assert!(report.contains("Failed checks: 0"), "{report}");
}

#[test]
fn the_template_deploys_as_a_stack_and_its_rule_names_the_deployed_state_machine() {
    let moto = Moto::start();
    let template = repo_file(TEMPLATE);
    let seen = aws_tool(&["deploy", &moto.url, template.to_str().unwrap()]);
    assert_eq!(seen["status"], "CREATE_COMPLETE", "{seen}");
    let outputs = &seen["outputs"];
    let machine = outputs["StateMachineArn"]
        .as_str()
        .expect("StateMachineArn output");
    let bucket = outputs["LakeBucketName"]
        .as_str()
        .expect("LakeBucketName output");
    assert_eq!(outputs["Destination"], format!("s3://{bucket}/securityhub"));
    assert_eq!(outputs["FindingsTable"], "securityhub.findings");
    // Conditions resolved: the schedule's role exists because a schedule was given.
    assert!(
        seen["made"]
            .as_array()
            .unwrap()
            .contains(&json!("SchedulerRole")),
        "{seen}"
    );
    // The rule matches on the deployed state machine's own ARN, as the events carry it.
    assert_eq!(
        seen["rule_pattern"]["detail"]["stateMachineArn"],
        json!([machine]),
        "{seen}"
    );
    let by_default = &seen["encryption"]["Rules"][0]["ApplyServerSideEncryptionByDefault"];
    assert_eq!(by_default["SSEAlgorithm"], "aws:kms", "{seen}");
    let key = seen["key"].as_str().unwrap();
    assert!(
        by_default["KMSMasterKeyID"]
            .as_str()
            .unwrap()
            .ends_with(key),
        "the stack's own key: {seen}"
    );
    let function = &seen["function"];
    assert_eq!(function["Runtime"], "provided.al2023");
    assert_eq!(function["Handler"], "bootstrap");
    assert_eq!(
        (
            function["MemorySize"].as_u64(),
            function["Timeout"].as_u64()
        ),
        (Some(512), Some(900))
    );
    for group in [
        "/aws/lambda/sechub-export-export",
        "/aws/vendedlogs/states/sechub-export-export",
    ] {
        assert_eq!(seen["log_retention"][group], 90, "{seen}");
    }
    let parameter: Value = serde_json::from_str(seen["parameter"].as_str().unwrap()).unwrap();
    assert_eq!(parameter["state_machine"], machine);
    // MemberRoleName given: the function may assume that one role name in other accounts.
    let assume = &seen["role_policies"]["assume-member-role"]["Statement"][0];
    assert_eq!(assume["Action"], "sts:AssumeRole", "{seen}");
    assert_eq!(
        assume["Resource"], "arn:aws:iam::*:role/SecurityHubExportRole",
        "{seen}"
    );
    assert_eq!(
        seen["bucket_kept_after_delete"], true,
        "the lake outlives the stack"
    );
}

/// A timestamp in a result or a state object.
fn time(value: &Value) -> chrono::DateTime<chrono::Utc> {
    value
        .as_str()
        .expect("a timestamp")
        .parse()
        .expect("RFC 3339")
}

/// The feed family `family`'s state object in moto's `s3://lake/sh` (downloaded as `name`).
fn feed_state(world: &World, family: &str, name: &str) -> Value {
    let lake = world.lake(name);
    let path = lake.join(format!("_sechub_export/feeds/{family}/state.json"));
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

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
    let first = run_state_machine(moto, input.clone());
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

    let second = run_state_machine(moto, input);
    assert_eq!(second["status"], "SUCCEEDED", "{second}");
    assert_eq!(second["output"]["busy"], Value::Null, "{second}");
    let state = feed_state(&world, "daily", "second");
    let runs = state["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "one window per execution: {state}");
    assert_eq!(runs[1]["kind"], "incremental");
    assert_eq!(runs[1]["started_by"], second["execution_name"]);
    assert_eq!(
        time(&runs[1]["window_start"]),
        time(&first["output"]["watermark"]) - chrono::Duration::hours(1),
        "from the first execution's watermark minus the default overlap: {state}"
    );
    assert_eq!(second["output"]["job_id"], runs[1]["job_id"], "{second}");
    assert!(
        time(&state["watermark"]) > time(&first["output"]["watermark"]),
        "{state}"
    );
    world.assert_landed_once();
}
