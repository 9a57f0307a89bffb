//! Deploying for real: both templates pass cfn-lint and checkov, and the member-account role
//! deploys in moto's CloudFormation trusting only the exporter, inside the organization.

mod common;

use common::*;
use serde_json::json;

const TEMPLATES: [&str; 2] = [
    "infra/cloudformation/sechub-export.yaml",
    "infra/cloudformation/member-role.yaml",
];
const MEMBER_ROLE: &str = "infra/cloudformation/member-role.yaml";

#[test]
fn the_templates_pass_cfn_lint_and_checkov() {
    let venv = std::env::var_os("SECHUB_IAC_VENV")
        .expect("SECHUB_IAC_VENV is not set: run the suite with scripts/test.sh, which installs cfn-lint and checkov");
    let bin = std::path::Path::new(&venv).join("bin");
    for template in TEMPLATES.map(repo_file) {
        let lint = std::process::Command::new(bin.join("cfn-lint"))
            .arg(&template)
            .output()
            .unwrap();
        assert!(
            lint.status.success(),
            "cfn-lint {}: {}",
            template.display(),
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
        assert!(
            checkov.status.success(),
            "checkov {}: {report}",
            template.display()
        );
        assert!(report.contains("Failed checks: 0"), "{report}");
    }
}

#[test]
fn the_member_role_trusts_only_the_exporter_in_the_organization_and_reads_only() {
    let moto = Moto::start();
    let template = repo_file(MEMBER_ROLE);
    let seen = aws_tool(&["member-role", &moto.url, template.to_str().unwrap()]);
    let plain = &seen["member"];
    assert_eq!(plain["status"], "CREATE_COMPLETE", "{seen}");
    assert!(
        plain["role_arn"]
            .as_str()
            .unwrap()
            .ends_with(":role/SecurityHubExportRole"),
        "{seen}"
    );
    let trust = &plain["trust"]["Statement"][0];
    assert_eq!(
        trust["Principal"]["AWS"], "arn:aws:iam::999999999999:role/sechub-export-FunctionRole-ABC",
        "{seen}"
    );
    assert_eq!(trust["Action"], "sts:AssumeRole", "{seen}");
    assert_eq!(
        trust["Condition"]["StringEquals"],
        json!({"aws:PrincipalOrgID": "o-exampleorg1"}),
        "{seen}"
    );
    // Only reads, and the temporary count insight; nothing else is allowed.
    let read = &plain["policies"]["read-findings"]["Statement"][0];
    let actions: Vec<&str> = read["Action"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(actions.contains(&"securityhub:GetFindings"), "{read}");
    assert!(
        actions.iter().all(|a| a.starts_with("securityhub:Get")
            || a.starts_with("securityhub:Describe")
            || a.starts_with("securityhub:List")),
        "read-only: {read}"
    );
    let count = &plain["policies"]["count-findings"]["Statement"][0];
    assert_eq!(
        count["Action"],
        json!(["securityhub:CreateInsight", "securityhub:DeleteInsight"]),
        "{seen}"
    );
    // With an external id, the exporter must present it too.
    let external = &seen["member-external"];
    assert_eq!(external["status"], "CREATE_COMPLETE", "{seen}");
    assert!(
        external["role_arn"]
            .as_str()
            .unwrap()
            .ends_with(":role/OtherExportRole"),
        "{seen}"
    );
    assert_eq!(
        external["trust"]["Statement"][0]["Condition"]["StringEquals"],
        json!({"aws:PrincipalOrgID": "o-exampleorg1", "sts:ExternalId": "ext-123"}),
        "{seen}"
    );
}

/// `scripts/deploy.sh` with `args`, the built binary as the deployer, AWS on `moto`.
fn deploy_sh(moto: &Moto, args: &[&str]) -> Run {
    let mut cmd = with_test_aws(
        std::process::Command::new(repo_file("scripts/deploy.sh")),
        Some(&moto.url),
    );
    cmd.env("SECHUB_EXPORT_BIN", BIN).args(args);
    run(cmd)
}

/// A zip holding a `bootstrap` of `content` (what CloudFormation hands Lambda; never run).
fn package(dir: &std::path::Path, name: &str, content: &str) -> String {
    let path = dir.join(name);
    let script = "import sys, zipfile\nwith zipfile.ZipFile(sys.argv[1], 'w') as z: z.writestr('bootstrap', sys.argv[2])";
    let made = std::process::Command::new(python())
        .args(["-c", script, path.to_str().unwrap(), content])
        .status()
        .unwrap();
    assert!(made.success());
    path.to_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_sh_plans_creates_updates_and_deploys_a_second_region() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let v1 = package(dir.path(), "v1.zip", "version 1");
    let v2 = package(dir.path(), "v2.zip", "version 2");
    let base = ["--stack-name", "sechub-export", "--region", "us-east-1"];
    let with = |extra: &[&str]| -> Vec<String> {
        base.iter().chain(extra).map(|s| s.to_string()).collect()
    };
    let deploy = |extra: &[&str]| {
        let args = with(extra);
        deploy_sh(&moto, &args.iter().map(String::as_str).collect::<Vec<_>>())
    };

    // A bad parameter: one line, exit 2, before any call.
    deploy(&["--package", &v1, "--parameter", "Nope=1"]).fails(2, &["Nope", "no such parameter"]);

    // The plan changes nothing: the real deploy after it creates the bucket and the stack.
    let plan = deploy(&[
        "--package",
        &v1,
        "--parameter",
        "LakePrefix=lake1",
        "--dry-run",
    ])
    .ok();
    for needle in [
        "would create code bucket sechub-export-code-123456789012-us-east-1 in us-east-1",
        "would upload s3://sechub-export-code-123456789012-us-east-1/sechub-export/",
        "would create stack sechub-export with LakePrefix=lake1",
        "would create the Athena views",
        "dry run: nothing changed",
    ] {
        assert!(plan.contains(needle), "{needle}: {plan}");
    }

    // The stack's Athena workgroup, which moto's CloudFormation does not make (on AWS the
    // stack does): the views are created in it.
    for region in ["us-east-1", "eu-west-1"] {
        let athena = athena(&moto, region).await;
        let group = athena.create_work_group().name("sechub-export-findings");
        group.send().await.unwrap();
    }
    let first = deploy(&[
        "--package",
        &v1,
        "--parameter",
        "LakePrefix=lake1",
        "--parameter",
        "MemberRoleName=SecurityHubExportRole",
    ])
    .ok();
    for needle in [
        "code bucket sechub-export-code-123456789012-us-east-1 created in us-east-1",
        "/bootstrap.zip uploaded",
        "/sechub-export.yaml uploaded",
        "stack sechub-export created: CREATE_COMPLETE",
        "view securityhub.findings_latest created (Athena query ",
        "view securityhub.findings_ocsf_archive created (Athena query ",
        "StateMachineArn: arn:aws:states:us-east-1:123456789012:stateMachine:",
        "FunctionRoleArn: arn:aws:iam::123456789012:role/",
        "start an export: aws stepfunctions start-execution --region us-east-1 --state-machine-arn arn:aws:states:",
    ] {
        assert!(first.contains(needle), "{needle}: {first}");
    }
    let ran = queries_run(&moto, "us-east-1", "sechub-export-findings").await;
    for view in [
        "findings_archive",
        "findings_latest",
        "findings_ocsf_archive",
        "findings_ocsf_latest",
    ] {
        let create = format!("CREATE OR REPLACE VIEW \"securityhub\".\"{view}\"");
        assert!(ran.iter().any(|q| q.contains(&create)), "{view}: {ran:?}");
    }
    let destination = output_of(&first, "Destination");
    assert!(destination.ends_with("/lake1"), "{first}");
    let key_of = |out: &str| {
        out.lines()
            .find(|l| l.contains("/bootstrap.zip"))
            .and_then(|l| l.split_whitespace().next())
            .unwrap()
            .to_string()
    };
    let first_key = key_of(&first);

    // A new package: a new content-addressed key, the same template (already there), and
    // the parameters not given keep their values. (The update changes no condition: moto's
    // CloudFormation cannot update a stack whose conditional IAM policy was left out.)
    let second = deploy(&["--package", &v2, "--parameter", "SliceSeconds=600"]).ok();
    assert!(
        second.contains("stack sechub-export updated: UPDATE_COMPLETE"),
        "{second}"
    );
    assert!(
        second.contains("/sechub-export.yaml (already uploaded)"),
        "{second}"
    );
    let second_key = key_of(&second);
    assert_ne!(first_key, second_key, "a new build is a new key");
    assert!(
        second.contains(&format!("{second_key} uploaded")),
        "{second}"
    );
    assert_eq!(
        output_of(&second, "Destination"),
        destination,
        "LakePrefix kept"
    );

    // Another Region: its own code bucket there, its own stack.
    let args = [
        "--stack-name",
        "sechub-export",
        "--region",
        "eu-west-1",
        "--package",
        &v2,
    ];
    let other = deploy_sh(&moto, &args).ok();
    for needle in [
        "code bucket sechub-export-code-123456789012-eu-west-1 created in eu-west-1",
        "stack sechub-export created: CREATE_COMPLETE",
        "StateMachineArn: arn:aws:states:eu-west-1:",
    ] {
        assert!(other.contains(needle), "{needle}: {other}");
    }
}

/// The value of output `key` in deploy's printed outputs.
fn output_of(printed: &str, key: &str) -> String {
    printed
        .lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{key}: ")))
        .unwrap_or_else(|| panic!("no output {key}: {printed}"))
        .to_string()
}

/// An Athena client on moto (Athena speaks a protocol moto's routing knows from the Rust SDK).
async fn athena(moto: &Moto, region: &str) -> aws_sdk_athena::Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_string()))
        .endpoint_url(&moto.url)
        .credentials_provider(aws_sdk_athena::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .load()
        .await;
    aws_sdk_athena::Client::new(&config)
}

/// The query strings Athena ran in `work_group`.
async fn queries_run(moto: &Moto, region: &str, work_group: &str) -> Vec<String> {
    let athena = athena(moto, region).await;
    let listed = athena.list_query_executions().work_group(work_group);
    let ids = listed.send().await.unwrap().query_execution_ids().to_vec();
    let mut queries = Vec::new();
    for id in ids {
        let got = athena.get_query_execution().query_execution_id(id);
        let execution = got.send().await.unwrap();
        queries.push(
            execution
                .query_execution()
                .unwrap()
                .query()
                .unwrap()
                .to_string(),
        );
    }
    queries
}
