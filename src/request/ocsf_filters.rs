//! GetFindingsV2 (OCSF) filters in the `aws securityhub get-findings-v2 --filters` format:
//! `{"CompositeFilters": [...], "CompositeOperator": "AND" | "OR"}`, checked against the limits
//! the API states before any network call, frozen (relative date ranges resolved) and bounded
//! on `finding_info.modified_time_dt` like the ASFF request is on `UpdatedAt`.

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Map, Value};

use super::filters::{iso, MAP_COMPARISONS, OPEN_START, STRING_COMPARISONS};
use super::ocsf_fields::{
    BOOLEAN_FIELDS, DATE_FIELDS, IP_FIELDS, MAP_FIELDS, NUMBER_FIELDS, STRING_FIELDS,
};
use crate::error::{Error, Result};

/// Composite filters at one level (the API's stated limit).
pub const MAX_COMPOSITES: usize = 10;
/// Filters of one type inside one composite filter (the API's stated limit).
pub const MAX_PER_TYPE: usize = 20;
/// `Scopes.AwsOrganizations` entries (the API's stated limit).
pub const MAX_SCOPES: usize = 10;
/// The date field every frozen request is bounded on: when a finding last changed.
pub const MODIFIED_FIELD: &str = "finding_info.modified_time_dt";

const OPERATORS: &[&str] = &["AND", "OR"];
/// The filter types of a composite filter, with the field names the SDK's model knows.
const FILTER_TYPES: &[(&str, &[&str])] = &[
    ("StringFilters", STRING_FIELDS),
    ("DateFilters", DATE_FIELDS),
    ("BooleanFilters", BOOLEAN_FIELDS),
    ("NumberFilters", NUMBER_FIELDS),
    ("MapFilters", MAP_FIELDS),
    ("IpFilters", IP_FIELDS),
];

fn bad(message: String) -> Error {
    Error::Filters(message)
}

/// Checks an OCSF filter object against the API's rules without any network call. Field names
/// this build does not know are refused unless `allow_unknown` (a field newer than this build).
pub fn validate(filters: &Value, allow_unknown: bool) -> Result<()> {
    let Some(top) = filters.as_object() else {
        return Err(bad(
            "--api v2 filters must be a JSON object such as {\"CompositeFilters\": [...], \"CompositeOperator\": \"AND\"}".into(),
        ));
    };
    if top.is_empty() {
        return Ok(());
    }
    if let Some(key) = top
        .keys()
        .find(|k| !matches!(k.as_str(), "CompositeFilters" | "CompositeOperator"))
    {
        return Err(bad(format!(
            "unknown key {key:?} in --api v2 filters: use CompositeFilters and CompositeOperator (the ASFF filter format is for --api v1)"
        )));
    }
    validate_level(
        top,
        "CompositeFilters",
        "CompositeOperator",
        "",
        allow_unknown,
    )?;
    // The export ANDs the filters with its own composite (the freeze window, an account's own
    // findings), nesting them one level deeper when they combine with OR or fill every slot.
    let sent = and_with(filters, json!({}));
    if depth(&sent) > MAX_NESTING {
        return Err(bad(format!(
            "the filters nest {} levels deep, and the export adds its own window around them when they combine with OR or use all {MAX_COMPOSITES} slots; GetFindingsV2 takes at most {MAX_NESTING} levels: flatten one level",
            depth(filters)
        )));
    }
    Ok(())
}

/// Levels of composite filters GetFindingsV2 takes (the top-level list and two levels of
/// `NestedCompositeFilters`).
pub const MAX_NESTING: usize = 3;

/// Levels of composite filters in `filters`: 1 for the top-level list, one more for each level
/// of `NestedCompositeFilters` below it.
fn depth(filters: &Value) -> usize {
    fn below(composites: Option<&Value>) -> usize {
        composites
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|c| 1 + below(c.get("NestedCompositeFilters")))
            .max()
            .unwrap_or(0)
    }
    below(filters.get("CompositeFilters"))
}

/// Checks one level of composite filters: at most [`MAX_COMPOSITES`], and an operator when
/// there are several.
fn validate_level(
    object: &Map<String, Value>,
    list_key: &str,
    operator_key: &str,
    path: &str,
    allow_unknown: bool,
) -> Result<()> {
    let composites = match object.get(list_key) {
        None => &Vec::new(),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(bad(format!("{path}{list_key} must be a list"))),
    };
    if composites.len() > MAX_COMPOSITES {
        return Err(bad(format!(
            "{path}{list_key} has {} entries; the API takes at most {MAX_COMPOSITES}",
            composites.len()
        )));
    }
    check_operator(object.get(operator_key), &format!("{path}{operator_key}"))?;
    if composites.len() > 1 && object.get(operator_key).is_none() && path.is_empty() {
        return Err(bad(format!(
            "{list_key} has {} entries but no {operator_key}: say how they combine, AND or OR",
            composites.len()
        )));
    }
    for (n, composite) in composites.iter().enumerate() {
        let here = format!("{path}{list_key}[{n}].");
        validate_composite(composite, &here, allow_unknown)?;
    }
    Ok(())
}

fn check_operator(operator: Option<&Value>, name: &str) -> Result<()> {
    match operator {
        None => Ok(()),
        Some(Value::String(op)) if OPERATORS.contains(&op.as_str()) => Ok(()),
        Some(other) => Err(bad(format!("{name} is {other}; use AND or OR"))),
    }
}

fn validate_composite(composite: &Value, path: &str, allow_unknown: bool) -> Result<()> {
    let Some(object) = composite.as_object() else {
        return Err(bad(format!("{path} a composite filter must be an object")));
    };
    let mut conditions = 0;
    for (key, value) in object {
        match key.as_str() {
            "Operator" => check_operator(Some(value), &format!("{path}Operator"))?,
            "NestedCompositeFilters" => {
                validate_level(object, key, "Operator", path, allow_unknown)?;
                conditions += value.as_array().map_or(0, Vec::len);
            }
            _ => {
                let Some((_, fields)) = FILTER_TYPES.iter().find(|(name, _)| name == key) else {
                    return Err(bad(format!(
                        "{path}{key} is not a filter type; use {}, NestedCompositeFilters or Operator",
                        FILTER_TYPES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
                    )));
                };
                let items = value
                    .as_array()
                    .ok_or_else(|| bad(format!("{path}{key} must be a list")))?;
                if items.len() > MAX_PER_TYPE {
                    return Err(bad(format!(
                        "{path}{key} has {} filters; the API takes at most {MAX_PER_TYPE} of one type in a composite filter",
                        items.len()
                    )));
                }
                for (n, item) in items.iter().enumerate() {
                    validate_filter(
                        key,
                        fields,
                        item,
                        &format!("{path}{key}[{n}]"),
                        allow_unknown,
                    )?;
                }
                conditions += items.len();
            }
        }
    }
    if conditions == 0 {
        return Err(bad(format!(
            "{path} a composite filter needs at least one filter"
        )));
    }
    Ok(())
}

fn validate_filter(
    kind: &str,
    fields: &[&str],
    item: &Value,
    path: &str,
    allow_unknown: bool,
) -> Result<()> {
    let field = item.get("FieldName").and_then(Value::as_str);
    let Some(field) = field else {
        return Err(bad(format!("{path}: FieldName is required")));
    };
    if !fields.contains(&field) {
        if !allow_unknown {
            return Err(bad(format!(
                "{path}: {field:?} is not a field of {kind} (see `aws securityhub get-findings-v2 help`); pass --allow-unknown-filters to send a field newer than this build"
            )));
        }
        tracing::warn!("{path}: {field:?} is unknown to this build; sent as written");
    }
    let Some(filter) = item.get("Filter").and_then(Value::as_object) else {
        return Err(bad(format!("{path} ({field}): Filter must be an object")));
    };
    let name = format!("{path} ({field})");
    let need_str = |key: &str| match filter.get(key) {
        Some(Value::String(_)) => Ok(()),
        _ => Err(bad(format!("{name}: {key} must be a string"))),
    };
    let need_comparison = |allowed: &[&str]| match filter.get("Comparison").and_then(Value::as_str)
    {
        Some(c) if allowed.contains(&c) => Ok(()),
        _ => Err(bad(format!(
            "{name}: Comparison must be one of {}",
            allowed.join(", ")
        ))),
    };
    match kind {
        "StringFilters" => {
            need_str("Value")?;
            need_comparison(&[STRING_COMPARISONS, &["CONTAINS_WORD"]].concat())
        }
        "MapFilters" => {
            need_str("Key")?;
            need_str("Value")?;
            need_comparison(MAP_COMPARISONS)
        }
        "BooleanFilters" => match filter.get("Value") {
            Some(Value::Bool(_)) => Ok(()),
            _ => Err(bad(format!("{name}: Value must be true or false"))),
        },
        "IpFilters" => need_str("Cidr"),
        "NumberFilters" => {
            let bounds = ["Eq", "Gte", "Lte", "Gt", "Lt"];
            if !filter.keys().any(|k| bounds.contains(&k.as_str()))
                || filter
                    .iter()
                    .any(|(k, v)| !bounds.contains(&k.as_str()) || !v.is_number())
            {
                return Err(bad(format!(
                    "{name}: give numbers for one or more of Eq, Gte, Lte, Gt, Lt"
                )));
            }
            Ok(())
        }
        _ => super::filters::validate_date(&name, filter),
    }
}

/// The date filters of every level, mutably (relative ranges are resolved in place).
fn for_each_date_filter(filters: &mut Value, f: &mut impl FnMut(&mut Map<String, Value>)) {
    let Some(object) = filters.as_object_mut() else {
        return;
    };
    for (key, value) in object.iter_mut() {
        let Some(items) = value.as_array_mut() else {
            continue;
        };
        for item in items {
            match key.as_str() {
                "CompositeFilters" | "NestedCompositeFilters" => for_each_date_filter(item, f),
                "DateFilters" => {
                    if let Some(filter) = item.get_mut("Filter").and_then(Value::as_object_mut) {
                        f(filter)
                    }
                }
                _ => {}
            }
        }
    }
}

/// True when some date filter is a relative `DateRange`.
pub fn has_relative_range(filters: &Value) -> bool {
    let mut found = false;
    for_each_date_filter(&mut filters.clone(), &mut |f| {
        found |= f.contains_key("DateRange")
    });
    found
}

/// The filters with relative date ranges resolved at `now`, and every finding modified after
/// `now` left out: the user's composite filters ANDed with `modified_time_dt <= now` (wrapped as
/// one nested composite when they combine with OR or use every slot).
pub fn freeze(filters: &Value, now: DateTime<Utc>) -> Value {
    let mut resolved = filters.clone();
    for_each_date_filter(&mut resolved, &mut |filter| {
        super::filters::resolve_date_range(filter, now)
    });
    with_modified_window(&resolved, OPEN_START.to_string(), iso(now))
}

/// The account a finding belongs to.
pub const ACCOUNT_FIELD: &str = "cloud.account.uid";

/// `filters` keeping only the findings account `account` owns (`cloud.account.uid EQUALS` it):
/// what an account's stream reads when other accounts in the job have streams of their own.
pub fn own_account(filters: &Value, account: &str) -> Value {
    let owned = json!({"StringFilters": [{"FieldName": ACCOUNT_FIELD, "Filter": {"Value": account, "Comparison": "EQUALS"}}]});
    and_with(filters, owned)
}

/// `filters` ANDed with one date filter on [`MODIFIED_FIELD`] from `start` to `end`.
fn with_modified_window(filters: &Value, start: String, end: String) -> Value {
    let window = json!({"DateFilters": [{"FieldName": MODIFIED_FIELD, "Filter": {"Start": start, "End": end}}]});
    and_with(filters, window)
}

/// `filters` ANDed with one more composite filter (the user's wrapped as one nested composite
/// when they combine with OR or would leave no slot).
fn and_with(filters: &Value, composite: Value) -> Value {
    let composites: Vec<Value> = filters
        .get("CompositeFilters")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let operator = filters.get("CompositeOperator").and_then(Value::as_str);
    let mut list = if composites.is_empty() {
        Vec::new()
    } else if (operator == Some("AND") || composites.len() == 1)
        && composites.len() < MAX_COMPOSITES
    {
        composites
    } else {
        vec![json!({"NestedCompositeFilters": composites, "Operator": operator.unwrap_or("AND")})]
    };
    list.push(composite);
    json!({"CompositeFilters": list, "CompositeOperator": "AND"})
}

/// The frozen request's filters over the findings modified after its window's end (or after
/// `started`, if later) up to `until`, with that instant; `None` for filters not frozen by
/// [`freeze`].
pub fn changed_since_filters(
    filters: &Value,
    started: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Option<(Value, DateTime<Utc>)> {
    let composites = filters.get("CompositeFilters")?.as_array()?;
    let (window, user) = composites.split_last()?;
    let dates = window.get("DateFilters")?.as_array()?;
    let [date] = dates.as_slice() else {
        return None;
    };
    if date.get("FieldName")?.as_str()? != MODIFIED_FIELD || window.as_object()?.len() != 1 {
        return None;
    }
    let end = crate::encode::timestamp::parse_iso8601(date["Filter"].get("End")?.as_str()?)?;
    let since = end.max(started) + Duration::milliseconds(1);
    let user = json!({"CompositeFilters": user, "CompositeOperator": "AND"});
    Some((with_modified_window(&user, iso(since), iso(until)), since))
}

/// Checks `--scopes` (a `FindingScopes` object): at most [`MAX_SCOPES`] organization entries,
/// each naming an organization or an organizational unit.
pub fn validate_scopes(scopes: &Value) -> Result<()> {
    let bad_scopes = |why: &str| {
        Error::Usage(format!(
            "invalid --scopes: {why}; use {{\"AwsOrganizations\": [{{\"OrganizationId\": \"o-...\", \"OrganizationalUnitId\": \"ou-...\"}}]}}"
        ))
    };
    let object = scopes
        .as_object()
        .ok_or_else(|| bad_scopes("not an object"))?;
    if object.keys().any(|k| k != "AwsOrganizations") {
        return Err(bad_scopes("only AwsOrganizations is known"));
    }
    let entries = object
        .get("AwsOrganizations")
        .and_then(Value::as_array)
        .ok_or_else(|| bad_scopes("AwsOrganizations must be a list"))?;
    if entries.is_empty() || entries.len() > MAX_SCOPES {
        return Err(bad_scopes(&format!("give 1 to {MAX_SCOPES} entries")));
    }
    for entry in entries {
        let entry = entry
            .as_object()
            .ok_or_else(|| bad_scopes("an entry is not an object"))?;
        let known = ["OrganizationId", "OrganizationalUnitId"];
        if entry.is_empty()
            || entry
                .iter()
                .any(|(k, v)| !known.contains(&k.as_str()) || !v.is_string())
        {
            return Err(bad_scopes(
                "each entry takes OrganizationId and/or OrganizationalUnitId strings",
            ));
        }
    }
    // AwsOrganizationScope: one scoping approach a request, the whole organization (an entry
    // with only OrganizationId) or organizational units (entries with OrganizationalUnitId).
    let whole = entries
        .iter()
        .filter(|e| e.get("OrganizationalUnitId").is_none())
        .count();
    if whole > 0 && whole < entries.len() {
        return Err(bad_scopes(
            "an entry with only OrganizationId (the whole organization) cannot be combined with organizational-unit entries in one request; keep one approach",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
