//! The GetFindings request semantics as the API reference states them, written for the emulator
//! alone (it shares no code with the exporter it serves): string conditions, date conditions
//! (absolute and relative), timestamps, and the `Id` sort a request may ask for.

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use serde_json::Value;

/// The API a request came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// `POST /findings` (ASFF).
    GetFindings,
    /// `POST /findingsv2` (OCSF).
    GetFindingsV2,
}

/// A requested order of `Id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// `asc`.
    Asc,
    /// `desc`.
    Desc,
}

/// Reads a timestamp in the forms the reference's "Timestamps" section allows (RFC 3339 with
/// `Z` or an offset, any fractional digits), plus offsets without a colon and no offset (UTC).
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Some(time.with_timezone(&Utc));
    }
    if let Ok(time) = DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%#z") {
        return Some(time.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|naive| naive.and_utc())
}

/// Whether `value` passes one field's string conditions. The reference: CONTAINS, EQUALS and
/// PREFIX conditions on one field are joined by OR; NOT_CONTAINS, NOT_EQUALS and
/// PREFIX_NOT_EQUALS by AND; PREFIX conditions are applied first, then the exclusions. Values
/// are case sensitive. A finding without the field matches no positive condition.
pub fn string_matches(value: Option<&str>, conditions: &[Value]) -> bool {
    let mut any_positive = false;
    let mut positive_hit = false;
    for condition in conditions {
        let wanted = condition["Value"].as_str().unwrap_or_default();
        let comparison = condition["Comparison"].as_str().unwrap_or("EQUALS");
        let (negated, test): (bool, fn(&str, &str) -> bool) = match comparison {
            "EQUALS" => (false, |v, w| v == w),
            "PREFIX" => (false, |v, w| v.starts_with(w)),
            "CONTAINS" => (false, |v, w| v.contains(w)),
            "NOT_EQUALS" => (true, |v, w| v == w),
            "PREFIX_NOT_EQUALS" => (true, |v, w| v.starts_with(w)),
            "NOT_CONTAINS" => (true, |v, w| v.contains(w)),
            _ => return false,
        };
        let hit = value.is_some_and(|v| test(v, wanted));
        if negated {
            if hit {
                return false;
            }
        } else {
            any_positive = true;
            positive_hit |= hit;
        }
    }
    !any_positive || positive_hit
}

/// Whether a time passes one date condition: `Start` and `End` both inclusive, or a
/// `DateRange` of `Value` DAYS, `WITHIN` (the default: the last N days up to `now`) or
/// `OLDER_THAN` (before the last N days). A finding without the field matches none.
pub fn date_matches(time: Option<DateTime<Utc>>, condition: &Value, now: DateTime<Utc>) -> bool {
    let Some(time) = time else {
        return false;
    };
    if let Some(days) = condition
        .pointer("/DateRange/Value")
        .and_then(Value::as_i64)
    {
        let boundary = now - Duration::days(days);
        return match condition
            .pointer("/DateRange/Comparison")
            .and_then(Value::as_str)
        {
            Some("OLDER_THAN") => time <= boundary,
            _ => time >= boundary && time <= now,
        };
    }
    let bound = |key: &str| condition[key].as_str().and_then(parse_time);
    bound("Start").is_none_or(|start| time >= start) && bound("End").is_none_or(|end| time <= end)
}

/// The `Id` order a request's `SortCriteria` asks for (`None`: none), or the
/// InvalidInputException message for a sort the emulator does not apply (refused rather than
/// ignored, like an unsupported filter).
pub fn id_order(sort: &Value) -> Result<Option<Order>, String> {
    let criteria = match sort {
        Value::Null => return Ok(None),
        Value::Array(items) if items.is_empty() => return Ok(None),
        Value::Array(items) if items.len() == 1 => &items[0],
        _ => return Err("the emulator sorts on one criterion, Id".into()),
    };
    match (criteria["Field"].as_str(), criteria["SortOrder"].as_str()) {
        (Some("Id"), Some("asc") | None) => Ok(Some(Order::Asc)),
        (Some("Id"), Some("desc")) => Ok(Some(Order::Desc)),
        _ => Err(format!(
            "the emulator sorts on Id only, asc or desc (got {criteria})"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn conditions(list: &[(&str, &str)]) -> Vec<Value> {
        list.iter()
            .map(|(comparison, value)| json!({"Comparison": comparison, "Value": value}))
            .collect()
    }

    /// One example: the conditions, values that match them, values that do not.
    type Example<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str], &'a [&'a str]);

    /// The StringFilter reference's own examples, each with values it says match and do not.
    #[test]
    fn the_string_filter_references_examples_hold() {
        let table: &[Example] = &[
            (
                &[("CONTAINS", "CloudFront")],
                &["Amazon CloudFront logging"],
                &["CloudWatch alarms"],
            ),
            (
                &[("EQUALS", "123456789012")],
                &["123456789012"],
                &["123456789013", "12345678901"],
            ),
            (
                &[("PREFIX", "us")],
                &["us-east-1", "us-west-2"],
                &["af-south-1", "ap-east-1", "ca-central-1"],
            ),
            (
                &[("CONTAINS", "CloudFront"), ("CONTAINS", "CloudWatch")],
                &["CloudFront", "CloudWatch", "CloudFront and CloudWatch"],
                &["S3"],
            ),
            (
                &[("NOT_CONTAINS", "CloudFront")],
                &["CloudWatch"],
                &["Amazon CloudFront"],
            ),
            (
                &[("NOT_EQUALS", "AwsIamPolicy")],
                &["AwsIamRole", "AwsEc2Instance"],
                &["AwsIamPolicy"],
            ),
            (
                &[("PREFIX_NOT_EQUALS", "AwsIam")],
                &["AwsEc2Instance"],
                &["AwsIamPolicy", "AwsIamRole", "AwsIamUser"],
            ),
            (
                &[("PREFIX", "AwsIam"), ("NOT_EQUALS", "AwsIamPolicy")],
                &["AwsIamAccessKey", "AwsIamGroup", "AwsIamRole", "AwsIamUser"],
                &["AwsIamPolicy", "AwsEc2Instance"],
            ),
            (
                &[("PREFIX", "AwsIam"), ("PREFIX_NOT_EQUALS", "AwsIamPolicy")],
                &["AwsIamRole"],
                &["AwsIamPolicy", "AwsS3Bucket"],
            ),
            (
                &[("EQUALS", "Security Hub")],
                &["Security Hub"],
                &["security hub"],
            ),
        ];
        for (filter, matching, other) in table {
            let filter = conditions(filter);
            for value in *matching {
                assert!(string_matches(Some(value), &filter), "{value} {filter:?}");
            }
            for value in *other {
                assert!(!string_matches(Some(value), &filter), "{value} {filter:?}");
            }
        }
        assert!(!string_matches(None, &conditions(&[("EQUALS", "x")])));
        assert!(string_matches(None, &conditions(&[("NOT_EQUALS", "x")])));
    }

    #[test]
    fn date_conditions_are_inclusive_and_ranges_count_back_from_now() {
        let now = parse_time("2026-12-01T10:00:00Z").unwrap();
        let at = |text: &str| parse_time(text);
        let window =
            json!({"Start": "2026-11-01T00:00:00Z", "End": "2026-11-30T00:00:00.000+00:00"});
        assert!(date_matches(at("2026-11-01T00:00:00Z"), &window, now));
        assert!(date_matches(at("2026-11-30T01:00:00+01:00"), &window, now));
        assert!(!date_matches(at("2026-11-30T00:00:00.001Z"), &window, now));
        assert!(!date_matches(None, &window, now));
        let within = json!({"DateRange": {"Value": 7, "Unit": "DAYS"}});
        let older = json!({"DateRange": {"Value": 7, "Unit": "DAYS", "Comparison": "OLDER_THAN"}});
        assert!(date_matches(at("2026-11-25T00:00:00Z"), &within, now));
        assert!(!date_matches(at("2026-11-23T00:00:00Z"), &within, now));
        assert!(date_matches(at("2026-11-23T00:00:00Z"), &older, now));
        assert!(!date_matches(at("2026-11-25T00:00:00Z"), &older, now));
    }

    #[test]
    fn timestamps_in_every_allowed_form_are_one_instant() {
        let want = parse_time("2023-11-14T22:13:20.123Z").unwrap();
        for form in [
            "2023-11-14T22:13:20.123000000Z",
            "2023-11-14T23:13:20.123+01:00",
            "2023-11-14T22:13:20.123+0000",
            "2023-11-14T22:13:20.123",
        ] {
            assert_eq!(parse_time(form), Some(want), "{form}");
        }
    }
}
