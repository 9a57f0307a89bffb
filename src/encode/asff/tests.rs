//! The ASFF table: column names, and typed cells read from real-shaped and odd findings.

use arrow::array::{
    Array, Int32Array, ListArray, MapArray, StringArray, TimestampMillisecondArray,
};

use super::*;
use crate::encode::{page_batch, RowOrigin};
use crate::source::Page;

#[test]
fn column_names_are_athena_safe_snake_case_and_unique() {
    let mut seen = std::collections::HashSet::new();
    for c in &ASFF.table().columns {
        assert!(
            c.name
                .chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_'),
            "{}",
            c.name
        );
        assert!(seen.insert(c.name), "duplicate {}", c.name);
    }
    assert!(!seen.contains(crate::sink::layout::PARTITION_COLUMN));
    assert_eq!(ASFF.table().columns.len(), 28);
}

fn batch_of(findings: &[&str]) -> arrow::record_batch::RecordBatch {
    let body = format!(r#"{{"Findings":[{}]}}"#, findings.join(","));
    let page = Page::parse(1, body, 1_700_000_000_123).unwrap();
    page_batch(&ASFF, &page, &RowOrigin::job("job-1"))
}

fn column<'b, T: 'static>(batch: &'b arrow::record_batch::RecordBatch, name: &str) -> &'b T {
    batch
        .column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name}"))
        .as_any()
        .downcast_ref::<T>()
        .unwrap_or_else(|| panic!("column {name} has another type"))
}

#[test]
fn each_column_reads_its_field_and_the_job_columns_follow() {
    let finding = r#"{"Id":"f1","ProductArn":"arn:aws:securityhub:eu-west-1::product/aws/guardduty","Types":["a/b"],"Severity":{"Label":"HIGH","Normalized":70.4},"UpdatedAt":"2026-01-02T03:04:05.5+01:00","Resources":[{"Type":"AwsS3Bucket","Id":"arn:aws:s3:::b"}],"ProductFields":{"k/1":"v"}}"#;
    let batch = batch_of(&[finding]);
    assert_eq!(batch.num_rows(), 1);
    assert_eq!(column::<StringArray>(&batch, "id").value(0), "f1");
    assert_eq!(
        column::<StringArray>(&batch, "region").value(0),
        "eu-west-1"
    );
    assert_eq!(
        column::<StringArray>(&batch, "severity_label").value(0),
        "HIGH"
    );
    assert_eq!(
        column::<Int32Array>(&batch, "severity_normalized").value(0),
        70
    );
    let updated = column::<TimestampMillisecondArray>(&batch, "updated_at");
    assert_eq!(updated.value(0), 1_767_319_445_500);
    assert!(column::<TimestampMillisecondArray>(&batch, "created_at").is_null(0));
    let resources = column::<ListArray>(&batch, "resource_ids").value(0);
    let resources = resources.as_any().downcast_ref::<StringArray>().unwrap();
    assert_eq!(resources.value(0), "arn:aws:s3:::b");
    let fields = column::<MapArray>(&batch, "product_fields");
    assert_eq!(fields.value_length(0), 1);
    assert!(column::<MapArray>(&batch, "user_defined_fields").is_null(0));
    assert_eq!(
        column::<StringArray>(&batch, "finding_json").value(0),
        finding
    );
    assert_eq!(
        column::<StringArray>(&batch, "export_job_id").value(0),
        "job-1"
    );
    let exported = column::<TimestampMillisecondArray>(&batch, "exported_at");
    assert_eq!(exported.value(0), 1_700_000_000_123);
}

#[test]
fn a_document_of_any_shape_still_gives_a_row_with_its_exact_text() {
    let odd = [r#"[1,2]"#, r#"{"Id":7,"Types":"x"}"#, r#""text""#];
    let batch = batch_of(&odd);
    assert_eq!(batch.num_rows(), 3);
    let json = column::<StringArray>(&batch, "finding_json");
    for (row, text) in odd.iter().enumerate() {
        assert_eq!(json.value(row), *text);
        assert!(column::<StringArray>(&batch, "id").is_null(row));
    }
}
