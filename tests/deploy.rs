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
