//! `permissions`: the least-privilege IAM policy for exactly one export command (the same
//! flags), worked out offline from what that export calls: Security Hub reads, the counts it
//! asks for, the lake's bucket and prefix, the SSM count, and the member roles it assumes.

use serde_json::{json, Value};

use crate::error::Result;
use crate::plan::{ExportPlan, ExportRequest, Progress, TotalMode};
use crate::request::Api;
use crate::sink::Destination;
use crate::streams::{regions, Accounts};

/// `permissions`: the export's flags, and what the ARNs may name.
#[derive(Debug, clap::Args)]
pub struct PermissionsArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub request: ExportRequest,
    /// The account the export runs in, for the ARNs of its SSM parameter (default: any, `*`).
    #[arg(long)]
    pub account_id: Option<String>,
    /// Also allow what `verify --source` of this job calls (Security Hub's counts, reading the
    /// SSM count back).
    #[arg(long)]
    pub verify: bool,
}

/// Prints the policy of the export these flags describe.
pub fn permissions(args: &PermissionsArgs) -> Result<String> {
    let plan = ExportPlan::new(&args.request)?;
    if let Some(account) = &args.account_id {
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(crate::error::Error::Usage(format!(
                "invalid --account-id {account:?}: give the 12 digits of the account the export runs in"
            )));
        }
    }
    let policy = policy(&plan, args.account_id.as_deref(), args.verify);
    Ok(serde_json::to_string_pretty(&policy).expect("a policy serialises"))
}

/// The policy document: one statement per thing the export does, each named by its `Sid`.
pub fn policy(plan: &ExportPlan, account: Option<&str>, verify: bool) -> Value {
    let account = account.unwrap_or("*");
    let region = plan.aws.region.as_deref().unwrap_or("*");
    let partition = regions::partition(region);
    let mut statements = vec![statement(
        "ReadFindings",
        // The IAM action of both GetFindings (ASFF) and GetFindingsV2 (OCSF); the two
        // describe calls are made only after a refused read, to say which service is enabled.
        &[
            "securityhub:GetFindings",
            "securityhub:DescribeHub",
            "securityhub:DescribeSecurityHubV2",
        ],
        json!("*"),
    )];
    let streams = &plan.streams;
    if !streams.is_single() {
        // Each account's cross-Region aggregation; `--regions all` asks each Region whether
        // Security Hub is on there with DescribeHub (in ReadFindings).
        let mut actions = vec![
            "securityhub:ListFindingAggregators",
            "securityhub:GetFindingAggregator",
        ];
        if streams.accounts == Accounts::Organization {
            actions.push("securityhub:ListMembers");
        }
        statements.push(statement("FindStreams", &actions, json!("*")));
    }
    let counts = match (plan.api, plan.total, verify) {
        (_, TotalMode::Off, false) => None,
        (Api::GetFindingsV2, _, _) => Some(vec!["securityhub:GetAdhocInsightResults"]),
        (Api::GetFindings, TotalMode::Insight, _) | (Api::GetFindings, _, true) => Some(vec![
            "securityhub:CreateInsight",
            "securityhub:GetInsightResults",
            "securityhub:DeleteInsight",
            "securityhub:GetInsights",
        ]),
        (Api::GetFindings, _, false) => None,
    };
    if let Some(actions) = counts {
        statements.push(statement("CountFindings", &actions, json!("*")));
    }
    if let Some(role) = &streams.role {
        let arns: Vec<String> = match &streams.accounts {
            Accounts::Listed(ids) => ids
                .iter()
                .map(|id| format!("arn:{partition}:iam::{id}:role/{}", role.name))
                .collect(),
            _ => vec![format!("arn:{partition}:iam::*:role/{}", role.name)],
        };
        statements.push(statement(
            "AssumeMemberRoles",
            &["sts:AssumeRole"],
            json!(arns),
        ));
    }
    if let Destination::S3 { bucket, prefix } = &plan.destination {
        let objects = match prefix.as_str() {
            "" => format!("arn:{partition}:s3:::{bucket}/*"),
            prefix => format!("arn:{partition}:s3:::{bucket}/{prefix}/*"),
        };
        // HeadBucket (finding the bucket's Region) and listing the job's own objects.
        statements.push(statement(
            "FindTheLake",
            &["s3:ListBucket"],
            json!(format!("arn:{partition}:s3:::{bucket}")),
        ));
        statements.push(statement("ReadState", &["s3:GetObject"], json!(objects)));
        // Conditional writes (If-None-Match, If-Match) need no other action.
        statements.push(statement("WriteParts", &["s3:PutObject"], json!(objects)));
        statements.push(statement(
            "RemoveStrayPartsAndLeases",
            &["s3:DeleteObject"],
            json!(objects),
        ));
    }
    if let Some(name) = ssm_parameter(plan) {
        let path = match name.strip_prefix('/') {
            Some(rest) => rest.to_string(),
            None => name,
        };
        let mut actions = vec!["ssm:PutParameter"];
        if verify {
            actions.push("ssm:GetParameter");
        }
        statements.push(statement(
            "PublishCount",
            &actions,
            json!(format!(
                "arn:{partition}:ssm:{region}:{account}:parameter/{path}"
            )),
        ));
    }
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// The SSM parameter the export publishes its count to: the one named, or every job's default
/// under `/sechub-export/` when the job id is derived (it hashes the caller's account).
fn ssm_parameter(plan: &ExportPlan) -> Option<String> {
    match (&plan.progress, &plan.job_id) {
        (Progress::Off, _) => None,
        (Progress::Parameter(name), _) => Some(name.clone()),
        (Progress::Default, Some(job_id)) => plan.progress_parameter(job_id),
        (Progress::Default, None) => plan
            .destination
            .is_s3()
            .then(|| "/sechub-export/*/exported-count".to_string()),
    }
}

fn statement(sid: &str, actions: &[&str], resource: Value) -> Value {
    json!({"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resource})
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        request: ExportRequest,
    }

    fn policy_of(args: &[&str], verify: bool) -> Value {
        let flags =
            Flags::try_parse_from(std::iter::once("x").chain(args.iter().copied())).unwrap();
        let plan = ExportPlan::new(&flags.request).unwrap();
        policy(&plan, Some("123456789012"), verify)
    }

    fn sids(policy: &Value) -> Vec<&str> {
        policy["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["Sid"].as_str().unwrap())
            .collect()
    }

    fn resource<'a>(policy: &'a Value, sid: &str) -> &'a Value {
        let statements = policy["Statement"].as_array().unwrap();
        &statements.iter().find(|s| s["Sid"] == sid).unwrap()["Resource"]
    }

    #[test]
    fn an_s3_export_gets_its_bucket_prefix_and_parameter_only() {
        let policy = policy_of(
            &[
                "--destination",
                "s3://lake/sh/",
                "--region",
                "eu-west-1",
                "--job-id",
                "j1",
            ],
            false,
        );
        assert_eq!(
            sids(&policy),
            [
                "ReadFindings",
                "FindTheLake",
                "ReadState",
                "WriteParts",
                "RemoveStrayPartsAndLeases",
                "PublishCount"
            ]
        );
        assert_eq!(resource(&policy, "FindTheLake"), "arn:aws:s3:::lake");
        assert_eq!(resource(&policy, "WriteParts"), "arn:aws:s3:::lake/sh/*");
        assert_eq!(
            resource(&policy, "PublishCount"),
            "arn:aws:ssm:eu-west-1:123456789012:parameter/sechub-export/j1/exported-count"
        );
    }

    #[test]
    fn a_local_export_without_a_count_reads_findings_only() {
        let policy = policy_of(&["--destination", "/tmp/lake"], false);
        assert_eq!(sids(&policy), ["ReadFindings"]);
        let no_count = policy_of(
            &["--destination", "s3://lake", "--progress-parameter", "none"],
            false,
        );
        assert!(!sids(&no_count).contains(&"PublishCount"));
        assert_eq!(resource(&no_count, "ReadState"), "arn:aws:s3:::lake/*");
    }

    #[test]
    fn an_organization_assumes_its_role_everywhere_and_lists_members() {
        let policy = policy_of(
            &[
                "--destination",
                "s3://lake/p",
                "--accounts",
                "organization",
                "--role-name",
                "Reader",
                "--regions",
                "all",
            ],
            false,
        );
        assert_eq!(
            resource(&policy, "AssumeMemberRoles"),
            &json!(["arn:aws:iam::*:role/Reader"])
        );
        let find = &policy["Statement"][1];
        assert_eq!(find["Sid"], "FindStreams");
        assert!(find["Action"]
            .as_array()
            .unwrap()
            .contains(&json!("securityhub:ListMembers")));
        assert_eq!(
            resource(&policy, "PublishCount"),
            "arn:aws:ssm:*:123456789012:parameter/sechub-export/*/exported-count"
        );
        let listed = policy_of(
            &[
                "--destination",
                "s3://lake/p",
                "--accounts",
                "111111111111,222222222222",
                "--role-name",
                "Reader",
            ],
            false,
        );
        assert_eq!(
            resource(&listed, "AssumeMemberRoles"),
            &json!([
                "arn:aws:iam::111111111111:role/Reader",
                "arn:aws:iam::222222222222:role/Reader"
            ])
        );
    }

    #[test]
    fn counts_follow_the_api_the_total_mode_and_verify() {
        let count = |args: &[&str], verify| {
            let policy = policy_of(args, verify);
            policy["Statement"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["Sid"] == "CountFindings")
                .map(|s| s["Action"].clone())
        };
        assert_eq!(
            count(&["--destination", "/tmp/l"], false),
            None,
            "v1 counts only when asked"
        );
        assert_eq!(
            count(&["--destination", "/tmp/l", "--api", "v2"], false),
            Some(json!(["securityhub:GetAdhocInsightResults"]))
        );
        assert_eq!(
            count(
                &["--destination", "/tmp/l", "--api", "v2", "--total", "off"],
                false
            ),
            None
        );
        let insight = count(&["--destination", "/tmp/l", "--total", "insight"], false).unwrap();
        assert!(insight
            .as_array()
            .unwrap()
            .contains(&json!("securityhub:DeleteInsight")));
        assert_eq!(count(&["--destination", "/tmp/l"], true), Some(insight));
    }
}
