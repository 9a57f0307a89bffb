use arrow::array::{
    Array, Int32Array, Int64Array, ListArray, StringArray, TimestampMillisecondArray,
};

use super::*;
use crate::encode::{page_batch, RowOrigin};
use crate::source::Page;

const COMPLIANCE: &str = r#"{"activity_id":1,"activity_name":"Create","category_name":"Findings","category_uid":2,"class_name":"Compliance Finding","class_uid":2003,"type_uid":200301,"severity":"High","severity_id":4,"status":"New","status_id":1,"cloud":{"account":{"uid":"111111111111","type":"AWS Account"},"provider":"AWS","region":"eu-west-1"},"compliance":{"status":"Fail","control":"S3.1"},"finding_info":{"uid":"arn:aws:securityhub:eu-west-1:111111111111:security-control/S3.1/finding/1","title":"S3 Block Public Access \u00e9 \ud83d\ude00","desc":"d","created_time":1767225600000,"modified_time":1767312000123,"first_seen_time_dt":"2026-01-01T02:00:00+02:00","last_seen_time_dt":"2026-01-02T00:00:00.5Z"},"metadata":{"product":{"name":"Security Hub","uid":"arn:aws:securityhub:eu-west-1::product/aws/securityhub"},"version":"1.6.0"},"resources":[{"type":"AWS::S3::Bucket","uid":"arn:aws:s3:::b"},{"type":"AWS::Account"}],"vulnerabilities":[{"cve":{"uid":"CVE-2026-0001"}},{"title":"no cve"}],"unmapped":{"x":1},"x_new_field":[1]}"#;

fn batch(texts: &[&str]) -> arrow::record_batch::RecordBatch {
    let body = format!("{{\"Findings\":[{}]}}", texts.join(","));
    let page = Page::parse(1, body, 1_767_400_000_000).unwrap();
    page_batch(&OCSF, &page, &RowOrigin::job("job"))
}

fn column<'b, T: 'static>(batch: &'b arrow::record_batch::RecordBatch, name: &str) -> &'b T {
    batch
        .column_by_name(name)
        .unwrap()
        .as_any()
        .downcast_ref::<T>()
        .unwrap()
}

#[test]
fn typed_columns_read_the_ocsf_attributes_and_times_become_utc_millis() {
    let b = batch(&[COMPLIANCE]);
    let s = |name| column::<StringArray>(&b, name).value(0).to_string();
    assert_eq!(
        s("finding_uid"),
        "arn:aws:securityhub:eu-west-1:111111111111:security-control/S3.1/finding/1"
    );
    assert_eq!(
        s("product_uid"),
        "arn:aws:securityhub:eu-west-1::product/aws/securityhub"
    );
    assert_eq!(s("product_name"), "Security Hub");
    assert_eq!(s("class_name"), "Compliance Finding");
    assert_eq!(s("title"), "S3 Block Public Access \u{e9} \u{1f600}");
    assert_eq!(s("compliance_status"), "Fail");
    assert_eq!(s("account_uid"), "111111111111");
    assert_eq!(s("region"), "eu-west-1");
    assert_eq!(s("finding_json"), COMPLIANCE, "kept byte for byte");
    assert_eq!(column::<Int32Array>(&b, "class_uid").value(0), 2003);
    assert_eq!(column::<Int32Array>(&b, "severity_id").value(0), 4);
    assert_eq!(column::<Int64Array>(&b, "type_uid").value(0), 200301);
    let t = |name| column::<TimestampMillisecondArray>(&b, name).value(0);
    assert_eq!(t("created_time"), 1_767_225_600_000);
    assert_eq!(t("modified_time"), 1_767_312_000_123);
    assert_eq!(
        t("first_seen_time"),
        1_767_225_600_000,
        "an offset is converted to UTC"
    );
    assert_eq!(t("last_seen_time"), 1_767_312_000_500);
    let list = |name| {
        let l = column::<ListArray>(&b, name).value(0);
        let l = l.as_any().downcast_ref::<StringArray>().unwrap().clone();
        (0..l.len())
            .map(|i| l.is_valid(i).then(|| l.value(i).to_string()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        list("resource_types"),
        [Some("AWS::S3::Bucket".into()), Some("AWS::Account".into())]
    );
    assert_eq!(list("resource_uids"), [Some("arn:aws:s3:::b".into()), None]);
    assert_eq!(
        list("vulnerability_uids"),
        [Some("CVE-2026-0001".into()), None]
    );
    assert_eq!(
        OCSF.updated_at(COMPLIANCE).unwrap().timestamp_millis(),
        1_767_312_000_123
    );
}

#[test]
fn a_document_of_any_shape_is_a_row_never_dropped() {
    let odd = [
        r#"{"class_uid":"2003","finding_info":"not an object","cloud":{"region":7}}"#,
        "[1,2]",
        r#"{}"#,
    ];
    let b = batch(&odd);
    assert_eq!(b.num_rows(), 3);
    let json = column::<StringArray>(&b, "finding_json");
    for (i, text) in odd.iter().enumerate() {
        assert_eq!(json.value(i), *text);
    }
    assert_eq!(
        column::<Int32Array>(&b, "class_uid").value(0),
        2003,
        "a numeric string"
    );
    assert!(column::<StringArray>(&b, "finding_uid").is_null(0));
    assert!(column::<StringArray>(&b, "region").is_null(0));
    assert!(column::<TimestampMillisecondArray>(&b, "modified_time").is_null(1));
}

#[test]
fn the_table_is_keyed_on_the_ocsf_identity() {
    let table = OCSF.table();
    assert_eq!(table.dir, "findings_ocsf");
    assert_eq!(
        table.identity,
        ["account_uid", "finding_uid", "product_uid"]
    );
    assert_eq!(table.version, "modified_time");
    assert!(
        table.columns.iter().all(|c| c.name != "unmapped"),
        "unmapped stays in finding_json"
    );
}
