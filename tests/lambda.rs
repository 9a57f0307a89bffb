//! The AWS deployment, run for real on this machine: the built binary as a Lambda function
//! under a Runtime API stand-in, invoked in short slices against the emulator and moto; the
//! template's state machine executed by moto's ASL interpreter with its Lambda tasks reaching
//! that function; the template's notification rule fed real-shaped events; the template linted.

mod common;

use std::time::Duration;

use common::lambda_host::{InvokeFault, LambdaHost, Outcome};
use common::lambda_world::*;
use common::*;
use serde_json::{json, Value};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_machine_loops_slices_to_completion_through_retry_and_fails_through_catch() {
    // Function timeout 4 s; the first invocation (the plan step) fails in Lambda itself, a
    // slice overruns its timeout and its sandbox is killed mid-slice; the retry resumes the job.
    let host = LambdaHost::listen(Duration::from_secs(4)).await;
    // moto's ASL interpreter sends its Lambda invocations to MOTO_PORT: our function.
    let port = host.url.rsplit(':').next().unwrap().to_string();
    let world = World::new(1_500, 63, Moto::start_with_env(&[("MOTO_PORT", &port)])).await;
    host.run_sandbox(world.sandbox());
    // The plan step (a one-stream job: no fan-out) fails in Lambda and is retried; the slice
    // after it overruns.
    host.inject(&[
        InvokeFault::ServiceException,
        InvokeFault::Pass,
        InvokeFault::Overrun,
    ]);
    let moto = &world.moto;
    let done = run_state_machine(moto, json!({"rate": 2, "burst": 2, "part_rows": 100})).await;
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
    // The same job again with "reconcile": already complete, then reconciled with the
    // service's own counts as the last step; the result is the execution's output.
    let again = json!({"job_id": done["execution_name"], "reconcile": true});
    let reconciled = run_state_machine(moto, again).await;
    assert_eq!(reconciled["status"], "SUCCEEDED", "{reconciled}");
    let result = &reconciled["output"]["reconciliation"];
    assert_eq!(result["reconciled"], true, "{reconciled}");
    assert_eq!(result["service_count"], world.findings, "{reconciled}");
    assert_eq!(result["lake_count"], world.findings, "{reconciled}");
    assert_eq!(result["missing"], 0, "{reconciled}");

    let failed = run_state_machine(moto, json!({"filters": {"Nope": []}})).await;
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
    let exhausted = run_state_machine_with(moto, input, &["fast-retries"]).await;
    assert_eq!(exhausted["status"], "FAILED", "{exhausted}");
    assert_eq!(exhausted["error"], "Lambda.ServiceException", "{exhausted}");
    assert_eq!(
        exhausted["task_failures"],
        json!(vec!["Lambda.ServiceException"; 7]),
        "1 try + 6 retries: {exhausted}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_whose_findings_moved_under_its_read_fails_unsettled_instead_of_succeeding() {
    use sechub_export::emulator::changes::Change;
    let host = LambdaHost::listen(Duration::from_secs(6)).await;
    let port = host.url.rsplit(':').next().unwrap().to_string();
    let world = World::new(400, 35, Moto::start_with_env(&[("MOTO_PORT", &port)])).await;
    host.run_sandbox(world.sandbox());
    // After the second page, 5 findings of the first leave the window (a new UpdatedAt), and
    // the offset cursor skips the 5 unchanged findings behind them.
    world
        .emulator
        .change_after_pages(2, Change::Update((0..5).collect()));
    let input = json!({"job_id": "moved", "part_rows": 100});
    let done = run_state_machine(&world.moto, input).await;
    assert_eq!(done["status"], "FAILED", "{done}");
    assert_eq!(done["error"], "SechubExport.Unsettled", "{done}");
    let cause = done["cause"].as_str().unwrap();
    assert!(
        cause.contains("job moved read every page (395 findings)")
            && cause.contains("not proven exact"),
        "{cause}"
    );
}

/// AWS's recommended Lambda retry set, with full jitter and a cap on every wait but the
/// lease's (whose waits must outlast a 60 s lease), on every task; old versions of everything
/// the exporter replaces or deletes under the lake expire.
#[test]
fn every_task_retries_lambdas_transient_errors_with_jitter_and_old_versions_expire() {
    let template = repo_file(TEMPLATE);
    let found = aws_tool(&["retriers", template.to_str().unwrap()]);
    let tasks = found["tasks"].as_object().unwrap();
    assert_eq!(tasks.len(), 6, "{tasks:?}");
    // Continue starts the job's next execution (Step Functions itself): it retries every error.
    assert_eq!(tasks["Continue"][0]["ErrorEquals"], json!(["States.ALL"]));
    for (name, retriers) in tasks.iter().filter(|(name, _)| *name != "Continue") {
        let lambda = &retriers[0];
        assert!(
            lambda["ErrorEquals"]
                .as_array()
                .unwrap()
                .contains(&json!("Lambda.ClientExecutionTimeoutException")),
            "{name}: {lambda}"
        );
        for retrier in retriers.as_array().unwrap() {
            assert!(retrier["MaxDelaySeconds"].is_u64(), "{name}: {retrier}");
            let lease = retrier["ErrorEquals"] == json!(["SechubExport.JobBusy"]);
            let jitter = if lease { json!(null) } else { json!("FULL") };
            assert_eq!(retrier["JitterStrategy"], jitter, "{name}: {retrier}");
        }
    }
    let rules = found["lifecycle"].as_array().unwrap();
    let lake = rules
        .iter()
        .find(|r| r["Id"] == "ExpireOldLakeVersions")
        .expect("a rule for the lake");
    assert!(lake["NoncurrentVersionExpiration"].is_object(), "{lake}");
    assert!(
        lake["Prefix"].to_string().contains("${LakePrefix}/")
            && !lake["Prefix"].to_string().contains("_sechub_export"),
        "the whole lake, parts included: {lake}"
    );
}

/// What the notification rules deliver for real-shaped status events (`failures-only`: as
/// deployed with NotifyOn failures).
fn notifications(options: &[&str]) -> Vec<String> {
    let moto = Moto::start();
    let machine = "arn:aws:states:us-east-1:123456789012:stateMachine:sechub-export-Export";
    let template = repo_file(TEMPLATE);
    let mut args = vec!["events", &moto.url, template.to_str().unwrap(), machine];
    args.extend(options);
    let answer = aws_tool(&args);
    answer["delivered"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_notification_rules_say_why_in_one_line_for_this_state_machines_ends_only() {
    let delivered = notifications(&[]);
    assert_eq!(delivered.len(), 4, "{delivered:?}");
    let message = |name: &str| {
        delivered
            .iter()
            .find(|m| m.contains(&format!("execution {name} ended")))
            .unwrap_or_else(|| panic!("{name}: {delivered:?}"))
            .clone()
    };
    for line in &delivered {
        assert_eq!(line.trim_end().lines().count(), 1, "one line: {line}");
    }
    let failed = message("bad-1");
    assert!(
        failed.contains("ended FAILED. Error: SechubExport.BadRequest. Cause: invalid filters"),
        "{failed}"
    );
    assert!(
        message("slow-1").contains("ended TIMED_OUT: it was stopped before its end"),
        "{delivered:?}"
    );
    let aborted = message("stop-1");
    assert!(
        aborted.contains("ended ABORTED: it was stopped"),
        "{aborted}"
    );
    assert!(aborted.contains("same job_id to resume"), "{aborted}");
    assert!(
        message("ok-1").contains("ended SUCCEEDED: its output holds"),
        "{delivered:?}"
    );
    // NotifyOn failures: the same, without the success.
    let failures = notifications(&["failures-only"]);
    assert_eq!(failures.len(), 3, "{failures:?}");
    assert!(
        !failures.iter().any(|m| m.contains("SUCCEEDED")),
        "{failures:?}"
    );
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
        (Some(1024), Some(900))
    );
    // NotifyOn failures: no rule for successes.
    let made = seen["made"].as_array().unwrap();
    assert!(made.contains(&json!("ExecutionStoppedRule")), "{seen}");
    assert!(!made.contains(&json!("ExecutionSucceededRule")), "{seen}");
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
    // OrganizationId given: only in accounts of that organization.
    assert_eq!(
        assume["Condition"]["StringEquals"]["aws:ResourceOrgID"], "o-exampleorg1",
        "{seen}"
    );
    // The count actions (Resource "*", as Security Hub allows no other) in a policy of their
    // own, and the state machine's log delivery and tracing in theirs: the roles' own policies
    // name their resources.
    let count = &seen["role_policies"]["count-findings"]["Statement"][0];
    assert_eq!(count["Sid"], "CountFindings", "{seen}");
    let export = &seen["role_policies"]["export"]["Statement"];
    assert!(
        !export.to_string().contains("CreateInsight"),
        "the export policy names no count action: {seen}"
    );
    let observe = &seen["states_role_policies"]["logs-and-traces"]["Statement"];
    assert_eq!(observe.as_array().unwrap().len(), 2, "{seen}");
    assert!(
        !seen["states_role_policies"]["run-slices"]
            .to_string()
            .contains("xray"),
        "{seen}"
    );
    // The Distributed Map: the state machine may start its own child executions, no other.
    let map = &seen["states_role_policies"]["run-stream-map"]["Statement"];
    assert_eq!(map[0]["Action"], "states:StartExecution", "{seen}");
    assert_eq!(map[0]["Resource"], machine, "{seen}");
    assert!(
        map[2]["Resource"].as_str().unwrap().ends_with(&format!(
            "{bucket}/securityhub/_sechub_export/jobs/*/stream-items.json"
        )),
        "{seen}"
    );
    assert_eq!(
        seen["bucket_kept_after_delete"], true,
        "the lake outlives the stack"
    );
}
