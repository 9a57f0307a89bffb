use chrono::TimeZone;
use serde_json::json;

use super::*;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap()
}

fn string(field: &str, value: &str, comparison: &str) -> Value {
    json!({"FieldName": field, "Filter": {"Value": value, "Comparison": comparison}})
}

#[test]
fn the_filters_the_cli_documents_are_accepted() {
    let filters = json!({
        "CompositeFilters": [
            {"StringFilters": [string("severity", "High", "EQUALS"), string("severity", "Critical", "EQUALS")], "Operator": "OR"},
            {"DateFilters": [{"FieldName": "finding_info.created_time_dt", "Filter": {"DateRange": {"Value": 30, "Unit": "DAYS"}}}],
             "NumberFilters": [{"FieldName": "severity_id", "Filter": {"Gte": 3}}],
             "BooleanFilters": [{"FieldName": "vulnerabilities.is_fix_available", "Filter": {"Value": true}}],
             "MapFilters": [{"FieldName": "resources.tags", "Filter": {"Key": "env", "Value": "prod", "Comparison": "EQUALS"}}],
             "IpFilters": [{"FieldName": "evidences.src_endpoint.ip", "Filter": {"Cidr": "10.0.0.0/8"}}]},
            {"NestedCompositeFilters": [{"StringFilters": [string("class_name", "Compliance Finding", "EQUALS")]}], "Operator": "AND"}
        ],
        "CompositeOperator": "AND"
    });
    validate(&filters, false).unwrap();
    validate(&json!({}), false).unwrap();
}

#[test]
fn each_rule_the_api_states_is_checked_with_a_message_that_names_the_place() {
    let many: Vec<Value> = (0..11)
        .map(|_| json!({"StringFilters": [string("severity", "High", "EQUALS")]}))
        .collect();
    let twenty_one: Vec<Value> = (0..21)
        .map(|_| string("severity", "High", "EQUALS"))
        .collect();
    let cases = [
        (json!([1]), "JSON object"),
        (json!({"SeverityLabel": []}), "ASFF filter format"),
        (
            json!({"CompositeFilters": many, "CompositeOperator": "OR"}),
            "at most 10",
        ),
        (
            json!({"CompositeFilters": [{"StringFilters": twenty_one}]}),
            "at most 20",
        ),
        (
            json!({"CompositeFilters": [{"StringFilters": [string("severity", "High", "EQUALS")]}, {"StringFilters": [string("status", "New", "EQUALS")]}]}),
            "no CompositeOperator",
        ),
        (
            json!({"CompositeFilters": [{"StringFilters": [string("sev", "High", "EQUALS")]}]}),
            "\"sev\" is not a field",
        ),
        (
            json!({"CompositeFilters": [{"StringFilters": [string("severity", "High", "LIKE")]}]}),
            "Comparison must be one of",
        ),
        (
            json!({"CompositeFilters": [{"DateFilters": [{"FieldName": MODIFIED_FIELD, "Filter": {"Start": "2026-01-01T00:00:00Z"}}]}]}),
            "Start without End",
        ),
        (
            json!({"CompositeFilters": [{"NumberFilters": [{"FieldName": "severity_id", "Filter": {"Gte": "3"}}]}]}),
            "give numbers",
        ),
        (json!({"CompositeFilters": [{}]}), "at least one filter"),
        (
            json!({"CompositeFilters": [{"TextFilters": []}]}),
            "not a filter type",
        ),
        (
            json!({"CompositeFilters": [{"StringFilters": [string("severity", "High", "EQUALS")]}], "CompositeOperator": "XOR"}),
            "use AND or OR",
        ),
    ];
    for (filters, expected) in cases {
        let err = validate(&filters, false)
            .expect_err(&filters.to_string())
            .to_string();
        assert!(err.contains(expected), "{filters}: {err}");
    }
    let unknown = json!({"CompositeFilters": [{"StringFilters": [string("finding_info.new_field", "x", "EQUALS")]}]});
    assert!(
        validate(&unknown, true).is_ok(),
        "a newer field passes with --allow-unknown-filters"
    );
}

#[test]
fn freezing_resolves_relative_ranges_and_ands_the_modified_window() {
    let given = json!({
        "CompositeFilters": [{"DateFilters": [{"FieldName": "finding_info.created_time_dt", "Filter": {"DateRange": {"Value": 7, "Unit": "DAYS"}}}]}],
        "CompositeOperator": "AND"
    });
    assert!(has_relative_range(&given));
    let frozen = freeze(&given, now());
    assert!(!has_relative_range(&frozen));
    assert_eq!(
        frozen,
        json!({
            "CompositeFilters": [
                {"DateFilters": [{"FieldName": "finding_info.created_time_dt", "Filter": {"Start": "2026-11-24T10:00:00.000Z", "End": "2026-12-01T10:00:00.000Z"}}]},
                {"DateFilters": [{"FieldName": MODIFIED_FIELD, "Filter": {"Start": OPEN_START, "End": "2026-12-01T10:00:00.000Z"}}]}
            ],
            "CompositeOperator": "AND"
        })
    );
    validate(&frozen, false).unwrap();
    let empty = freeze(&json!({}), now());
    assert_eq!(empty["CompositeFilters"].as_array().unwrap().len(), 1);
}

#[test]
fn or_filters_are_nested_whole_so_the_window_narrows_every_branch() {
    let or = json!({
        "CompositeFilters": [
            {"StringFilters": [string("severity", "High", "EQUALS")]},
            {"StringFilters": [string("status", "New", "EQUALS")]}
        ],
        "CompositeOperator": "OR"
    });
    let frozen = freeze(&or, now());
    assert_eq!(frozen["CompositeOperator"], "AND");
    let list = frozen["CompositeFilters"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["Operator"], "OR");
    assert_eq!(list[0]["NestedCompositeFilters"], or["CompositeFilters"]);
    validate(&frozen, false).unwrap();
}

#[test]
fn the_settle_check_asks_for_the_same_filters_modified_after_the_window() {
    let frozen = freeze(
        &json!({"CompositeFilters": [{"StringFilters": [string("severity", "High", "EQUALS")]}]}),
        now(),
    );
    let started = now() - Duration::hours(1);
    let until = now() + Duration::days(1);
    let (changed, since) = changed_since_filters(&frozen, started, until).unwrap();
    assert_eq!(since, now() + Duration::milliseconds(1));
    let list = changed["CompositeFilters"].as_array().unwrap();
    assert_eq!(list[0], frozen["CompositeFilters"][0]);
    assert_eq!(list[1]["DateFilters"][0]["Filter"]["Start"], iso(since));
    assert_eq!(list[1]["DateFilters"][0]["Filter"]["End"], iso(until));
    assert!(changed_since_filters(&json!({}), started, until).is_none());
}

#[test]
fn scopes_are_checked_before_any_call() {
    validate_scopes(&json!({"AwsOrganizations": [{"OrganizationId": "o-abc", "OrganizationalUnitId": "ou-a-b"}]})).unwrap();
    for bad in [
        json!([]),
        json!({"AwsOrganizations": []}),
        json!({"Accounts": []}),
        json!({"AwsOrganizations": [{"OrgId": "o-1"}]}),
        json!({"AwsOrganizations": [{}]}),
    ] {
        assert!(validate_scopes(&bad).is_err(), "{bad}");
    }
}

#[test]
fn an_older_than_range_is_frozen_as_everything_before_it() {
    let older = json!({"CompositeFilters": [{"DateFilters": [{"FieldName": "finding_info.created_time_dt", "Filter": {"DateRange": {"Value": 30, "Unit": "DAYS", "Comparison": "OLDER_THAN"}}}]}], "CompositeOperator": "AND"});
    validate(&older, false).unwrap();
    let frozen = freeze(&older, now());
    assert_eq!(
        frozen["CompositeFilters"][0]["DateFilters"][0]["Filter"],
        json!({"Start": OPEN_START, "End": "2026-11-01T10:00:00.000Z"})
    );
}

#[test]
fn scopes_use_one_approach_a_request() {
    let whole = json!({"AwsOrganizations": [{"OrganizationId": "o-abcd1234567890"}]});
    validate_scopes(&whole).unwrap();
    let units = json!({"AwsOrganizations": [{"OrganizationalUnitId": "ou-ab12-cd345678"}, {"OrganizationId": "o-abcd1234567890", "OrganizationalUnitId": "ou-ab12-ef901234"}]});
    validate_scopes(&units).unwrap();
    let mixed = json!({"AwsOrganizations": [{"OrganizationId": "o-abcd1234567890"}, {"OrganizationalUnitId": "ou-ab12-cd345678"}]});
    let err = validate_scopes(&mixed).unwrap_err().to_string();
    assert!(err.contains("cannot be combined"), "{err}");
}

#[test]
fn filters_the_export_would_nest_past_the_apis_levels_are_refused() {
    let leaf = json!({"StringFilters": [string("severity", "High", "EQUALS")]});
    let two = json!({"CompositeFilters": [{"NestedCompositeFilters": [leaf.clone()], "Operator": "AND"}], "CompositeOperator": "AND"});
    validate(&two, false).unwrap();
    let three_anded = json!({"CompositeFilters": [{"NestedCompositeFilters": [{"NestedCompositeFilters": [leaf.clone()], "Operator": "AND"}], "Operator": "AND"}], "CompositeOperator": "AND"});
    validate(&three_anded, false).unwrap();
    let three_ored = json!({"CompositeFilters": [{"NestedCompositeFilters": [{"NestedCompositeFilters": [leaf.clone()], "Operator": "AND"}], "Operator": "AND"}, leaf], "CompositeOperator": "OR"});
    let err = validate(&three_ored, false).unwrap_err().to_string();
    assert!(err.contains("at most 3 levels"), "{err}");
    let frozen = freeze(&two, now());
    assert!(depth(&frozen) <= MAX_NESTING);
}
