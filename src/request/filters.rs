//! Parses and validates GetFindings filters in the `aws securityhub get-findings --filters` format,
//! and freezes relative date ranges into absolute `Start`/`End` timestamps.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

use super::filter_fields::FILTER_FIELDS;
use crate::encode::timestamp::parse_iso8601;
use crate::error::{Error, Result};

/// The shape of filter an attribute takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterKind {
    /// `StringFilter`: Value + Comparison.
    String,
    /// `DateFilter`: Start + End, or DateRange.
    Date,
    /// `NumberFilter`: Gte / Lte / Eq / Gt / Lt.
    Number,
    /// `MapFilter`: Key + Value + Comparison.
    Map,
    /// `BooleanFilter`: Value.
    Boolean,
    /// `IpFilter`: Cidr.
    Ip,
    /// `KeywordFilter`: Value.
    Keyword,
}

/// The service's limit on attributes in one filter set.
pub const MAX_ATTRIBUTES: usize = 10;
/// The service's limit on conditions for one attribute.
pub const MAX_VALUES: usize = 20;

/// The comparisons of a `StringFilter` (both APIs; `CONTAINS_WORD` is GetFindingsV2's).
pub(super) const STRING_COMPARISONS: &[&str] = &[
    "EQUALS",
    "PREFIX",
    "NOT_EQUALS",
    "PREFIX_NOT_EQUALS",
    "CONTAINS",
    "NOT_CONTAINS",
];
/// The comparisons of a `MapFilter` (both APIs).
pub(super) const MAP_COMPARISONS: &[&str] = &["EQUALS", "NOT_EQUALS", "CONTAINS", "NOT_CONTAINS"];

/// Reads the JSON of `--filters`: inline, or `file://path` as the AWS CLI accepts (validated
/// later, with the rest of the plan).
pub fn read_arg(arg: &str) -> Result<Value> {
    let text = match arg.strip_prefix("file://") {
        Some(path) => std::fs::read_to_string(path).map_err(|e| {
            Error::Filters(format!(
                "cannot read filter file {path}: {e}; check the path"
            ))
        })?,
        None => arg.to_string(),
    };
    serde_json::from_str(&text).map_err(|e| {
        Error::Filters(format!(
            "not valid JSON ({e}); pass the same JSON as `aws securityhub get-findings --filters`"
        ))
    })
}

/// Checks a filter object against the service's rules without any network call. Attribute names
/// this build does not know are refused, unless `allow_unknown` (an attribute newer than this
/// build): then they are sent as written, with a warning, after only the checks every attribute
/// shares.
pub fn validate(filters: &Value, allow_unknown: bool) -> Result<()> {
    let Value::Object(fields) = filters else {
        return Err(Error::Filters(
            "expected a JSON object such as {\"RecordState\":[{\"Value\":\"ACTIVE\",\"Comparison\":\"EQUALS\"}]}".into(),
        ));
    };
    if fields.len() > MAX_ATTRIBUTES {
        return Err(Error::Filters(format!(
            "{} attributes given; Security Hub accepts at most {MAX_ATTRIBUTES}",
            fields.len()
        )));
    }
    for (name, conditions) in fields {
        let kind = match kind_of(name) {
            Ok(kind) => Some(kind),
            Err(_) if allow_unknown && !is_miscased(name) => {
                tracing::warn!("filter attribute {name} is unknown to this build; it is sent as written (--allow-unknown-filters)");
                None
            }
            Err(err) => return Err(err),
        };
        let Value::Array(conditions) = conditions else {
            return Err(Error::Filters(format!(
                "{name}: expected a list of conditions"
            )));
        };
        if conditions.len() > MAX_VALUES {
            return Err(Error::Filters(format!(
                "{name}: {} values given; Security Hub accepts at most {MAX_VALUES}",
                conditions.len()
            )));
        }
        let Some(kind) = kind else {
            if !conditions.iter().all(Value::is_object) {
                return Err(Error::Filters(format!(
                    "{name}: each condition must be an object"
                )));
            }
            continue;
        };
        for condition in conditions {
            validate_condition(name, kind, condition)?;
        }
        if kind == FilterKind::String {
            check_string_mix(name, conditions)?;
        }
    }
    Ok(())
}

/// The filter kind of a known attribute, or an error naming the closest known one.
pub fn kind_of(name: &str) -> Result<FilterKind> {
    match FILTER_FIELDS.binary_search_by(|(known, _)| known.cmp(&name)) {
        Ok(index) => Ok(FILTER_FIELDS[index].1),
        Err(_) => {
            let hint = FILTER_FIELDS
                .iter()
                .find(|(known, _)| known.eq_ignore_ascii_case(name))
                .map(|(known, _)| format!(" (did you mean {known}?)"))
                .unwrap_or_default();
            Err(Error::Filters(format!(
                "unknown filter attribute {name}{hint}; see the AwsSecurityFindingFilters reference, or pass --allow-unknown-filters for an attribute newer than this build"
            )))
        }
    }
}

/// A known attribute written in the wrong case: always a mistake, never a newer attribute.
fn is_miscased(name: &str) -> bool {
    FILTER_FIELDS
        .iter()
        .any(|(known, _)| known.eq_ignore_ascii_case(name) && *known != name)
}

fn validate_condition(name: &str, kind: FilterKind, condition: &Value) -> Result<()> {
    let Value::Object(obj) = condition else {
        return Err(Error::Filters(format!(
            "{name}: each condition must be an object"
        )));
    };
    let allowed: &[&str] = match kind {
        FilterKind::String => &["Value", "Comparison"],
        FilterKind::Map => &["Key", "Value", "Comparison"],
        FilterKind::Date => &["Start", "End", "DateRange"],
        FilterKind::Number => &["Gte", "Lte", "Eq", "Gt", "Lt"],
        FilterKind::Boolean | FilterKind::Keyword => &["Value"],
        FilterKind::Ip => &["Cidr"],
    };
    if let Some(extra) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(Error::Filters(format!(
            "{name}: unexpected key {extra}; a {kind:?} filter takes {}",
            allowed.join(", ")
        )));
    }
    match kind {
        FilterKind::String => {
            need_string(name, obj, "Value")?;
            need_comparison(name, obj, STRING_COMPARISONS)
        }
        FilterKind::Map => {
            need_string(name, obj, "Key")?;
            need_string(name, obj, "Value")?;
            need_comparison(name, obj, MAP_COMPARISONS)
        }
        FilterKind::Date => validate_date(name, obj),
        FilterKind::Number => {
            if obj.is_empty() || obj.values().any(|v| !v.is_number()) {
                return Err(Error::Filters(format!(
                    "{name}: a number filter needs numeric Gte, Lte, Eq, Gt or Lt"
                )));
            }
            Ok(())
        }
        FilterKind::Boolean => match obj.get("Value") {
            Some(Value::Bool(_)) => Ok(()),
            _ => Err(Error::Filters(format!(
                "{name}: Value must be true or false"
            ))),
        },
        FilterKind::Keyword => need_string(name, obj, "Value"),
        FilterKind::Ip => need_string(name, obj, "Cidr"),
    }
}

fn need_string(name: &str, obj: &Map<String, Value>, key: &str) -> Result<()> {
    match obj.get(key) {
        Some(Value::String(_)) => Ok(()),
        _ => Err(Error::Filters(format!("{name}: {key} must be a string"))),
    }
}

fn need_comparison(name: &str, obj: &Map<String, Value>, allowed: &[&str]) -> Result<()> {
    match obj.get("Comparison").and_then(Value::as_str) {
        Some(c) if allowed.contains(&c) => Ok(()),
        Some(c) => Err(Error::Filters(format!(
            "{name}: unknown Comparison {c}; use one of {}",
            allowed.join(", ")
        ))),
        None => Err(Error::Filters(format!(
            "{name}: Comparison is required (one of {})",
            allowed.join(", ")
        ))),
    }
}

pub(crate) fn validate_date(name: &str, obj: &Map<String, Value>) -> Result<()> {
    if let Some(range) = obj.get("DateRange") {
        if obj.contains_key("Start") || obj.contains_key("End") {
            return Err(Error::Filters(format!(
                "{name}: give either DateRange or Start and End, not both"
            )));
        }
        let value = range.get("Value").and_then(Value::as_i64);
        let unit = range.get("Unit").and_then(Value::as_str);
        if let Some(other) = range
            .get("Comparison")
            .filter(|c| !matches!(c.as_str(), Some("WITHIN" | "OLDER_THAN")))
        {
            return Err(Error::Filters(format!(
                "{name}: DateRange Comparison {other} is not one Security Hub knows: use WITHIN (the last Value days, the default) or OLDER_THAN (before the last Value days)"
            )));
        }
        return match (value, unit) {
            (Some(v), Some("DAYS")) if v > 0 => Ok(()),
            _ => Err(Error::Filters(format!(
                "{name}: DateRange needs a positive Value and Unit DAYS"
            ))),
        };
    }
    match (obj.get("Start"), obj.get("End")) {
        (Some(start), Some(end)) => {
            parse_date(name, "Start", start)?;
            parse_date(name, "End", end)?;
            Ok(())
        }
        (Some(_), None) => Err(Error::Filters(format!(
            "{name}: Start without End is rejected by Security Hub; add End (e.g. the current time)"
        ))),
        (None, Some(_)) => Err(Error::Filters(format!(
            "{name}: End without Start is rejected by Security Hub; add Start"
        ))),
        (None, None) => Err(Error::Filters(format!(
            "{name}: a date filter needs Start and End, or DateRange"
        ))),
    }
}

fn parse_date(name: &str, key: &str, value: &Value) -> Result<DateTime<Utc>> {
    value
        .as_str()
        .and_then(crate::encode::timestamp::parse_iso8601)
        .ok_or_else(|| {
            Error::Filters(format!(
                "{name}: {key} must be an ISO-8601 timestamp such as 2026-01-31T00:00:00Z"
            ))
        })
}

/// The combinations the service refuses on one attribute (StringFilter reference): CONTAINS only
/// with CONTAINS, NOT_CONTAINS only with NOT_CONTAINS, EQUALS never with NOT_EQUALS or
/// PREFIX_NOT_EQUALS. PREFIX may be combined with NOT_EQUALS and PREFIX_NOT_EQUALS (the service
/// applies the PREFIX filters first, then excludes).
fn check_string_mix(name: &str, conditions: &[Value]) -> Result<()> {
    let used: Vec<&str> = conditions
        .iter()
        .filter_map(|c| c.get("Comparison").and_then(Value::as_str))
        .collect();
    let has = |c: &str| used.contains(&c);
    for alone in ["CONTAINS", "NOT_CONTAINS"] {
        if has(alone) && used.iter().any(|c| *c != alone) {
            return Err(Error::Filters(format!(
                "{name}: {alone} can only be combined with other {alone} conditions on one attribute"
            )));
        }
    }
    if has("EQUALS") && (has("NOT_EQUALS") || has("PREFIX_NOT_EQUALS")) {
        return Err(Error::Filters(format!(
            "{name}: EQUALS cannot be mixed with NOT_EQUALS or PREFIX_NOT_EQUALS on one attribute (use PREFIX with them instead)"
        )));
    }
    Ok(())
}

/// Replaces every relative `DateRange` by absolute `Start`/`End` as of `now`, so the request
/// never changes between pages (a changed request invalidates the NextToken).
pub fn freeze(filters: &Value, now: DateTime<Utc>) -> Value {
    let mut frozen = filters.clone();
    if let Value::Object(fields) = &mut frozen {
        for conditions in fields.values_mut().filter_map(Value::as_array_mut) {
            for condition in conditions.iter_mut().filter_map(Value::as_object_mut) {
                resolve_date_range(condition, now);
            }
        }
    }
    frozen
}

/// Replaces a date filter's relative `DateRange` (if any) by the absolute `Start` and `End` it
/// means at `now`, as the API reference defines it: `WITHIN` (the default) N days is from
/// `now - N days` to `now`; `OLDER_THAN` N days is every date up to `now - N days`.
pub fn resolve_date_range(filter: &mut Map<String, Value>, now: DateTime<Utc>) {
    let Some(range) = filter.get("DateRange") else {
        return;
    };
    let Some(days) = range.get("Value").and_then(Value::as_i64) else {
        return;
    };
    let boundary = iso(now - Duration::days(days));
    let (start, end) = match range.get("Comparison").and_then(Value::as_str) {
        Some("OLDER_THAN") => (OPEN_START.to_string(), boundary),
        _ => (boundary, iso(now)),
    };
    filter.remove("DateRange");
    filter.insert("Start".into(), start.into());
    filter.insert("End".into(), end.into());
}

/// True when some condition is a relative `DateRange` (resolved once, when a job is created).
pub fn has_relative_range(filters: &Value) -> bool {
    filters.as_object().is_some_and(|fields| {
        fields
            .values()
            .filter_map(Value::as_array)
            .flatten()
            .any(|condition| condition.get("DateRange").is_some())
    })
}

/// The earliest `UpdatedAt` a job's window starts at when the user's filters leave it open.
pub const OPEN_START: &str = "1970-01-01T00:00:00.000Z";

/// `filters` with their `UpdatedAt` bounded at `end` when they leave it open: a finding updated
/// after a job froze its request is left for the next run instead of moving between the pages
/// of this one. User filters with their own `UpdatedAt` conditions are kept as given (they are
/// bounded already: every date condition has an end); filters already using every attribute
/// Security Hub accepts are kept as given too (`None`).
pub fn bound_updated_at(filters: &Value, end: DateTime<Utc>) -> Option<Value> {
    let fields = filters.as_object()?;
    if fields.contains_key("UpdatedAt") {
        return Some(filters.clone());
    }
    if fields.len() >= MAX_ATTRIBUTES {
        return None;
    }
    let mut bounded = fields.clone();
    bounded.insert(
        "UpdatedAt".into(),
        serde_json::json!([{"Start": OPEN_START, "End": iso(end)}]),
    );
    Some(Value::Object(bounded))
}

/// The request's filters over the findings updated after its window's end (or after
/// `started`, if later) up to `until`, or `None` when the window has no end (or a relative one)
/// to check after; with the instant a changed finding is updated at or after.
pub fn changed_since_filters(
    filters: &Value,
    started: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Option<(Value, DateTime<Utc>)> {
    let ranges = filters.get("UpdatedAt")?.as_array()?;
    let mut end: Option<DateTime<Utc>> = None;
    for range in ranges {
        let this = parse_iso8601(range.get("End")?.as_str()?)?;
        end = end.max(Some(this));
    }
    let start = end?.max(started) + Duration::milliseconds(1);
    let mut changed = filters.as_object()?.clone();
    changed.insert(
        "UpdatedAt".into(),
        json!([{"Start": iso(start), "End": iso(until)}]),
    );
    Some((Value::Object(changed), start))
}

/// Millisecond ISO-8601 UTC form used for frozen timestamps.
pub fn iso(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
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
        let odd = json!({"UpdatedAt": [{"DateRange": {"Value": 7, "Unit": "DAYS", "Comparison": "NEWER"}}]});
        assert!(rejected(odd).contains("use WITHIN"));
    }
}
