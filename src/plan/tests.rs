use super::*;
use serde_json::json;

fn plan_of(event: Value) -> std::result::Result<ExportPlan, String> {
    serde_json::from_value(event).map_err(|e| e.to_string())
}

#[test]
fn an_event_with_cli_names_makes_the_same_plan_as_the_flags() {
    let from_event = plan_of(json!({
        "destination": "s3://lake/sh",
        "region": "eu-west-1",
        "filters": {"RecordState": [{"Value": "ACTIVE", "Comparison": "EQUALS"}]},
        "job_id": "nightly",
        "max_duration": "13m"
    }))
    .unwrap();
    let flags = ExportRequest {
        destination: "s3://lake/sh".into(),
        aws: AwsSettings {
            region: Some("eu-west-1".into()),
            ..AwsSettings::default()
        },
        filters: Some(FiltersArg::Text(
            r#"{"RecordState":[{"Value":"ACTIVE","Comparison":"EQUALS"}]}"#.into(),
        )),
        streams: StreamArgs::default(),
        api: Api::GetFindings,
        scopes: None,
        allow_unknown_filters: false,
        job_id: Some("nightly".into()),
        rate: 3.0,
        burst: 6,
        max_shards: 16,
        trust_id_order: false,
        progress_parameter: None,
        part_rows: 50_000,
        compression: Compression::Zstd,
        max_duration: Some(Duration::from_secs(13 * 60)),
        restart: false,
        total: crate::plan::TotalMode::Auto,
    };
    assert_eq!(from_event, ExportPlan::new(&flags).unwrap());
    assert_eq!(
        from_event.progress_parameter("nightly").as_deref(),
        Some("/sechub-export/nightly/exported-count")
    );
}

#[test]
fn ssm_parameter_names_follow_the_aws_rules() {
    let deep = format!("/{}", vec!["l"; 16].join("/"));
    for bad in [
        "a/b",
        "/a//b",
        "/a/",
        "/aws/x",
        "ssm-x",
        "/x y",
        deep.as_str(),
        "",
    ] {
        assert!(validate_parameter_name(bad).is_err(), "{bad:?}");
    }
    let fifteen = format!("/{}", vec!["l"; 15].join("/"));
    for good in [
        "count",
        "/sechub-export/job_1/exported-count",
        fifteen.as_str(),
    ] {
        assert!(validate_parameter_name(good).is_ok(), "{good:?}");
    }
}

#[test]
fn a_plan_round_trips_through_json() {
    let plan = plan_of(
        json!({"destination": "/tmp/lake", "progress_parameter": "none", "rate": 10, "burst": 20}),
    )
    .unwrap();
    let text = serde_json::to_string(&plan).unwrap();
    assert_eq!(serde_json::from_str::<ExportPlan>(&text).unwrap(), plan);
    assert_eq!(plan.progress_parameter("j"), None);
}

#[test]
fn an_event_for_the_new_security_hub_plans_a_v2_job_and_round_trips() {
    let filters = json!({"CompositeFilters": [{"StringFilters": [{"FieldName": "severity", "Filter": {"Value": "High", "Comparison": "EQUALS"}}]}]});
    let scopes = json!({"AwsOrganizations": [{"OrganizationalUnitId": "ou-ab12-cd34"}]});
    let plan = plan_of(
        json!({"destination": "s3://lake/sh", "api": "v2", "filters": filters, "scopes": scopes}),
    )
    .unwrap();
    assert_eq!(plan.api, Api::GetFindingsV2);
    assert_eq!(plan.filters, filters);
    assert_eq!(plan.scopes, Some(scopes));
    let again: ExportPlan = serde_json::from_str(&serde_json::to_string(&plan).unwrap()).unwrap();
    assert_eq!(again, plan);
    let v1 = plan_of(json!({"destination": "s3://lake/sh"})).unwrap();
    assert_eq!(v1.api, Api::GetFindings);
    assert!(
        !serde_json::to_string(&v1).unwrap().contains("api"),
        "a v1 plan serializes as before"
    );
    let err = plan_of(
        json!({"destination": "s3://lake/sh", "api": "v2", "filters": {"SeverityLabel": []}}),
    )
    .unwrap_err();
    assert!(err.to_string().contains("--api v1"), "{err}");
}

#[test]
fn an_event_that_fails_an_offline_check_makes_no_plan() {
    for (event, needle) in [
        (json!({"region": "us-east-1"}), "destination"),
        (json!({"destination": "gs://x"}), "invalid --destination"),
        (
            json!({"destination": "/tmp/l", "filters": {"Bogus": []}}),
            "unknown filter attribute",
        ),
        (
            json!({"destination": "/tmp/l", "job_id": "a/b"}),
            "invalid --job-id",
        ),
        (
            json!({"destination": "/tmp/l", "part_rows": 0}),
            "invalid --part-rows",
        ),
        (
            json!({"destination": "/tmp/l", "rate": 0}),
            "invalid --rate",
        ),
        (
            json!({"destination": "/tmp/l", "progress_parameter": "/aws/x"}),
            "invalid --progress-parameter",
        ),
        (
            json!({"destination": "/tmp/l", "max_duration": "0s"}),
            "invalid --max-duration",
        ),
        (
            json!({"destination": "/tmp/l", "max_duration": "soon"}),
            "soon",
        ),
    ] {
        let err = plan_of(event.clone()).unwrap_err();
        assert!(err.contains(needle), "{event}: {err}");
    }
}
