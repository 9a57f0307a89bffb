//! The bad-input catalogue: each malformed invocation gets its documented exit code, one line
//! naming the problem, and writes nothing.

mod common;

use common::*;

struct Case {
    name: &'static str,
    args: Vec<String>,
    code: i32,
    message: &'static str,
    /// Environment changes: (key, Some(value)) sets, (key, None) removes.
    env: Vec<(&'static str, Option<&'static str>)>,
}

fn case(name: &'static str, extra: &[&str], code: i32, message: &'static str) -> Case {
    Case {
        name,
        args: extra.iter().map(|s| s.to_string()).collect(),
        code,
        message,
        env: Vec::new(),
    }
}

fn catalogue() -> Vec<Case> {
    let mut cases = vec![
        case(
            "malformed filter JSON",
            &["--filters", r#"{"RecordState":"#],
            2,
            "invalid filters: not valid JSON",
        ),
        case(
            "unknown filter attribute",
            &[
                "--filters",
                r#"{"Severity":[{"Value":"HIGH","Comparison":"EQUALS"}]}"#,
            ],
            2,
            "unknown filter attribute Severity",
        ),
        case(
            "wrong-case attribute gets a hint",
            &[
                "--filters",
                r#"{"recordstate":[{"Value":"ACTIVE","Comparison":"EQUALS"}]}"#,
            ],
            2,
            "did you mean RecordState?",
        ),
        case(
            "date filter with Start only",
            &[
                "--filters",
                r#"{"UpdatedAt":[{"Start":"2026-01-01T00:00:00Z"}]}"#,
            ],
            2,
            "Start without End",
        ),
        case(
            "unknown comparison",
            &[
                "--filters",
                r#"{"RecordState":[{"Value":"ACTIVE","Comparison":"IS"}]}"#,
            ],
            2,
            "unknown Comparison IS",
        ),
        case(
            "EQUALS mixed with NOT_EQUALS",
            &[
                "--filters",
                r#"{"RecordState":[{"Value":"ACTIVE","Comparison":"EQUALS"},{"Value":"ARCHIVED","Comparison":"NOT_EQUALS"}]}"#,
            ],
            2,
            "cannot be mixed",
        ),
        case(
            "filters not an object",
            &["--filters", "[1,2]"],
            2,
            "expected a JSON object",
        ),
        case(
            "missing filter file",
            &["--filters", "file:///nonexistent/filters.json"],
            2,
            "cannot read filter file /nonexistent/filters.json",
        ),
        case(
            "unknown flag",
            &["--frobnicate"],
            2,
            "unexpected argument '--frobnicate'",
        ),
        case(
            "bad duration",
            &["--max-duration", "soon"],
            2,
            "invalid value 'soon' for '--max-duration",
        ),
        case(
            "zero part rows",
            &["--part-rows", "0"],
            2,
            "invalid --part-rows 0",
        ),
        case("zero rate", &["--rate", "0"], 2, "invalid --rate 0"),
        case("negative rate", &["--rate", "-1"], 2, "invalid --rate -1"),
        case(
            "part rows not whole pages",
            &["--part-rows", "150"],
            2,
            "invalid --part-rows 150: a part holds whole pages of 100 findings",
        ),
        case(
            "a filter file without file://",
            &["--filters", "Cargo.toml"],
            2,
            "Cargo.toml is a file: give it as file://Cargo.toml",
        ),
        case(
            "an endpoint without a scheme",
            &["--endpoint-url", "127.0.0.1:4599"],
            2,
            "give the scheme, e.g. http://127.0.0.1:4599",
        ),
        case(
            "a misspelt Region",
            &["--region", "us-esat-1"],
            2,
            "unknown Region \"us-esat-1\" in --region: did you mean us-east-1?",
        ),
        case(
            "a misspelt Region in --regions",
            &["--regions", "us-east-1,eu-wset-1"],
            2,
            "did you mean eu-west-1?",
        ),
        case(
            "a mistyped flag gets a suggestion",
            &["--destinaton", "x"],
            2,
            "a similar argument exists: '--destination'",
        ),
        case(
            "job id with a slash",
            &["--job-id", "a/b"],
            2,
            "invalid --job-id",
        ),
        case(
            "unsupported codec",
            &["--compression", "lz4"],
            2,
            "unknown compression \"lz4\"",
        ),
        case(
            "bad SSM parameter name",
            &["--progress-parameter", "/aws/reserved"],
            2,
            "invalid --progress-parameter",
        ),
        case(
            "not a Region code",
            &["--regions", "us-east-1,mars-1"],
            2,
            "\"mars-1\" in --regions is not a Region code",
        ),
        case(
            "malformed account id",
            &["--accounts", "111111111111,12345", "--role-name", "R"],
            2,
            "invalid account id \"12345\" in --accounts",
        ),
        case(
            "role without accounts",
            &["--role-name", "SecurityHubExportRole"],
            2,
            "--role-name needs --accounts",
        ),
        case(
            "accounts without a role",
            &["--accounts", "111111111111"],
            2,
            "--accounts needs --role-name",
        ),
        case(
            "zero streams at once",
            &["--regions", "us-east-1", "--max-streams", "0"],
            2,
            "invalid --max-streams 0",
        ),
        case(
            "unreachable endpoint",
            &["--endpoint-url", "http://127.0.0.1:9"],
            6,
            "cannot reach STS",
        ),
    ];
    let mut too_many = serde_json::Map::new();
    for name in [
        "AwsAccountId",
        "CompanyName",
        "ComplianceStatus",
        "GeneratorId",
        "Id",
        "ProductArn",
        "ProductName",
        "RecordState",
        "Region",
        "SeverityLabel",
        "Title",
    ] {
        too_many.insert(
            name.into(),
            serde_json::json!([{"Value": "x", "Comparison": "EQUALS"}]),
        );
    }
    cases.push(Case {
        args: vec![
            "--filters".into(),
            serde_json::Value::Object(too_many).to_string(),
        ],
        ..case("eleven filter attributes", &[], 2, "at most 10")
    });
    cases.extend([
        case(
            "ASFF filters with --api v2",
            &["--api", "v2", "--filters", r#"{"SeverityLabel":[{"Value":"HIGH","Comparison":"EQUALS"}]}"#],
            2,
            "the ASFF filter format is for --api v1",
        ),
        case(
            "an OCSF field that does not exist",
            &["--api", "v2", "--filters", r#"{"CompositeFilters":[{"StringFilters":[{"FieldName":"severity_label","Filter":{"Value":"High","Comparison":"EQUALS"}}]}]}"#],
            2,
            "\"severity_label\" is not a field of StringFilters",
        ),
        case(
            "several composite filters without an operator",
            &["--api", "v2", "--filters", r#"{"CompositeFilters":[{"BooleanFilters":[{"FieldName":"vulnerabilities.is_fix_available","Filter":{"Value":true}}]},{"NumberFilters":[{"FieldName":"severity_id","Filter":{"Gte":4}}]}]}"#],
            2,
            "no CompositeOperator",
        ),
        case("unknown API", &["--api", "v3"], 2, "unknown API \"v3\""),
        case(
            "--scopes without --api v2",
            &["--scopes", r#"{"AwsOrganizations":[{"OrganizationId":"o-abc"}]}"#],
            2,
            "--scopes is a GetFindingsV2 parameter",
        ),
        case(
            "malformed --scopes",
            &["--api", "v2", "--scopes", r#"{"AwsOrganizations":[{"OrgId":"o-abc"}]}"#],
            2,
            "invalid --scopes",
        ),
        case(
            "--api v2 over several Regions",
            &["--api", "v2", "--regions", "us-east-1,eu-west-1"],
            2,
            "--api v2 reads one Region per job",
        ),
    ]);
    cases.push(Case {
        env: vec![("AWS_ACCESS_KEY_ID", None), ("AWS_SECRET_ACCESS_KEY", None)],
        ..case("no credentials", &[], 3, "no usable AWS credentials")
    });
    cases.push(Case {
        env: vec![("AWS_ACCESS_KEY_ID", None), ("AWS_SECRET_ACCESS_KEY", None)],
        ..case(
            "unknown profile",
            &["--profile", "nope"],
            3,
            "for profile \"nope\"",
        )
    });
    cases.push(Case {
        env: vec![("AWS_REGION", None)],
        ..case("no Region", &[], 2, "no AWS Region configured")
    });
    cases
}

#[test]
fn every_bad_invocation_fails_with_its_code_one_line_and_writes_nothing() {
    let cases = catalogue();
    assert!(cases.len() >= 15);
    for c in cases {
        let dir = tempfile::tempdir().unwrap();
        let lake = dir.path().join("lake");
        let mut cmd = command(None);
        cmd.args(["export", "--destination", lake.to_str().unwrap()])
            .args(&c.args);
        for (key, value) in &c.env {
            match value {
                Some(v) => cmd.env(key, v),
                None => cmd.env_remove(key),
            };
        }
        let out = run(cmd);
        let stderr = out.stderr();
        assert_eq!(out.code(), c.code, "{}: {stderr}", c.name);
        assert_eq!(
            stderr.trim().lines().count(),
            1,
            "{}: one line expected: {stderr}",
            c.name
        );
        assert!(
            stderr.starts_with("error: ") && stderr.contains(c.message),
            "{}: {stderr}",
            c.name
        );
        assert!(!lake.exists(), "{}: nothing may be written", c.name);
    }
}

#[test]
fn bad_destinations_are_refused_before_any_aws_call() {
    for destination in [
        "gs://bucket/x",
        "s3://Bad_Bucket/x",
        "file://relative/path",
        "",
    ] {
        let mut cmd = command(Some("http://127.0.0.1:9"));
        cmd.args(["export", "--destination", destination]);
        let out = run(cmd);
        assert_eq!(out.code(), 2, "{destination}: {}", out.stderr());
        assert!(
            out.stderr().contains("invalid --destination"),
            "{destination}: {}",
            out.stderr()
        );
    }
}

#[test]
fn status_of_a_corrupt_checkpoint_is_a_clear_job_error() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = state_file(dir.path(), "broken", "checkpoint.json");
    std::fs::create_dir_all(checkpoint.parent().unwrap()).unwrap();
    std::fs::write(&checkpoint, b"{\"format_version\": 1, \"job_id\": \"bro").unwrap();
    let mut cmd = command(None);
    cmd.args([
        "status",
        "--destination",
        dir.path().to_str().unwrap(),
        "--job-id",
        "broken",
    ]);
    let out = run(cmd);
    out.fails(5, &["cannot be used: not valid JSON"]);
    assert_eq!(
        std::fs::read(&checkpoint).unwrap(),
        b"{\"format_version\": 1, \"job_id\": \"bro"
    );
}

#[test]
fn organization_without_a_security_hub_administrator_is_one_line_and_writes_nothing() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let mut cmd = command(Some(&moto.url));
    cmd.args(["export", "--destination", lake.to_str().unwrap()])
        .args([
            "--accounts",
            "organization",
            "--role-name",
            "SecurityHubExportRole",
        ]);
    run(cmd).fails(
        3,
        &[
            "--accounts organization found no enabled member accounts of 123456789012",
            "--accounts",
        ],
    );
    assert!(!lake.exists(), "nothing may be written");
}
