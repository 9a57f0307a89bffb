//! `permissions` prints a policy that is enough and no more: an export runs under exactly that
//! policy in moto with IAM enforcement on, and fails, naming the action, without any one of its
//! statements.

mod common;

use common::*;
use serde_json::Value;

/// The flags of the export the policy is for: job `job` under prefix `job` of bucket `lake`.
fn flags(job: &str) -> Vec<String> {
    [
        "--destination",
        &format!("s3://lake/{job}"),
        "--job-id",
        job,
        "--region",
        "us-east-1",
        "--part-rows",
        "100",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn printed_policy(job: &str) -> Value {
    let mut cmd = command(None);
    cmd.arg("permissions")
        .args(flags(job))
        .args(["--account-id", "123456789012"]);
    serde_json::from_str(&run(cmd).ok()).expect("the policy is JSON")
}

/// Runs the export of `job` as the user `keys` belong to, with moto enforcing IAM.
fn export_as(moto: &Moto, keys: &Value, job: &str) -> Run {
    aws_tool(&["auth", &moto.url, "on"]);
    let mut cmd = command(Some(&moto.url));
    cmd.env("AWS_ACCESS_KEY_ID", keys["access_key_id"].as_str().unwrap())
        .env(
            "AWS_SECRET_ACCESS_KEY",
            keys["secret_access_key"].as_str().unwrap(),
        )
        .args(["export", "-q"])
        .args(flags(job));
    let out = run(cmd);
    aws_tool(&["auth", &moto.url, "off"]);
    out
}

fn count_of(moto: &Moto, job: &str) -> Value {
    let name = format!("/sechub-export/{job}/exported-count");
    lake_tool(&["get-parameter", &moto.url, &name])["value"].clone()
}

#[test]
fn an_export_runs_under_exactly_the_printed_policy_and_fails_without_any_statement() {
    let dir = tempfile::tempdir().unwrap();
    let (moto, _) = seeded_moto(dir.path(), 250, 21);
    lake_tool(&["create-bucket", &moto.url, "lake"]);

    let policy = printed_policy("full");
    let sids: Vec<String> = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Sid"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        sids,
        [
            "ReadFindings",
            "FindTheLake",
            "ReadState",
            "WriteParts",
            "RemoveStrayPartsAndLeases",
            "PublishCount"
        ]
    );
    let keys = aws_tool(&["iam-user", &moto.url, "exporter", &policy.to_string()]);
    let full = export_as(&moto, &keys, "full");
    assert!(full.ok().contains("complete: job full"));
    assert_eq!(count_of(&moto, "full"), "250");

    // What each statement's absence must name: the action refused.
    let named = [
        ("ReadFindings", "securityhub:GetFindings"),
        ("FindTheLake", "s3:ListBucket"),
        ("ReadState", "s3:GetObject"),
        ("WriteParts", "s3:PutObject"),
        ("RemoveStrayPartsAndLeases", "s3:DeleteObject"),
        ("PublishCount", "ssm:PutParameter"),
    ];
    for (index, (sid, action)) in named.iter().enumerate() {
        let job = format!("without{index}");
        let mut reduced = printed_policy(&job);
        let statements = reduced["Statement"].as_array_mut().unwrap();
        statements.retain(|s| s["Sid"] != *sid);
        aws_tool(&["iam-user", &moto.url, "exporter", &reduced.to_string()]);
        let out = export_as(&moto, &keys, &job);
        let stderr = out.stderr();
        assert!(
            stderr.contains(action),
            "without {sid}: {action} not named: {stderr}"
        );
        match *sid {
            // The count is advisory: the export completes, says what it could not publish,
            // and `verify` reports the parameter as missing.
            "PublishCount" => {
                assert!(out.ok().contains("complete: job"), "{stderr}");
                assert_eq!(count_of(&moto, &job), Value::Null);
            }
            // A clean run deletes only its lease, which then expires by itself (60 s); the
            // warning names the action a crashed run's stray parts will need.
            "RemoveStrayPartsAndLeases" => {
                assert!(out.ok().contains("complete: job"), "{stderr}");
                assert!(stderr.contains("could not release the lease"), "{stderr}");
            }
            _ => assert_ne!(
                out.code(),
                0,
                "without {sid} the export must fail: {stderr}"
            ),
        }
    }
}
