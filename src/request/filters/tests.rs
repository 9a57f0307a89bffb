use super::*;
use serde_json::json;

fn rejected(filters: Value) -> String {
    match validate(&filters, false) {
        Err(Error::Filters(message)) => message,
        other => panic!("{filters} should be rejected, got {other:?}"),
    }
}

#[test]
fn filters_in_the_cli_format_of_every_kind_are_accepted() {
    let filters = json!({
        "RecordState": [{"Value": "ACTIVE", "Comparison": "EQUALS"}, {"Value": "ARCHIVED", "Comparison": "EQUALS"}],
        "UpdatedAt": [{"DateRange": {"Value": 7, "Unit": "DAYS"}}],
        "CreatedAt": [{"Start": "2026-01-01T00:00:00Z", "End": "2026-02-01T00:00:00.123+02:00"}],
        "SeverityNormalized": [{"Gte": 40}],
        "ProductFields": [{"Key": "a/b", "Value": "x", "Comparison": "EQUALS"}],
        "Sample": [{"Value": true}],
        "NetworkSourceIpV4": [{"Cidr": "10.0.0.0/8"}],
        "Title": [{"Value": "S3", "Comparison": "NOT_EQUALS"}, {"Value": "x", "Comparison": "PREFIX_NOT_EQUALS"}],
        "ResourceType": [{"Value": "AwsIam", "Comparison": "PREFIX"}, {"Value": "AwsIamPolicy", "Comparison": "NOT_EQUALS"}],
        "Description": [{"Value": "a", "Comparison": "EQUALS"}, {"Value": "b", "Comparison": "PREFIX"}]
    });
    validate(&filters, false).unwrap();
}

#[test]
fn broken_filters_are_rejected_with_a_message_naming_the_fix() {
    let cases = [
        (json!([1]), "expected a JSON object"),
        (json!({"recordstate": []}), "did you mean RecordState"),
        (
            json!({"RecordState": {"Value": "ACTIVE"}}),
            "expected a list",
        ),
        (
            json!({"RecordState": [{"Value": "ACTIVE"}]}),
            "Comparison is required",
        ),
        (
            json!({"RecordState": [{"Value": "ACTIVE", "Comparison": "LIKE"}]}),
            "unknown Comparison LIKE",
        ),
        (
            json!({"UpdatedAt": [{"Start": "2026-01-01T00:00:00Z"}]}),
            "Start without End",
        ),
        (
            json!({"UpdatedAt": [{"Start": "yesterday", "End": "2026-01-01T00:00:00Z"}]}),
            "ISO-8601",
        ),
        (
            json!({"UpdatedAt": [{"DateRange": {"Value": 0, "Unit": "DAYS"}}]}),
            "positive Value",
        ),
        (json!({"SeverityNormalized": [{"Gte": "40"}]}), "numeric"),
        (json!({"Sample": [{"Value": "true"}]}), "true or false"),
        (
            json!({"Title": [{"Value": "a", "Comparison": "EQUALS"}, {"Value": "b", "Comparison": "NOT_EQUALS"}]}),
            "cannot be mixed",
        ),
        (
            json!({"Title": [{"Value": "a", "Comparison": "EQUALS", "Extra": 1}]}),
            "unexpected key Extra",
        ),
    ];
    for (filters, needle) in cases {
        let message = rejected(filters.clone());
        assert!(message.contains(needle), "{filters}: {message}");
    }
}

#[test]
fn unknown_attributes_pass_only_when_allowed_and_a_wrong_case_never_does() {
    let newer = json!({"SomeNewAttribute": [{"Value": "x", "Comparison": "EQUALS"}]});
    assert!(rejected(newer.clone()).contains("--allow-unknown-filters"));
    validate(&newer, true).unwrap();
    let miscased = json!({"recordState": [{"Value": "x", "Comparison": "EQUALS"}]});
    assert!(validate(&miscased, true).is_err());
    assert!(validate(&json!({"SomeNewAttribute": [1]}), true).is_err());
}

#[test]
fn the_service_limits_on_attributes_and_values_are_enforced() {
    let names = [
        "Id",
        "Title",
        "Description",
        "GeneratorId",
        "ProductName",
        "CompanyName",
        "AwsAccountId",
        "Region",
        "RecordState",
        "SeverityLabel",
        "WorkflowStatus",
    ];
    let eleven: Map<String, Value> = names
        .iter()
        .map(|n| {
            (
                n.to_string(),
                json!([{"Value": "x", "Comparison": "EQUALS"}]),
            )
        })
        .collect();
    assert!(rejected(Value::Object(eleven)).contains("at most 10"));
    let many: Vec<Value> = (0..21)
        .map(|i| json!({"Value": i.to_string(), "Comparison": "EQUALS"}))
        .collect();
    assert!(rejected(json!({"Id": many})).contains("at most 20"));
}

#[test]
fn file_arguments_are_read_and_missing_files_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.json");
    std::fs::write(&path, r#"{"Id":[{"Value":"a","Comparison":"EQUALS"}]}"#).unwrap();
    let value = read_arg(&format!("file://{}", path.display())).unwrap();
    assert_eq!(value["Id"][0]["Value"], "a");
    let err = read_arg("file:///no/such/filters.json").unwrap_err();
    assert!(err.to_string().contains("/no/such/filters.json"), "{err}");
    assert!(matches!(read_arg("{not json"), Err(Error::Filters(_))));
}

#[test]
fn a_date_range_means_what_its_comparison_says_and_an_unknown_one_is_refused() {
    let now = "2026-12-01T10:00:00Z".parse::<DateTime<Utc>>().unwrap();
    let within = json!({"UpdatedAt": [{"DateRange": {"Value": 7, "Unit": "DAYS"}}]});
    assert_eq!(
        freeze(&within, now)["UpdatedAt"],
        json!([{"Start": "2026-11-24T10:00:00.000Z", "End": "2026-12-01T10:00:00.000Z"}])
    );
    let older = json!({"UpdatedAt": [{"DateRange": {"Value": 7, "Unit": "DAYS", "Comparison": "OLDER_THAN"}}]});
    validate(&older, false).unwrap();
    assert_eq!(
        freeze(&older, now)["UpdatedAt"],
        json!([{"Start": OPEN_START, "End": "2026-11-24T10:00:00.000Z"}]),
        "OLDER_THAN 7 days: everything up to a week ago"
    );
    let odd =
        json!({"UpdatedAt": [{"DateRange": {"Value": 7, "Unit": "DAYS", "Comparison": "NEWER"}}]});
    assert!(rejected(odd).contains("use WITHIN"));
}
