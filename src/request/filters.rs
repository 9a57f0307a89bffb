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
        let trimmed = arg.trim_start();
        let hint = if !arg.starts_with("file://")
            && !trimmed.starts_with('{')
            && std::path::Path::new(arg).is_file()
        {
            format!("; {arg} is a file: give it as file://{arg}")
        } else {
            "; pass the same JSON as `aws securityhub get-findings --filters`, or file://path to a file holding it".into()
        };
        Error::Filters(format!("not valid JSON ({e}){hint}"))
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
mod tests;
