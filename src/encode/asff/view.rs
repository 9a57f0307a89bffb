//! A lenient, borrowing view of the ASFF fields that become typed columns.
//!
//! Every field is optional and tolerant of the wrong JSON type (it is then `None`), so a finding
//! is never dropped for its shape: the full text always lands in `finding_json`.

use std::collections::BTreeMap;

use serde::Deserialize;

pub(crate) use crate::encode::lenient::{AnyText, Lenient, Number, Text};

/// True for text shaped like an AWS Region name: `us-east-1`, `us-gov-west-1`, `cn-north-1`.
fn is_region_name(text: &str) -> bool {
    let mut parts = text.split('-');
    let (Some(country), Some(last)) = (parts.next(), text.rsplit('-').next()) else {
        return false;
    };
    let middle: Vec<&str> = text.split('-').skip(1).collect();
    country.len() == 2
        && country.bytes().all(|b| b.is_ascii_lowercase())
        && middle.len() >= 2
        && middle[..middle.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && !last.is_empty()
        && last.bytes().all(|b| b.is_ascii_digit())
}

/// The ASFF fields the typed columns are made of.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct FindingView<'a> {
    #[serde(borrow)]
    pub(crate) id: Lenient<Text<'a>>,
    #[serde(borrow)]
    pub(crate) product_arn: Lenient<Text<'a>>,
    #[serde(borrow)]
    pub(crate) product_name: Lenient<Text<'a>>,
    #[serde(borrow)]
    pub(crate) company_name: Lenient<Text<'a>>,
    #[serde(borrow)]
    pub(crate) generator_id: Lenient<Text<'a>>,
    #[serde(borrow)]
    pub(crate) aws_account_id: Lenient<Text<'a>>,
    #[serde(borrow)]
    pub(crate) region: Lenient<Text<'a>>,
    #[serde(borrow)]
    pub(crate) types: Lenient<Vec<Text<'a>>>,
    #[serde(borrow)]
    pub(crate) title: Lenient<Text<'a>>,
    #[serde(borrow)]
    pub(crate) description: Lenient<Text<'a>>,
    #[serde(borrow)]
    pub(crate) severity: Lenient<Severity<'a>>,
    #[serde(borrow)]
    pub(crate) compliance: Lenient<StatusOnly<'a>>,
    #[serde(borrow)]
    pub(crate) workflow: Lenient<StatusOnly<'a>>,
    #[serde(borrow)]
    pub(crate) record_state: Lenient<Text<'a>>,
    #[serde(borrow)]
    pub(crate) created_at: Lenient<Text<'a>>,
    #[serde(borrow)]
    pub(crate) updated_at: Lenient<Text<'a>>,
    #[serde(borrow)]
    pub(crate) first_observed_at: Lenient<Text<'a>>,
    #[serde(borrow)]
    pub(crate) last_observed_at: Lenient<Text<'a>>,
    #[serde(borrow)]
    pub(crate) resources: Lenient<Vec<ResourceView<'a>>>,
    #[serde(borrow)]
    pub(crate) product_fields: Lenient<BTreeMap<Text<'a>, AnyText<'a>>>,
    #[serde(borrow)]
    pub(crate) user_defined_fields: Lenient<BTreeMap<Text<'a>, AnyText<'a>>>,
}

/// `Severity`: the label and the 0-100 normalized score.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct Severity<'a> {
    #[serde(borrow)]
    pub(crate) label: Lenient<Text<'a>>,
    pub(crate) normalized: Lenient<Number>,
}

/// `Compliance` / `Workflow`: only the status is a column.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct StatusOnly<'a> {
    #[serde(borrow)]
    pub(crate) status: Lenient<Text<'a>>,
}

/// One `Resources[]` entry: type and id (details stay in `finding_json`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct ResourceView<'a> {
    #[serde(borrow)]
    pub(crate) r#type: Lenient<Text<'a>>,
    #[serde(borrow)]
    pub(crate) id: Lenient<Text<'a>>,
}

impl<'a> FindingView<'a> {
    /// Parses one finding's JSON text; a document that is not an object gives an empty view.
    pub(crate) fn parse(text: &'a str) -> Self {
        serde_json::from_str(text).unwrap_or_default()
    }

    /// The Region: the `Region` field, else the Region in the product ARN when that field of
    /// the ARN is shaped like a Region (a malformed ARN gives none, not its service name).
    pub(crate) fn region(&self) -> Option<&str> {
        if let Some(region) = self.region.get() {
            return Some(region);
        }
        let arn = self.product_arn.get()?;
        let region = arn.split(':').nth(3)?;
        is_region_name(region).then_some(region)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_types_become_none_and_the_rest_still_parses() {
        let text = r#"{"Id":"f1","Title":42,"Types":"not-a-list","Severity":{"Label":"HIGH","Normalized":"70"},
                      "ProductFields":{"a/b:c":"1","bad":2,"esc":"a\"b"},"Resources":[{"Type":"AwsS3Bucket","Id":"arn:aws:s3:::b"}]}"#;
        let view = FindingView::parse(text);
        assert_eq!(view.id.get().map(|s| s.as_ref()), Some("f1"));
        assert!(view.title.get().is_none());
        assert!(view.types.get().is_none());
        let severity = view.severity.get().unwrap();
        assert_eq!(severity.label.get().map(|s| s.as_ref()), Some("HIGH"));
        assert_eq!(
            severity.normalized.get().map(|n| n.0),
            Some(70.0),
            "numeric string"
        );
        let fields = view
            .product_fields
            .get()
            .expect("a non-string value keeps the map");
        let values: Vec<&str> = fields.values().map(|v| v.0.as_ref()).collect();
        assert_eq!(values, ["1", "2", "a\"b"]);
        let resources = view.resources.get().unwrap();
        assert_eq!(
            resources[0].r#type.get().map(|s| s.as_ref()),
            Some("AwsS3Bucket")
        );
    }

    #[test]
    fn region_falls_back_to_the_product_arn() {
        let view = FindingView::parse(
            r#"{"ProductArn":"arn:aws:securityhub:eu-west-1::product/aws/guardduty"}"#,
        );
        assert_eq!(view.region(), Some("eu-west-1"));
        assert_eq!(FindingView::parse("[1,2]").region(), None);
        let malformed = FindingView::parse(r#"{"ProductArn":"arn:aws::securityhub:x:product/y"}"#);
        assert_eq!(
            malformed.region(),
            None,
            "not the service name of a malformed ARN"
        );
        for name in [
            "us-east-1",
            "us-gov-west-1",
            "cn-northwest-1",
            "ap-southeast-2",
        ] {
            assert!(is_region_name(name), "{name}");
        }
        for name in [
            "securityhub",
            "",
            "us-east",
            "US-EAST-1",
            "us--1",
            "1-east-1",
        ] {
            assert!(!is_region_name(name), "{name}");
        }
    }
}
