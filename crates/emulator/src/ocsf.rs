//! The emulator's new Security Hub: every finding also as the OCSF document GetFindingsV2 would
//! return (mapped from its ASFF form, as the service maps its producers' findings: Compliance,
//! Vulnerability and Detection Finding classes, unknown fields and `unmapped` kept), and
//! GetFindingsV2's composite filters as the service applies them.

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use crate::semantics::parse_time;

/// The OCSF document of one ASFF finding.
pub fn from_asff(asff: &Value) -> Value {
    let text = |key: &str| asff.get(key).and_then(Value::as_str).unwrap_or_default();
    let product = text("ProductName");
    let (class_uid, class_name) = match product {
        "Inspector" => (2002, "Vulnerability Finding"),
        "Security Hub" => (2003, "Compliance Finding"),
        _ => (2004, "Detection Finding"),
    };
    let label = asff
        .pointer("/Severity/Label")
        .and_then(Value::as_str)
        .unwrap_or("");
    let (severity, severity_id) = match label {
        "INFORMATIONAL" => ("Informational", 1),
        "LOW" => ("Low", 2),
        "MEDIUM" => ("Medium", 3),
        "HIGH" => ("High", 4),
        "CRITICAL" => ("Critical", 5),
        _ => ("Unknown", 0),
    };
    let workflow = asff
        .pointer("/Workflow/Status")
        .and_then(Value::as_str)
        .unwrap_or("");
    let (status, status_id) = match workflow {
        "NEW" => ("New", 1),
        "NOTIFIED" => ("In Progress", 2),
        "SUPPRESSED" => ("Suppressed", 3),
        "RESOLVED" => ("Resolved", 4),
        _ => ("Other", 99),
    };
    let (activity_name, activity_id) = if text("RecordState") == "ARCHIVED" {
        ("Close", 3)
    } else if text("CreatedAt") == text("UpdatedAt") {
        ("Create", 1)
    } else {
        ("Update", 2)
    };
    let mut info = Map::new();
    info.insert("uid".into(), text("Id").into());
    info.insert("title".into(), text("Title").into());
    info.insert("desc".into(), text("Description").into());
    info.insert(
        "types".into(),
        asff.get("Types").cloned().unwrap_or(json!([])),
    );
    for (ocsf, key) in [
        ("created_time", "CreatedAt"),
        ("modified_time", "UpdatedAt"),
        ("first_seen_time", "FirstObservedAt"),
        ("last_seen_time", "LastObservedAt"),
    ] {
        if let Some(time) = parse_time(text(key)) {
            info.insert(ocsf.into(), time.timestamp_millis().into());
            // The `_dt` form as the finding carried it (offsets and precision vary).
            info.insert(format!("{ocsf}_dt"), text(key).into());
        }
    }
    let resources: Vec<Value> = asff
        .get("Resources")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|r| {
                    json!({"type": r.get("Type"), "uid": r.get("Id"), "region": r.get("Region"),
                           "cloud_partition": r.get("Partition"), "data": r.get("Details")})
                })
                .collect()
        })
        .unwrap_or_default();
    let mut doc = json!({
        "activity_id": activity_id,
        "activity_name": activity_name,
        "category_name": "Findings",
        "category_uid": 2,
        "class_name": class_name,
        "class_uid": class_uid,
        "type_uid": class_uid * 100 + activity_id,
        "severity": severity,
        "severity_id": severity_id,
        "status": status,
        "status_id": status_id,
        "time": info.get("modified_time").cloned().unwrap_or(Value::Null),
        "cloud": {"account": {"uid": text("AwsAccountId"), "type": "AWS Account"}, "provider": "AWS", "region": text("Region")},
        "finding_info": info,
        "metadata": {"product": {"name": product, "uid": text("ProductArn"), "vendor_name": text("CompanyName")},
                     "version": "1.6.0", "uid": text("Id")},
        "resources": resources,
        "unmapped": {"ProductFields": asff.get("ProductFields"), "UserDefinedFields": asff.get("UserDefinedFields")},
    });
    let body = doc.as_object_mut().expect("object");
    if let Some(compliance) = asff.get("Compliance") {
        let (status, id) = match compliance.get("Status").and_then(Value::as_str) {
            Some("PASSED") => ("Pass", 1),
            Some("WARNING") => ("Warning", 2),
            Some("FAILED") => ("Fail", 3),
            _ => ("Unknown", 0),
        };
        let standards: Vec<Value> = compliance
            .get("AssociatedStandards")
            .and_then(Value::as_array)
            .map(|s| {
                s.iter()
                    .filter_map(|x| x.get("StandardsId").cloned())
                    .collect()
            })
            .unwrap_or_default();
        body.insert(
            "compliance".into(),
            json!({"status": status, "status_id": id, "control": compliance.get("SecurityControlId"), "standards": standards}),
        );
    }
    if let Some(list) = asff.get("Vulnerabilities").and_then(Value::as_array) {
        let vulnerabilities: Vec<Value> = list
            .iter()
            .map(|v| {
                json!({"cve": {"uid": v.get("Id"), "cvss": v.get("Cvss")},
                       "affected_packages": v.get("VulnerablePackages"),
                       "is_fix_available": v.get("FixAvailable").and_then(Value::as_str) == Some("YES"),
                       "is_exploit_available": v.get("ExploitAvailable").and_then(Value::as_str) == Some("YES"),
                       "vendor_name": v.pointer("/Vendor/Name")})
            })
            .collect();
        body.insert("vulnerabilities".into(), vulnerabilities.into());
    }
    if let Some(future) = asff.get("FutureAsffField") {
        // A field newer than any OCSF schema this build knows.
        body.insert("x_acme_extension".into(), future.clone());
    }
    doc
}

/// The values at a dotted OCSF path, through arrays at any step.
fn values_at<'v>(doc: &'v Value, path: &str) -> Vec<&'v Value> {
    let mut current = vec![doc];
    for step in path.split('.') {
        let mut next = Vec::new();
        for value in current {
            match value {
                Value::Array(items) => next.extend(items.iter().filter_map(|i| i.get(step))),
                other => next.extend(other.get(step)),
            }
        }
        current = next
            .into_iter()
            .flat_map(|v| match v {
                Value::Array(items) if !items.iter().any(Value::is_object) => {
                    items.iter().collect()
                }
                other => vec![other],
            })
            .collect();
    }
    current
}

fn string_matches(values: &[&Value], filter: &Value) -> bool {
    let want = filter["Value"].as_str().unwrap_or_default();
    let texts: Vec<&str> = values.iter().filter_map(|v| v.as_str()).collect();
    let any = |f: &dyn Fn(&str) -> bool| texts.iter().any(|t| f(t));
    match filter["Comparison"].as_str().unwrap_or_default() {
        "EQUALS" => any(&|t| t == want),
        "PREFIX" => any(&|t| t.starts_with(want)),
        "CONTAINS" => any(&|t| t.contains(want)),
        "CONTAINS_WORD" => any(&|t| t.split(|c: char| !c.is_alphanumeric()).any(|w| w == want)),
        "NOT_EQUALS" => !any(&|t| t == want),
        "PREFIX_NOT_EQUALS" => !any(&|t| t.starts_with(want)),
        "NOT_CONTAINS" => !any(&|t| t.contains(want)),
        _ => false,
    }
}

fn date_matches(values: &[&Value], filter: &Value, now: DateTime<Utc>) -> bool {
    values
        .iter()
        .filter_map(|v| v.as_str().and_then(parse_time))
        .any(|t| crate::semantics::date_matches(Some(t), filter, now))
}

fn number_matches(values: &[&Value], filter: &Value) -> bool {
    values.iter().filter_map(|v| v.as_f64()).any(|n| {
        let holds = |key: &str, test: fn(f64, f64) -> bool| {
            filter
                .get(key)
                .and_then(Value::as_f64)
                .is_none_or(|b| test(n, b))
        };
        holds("Eq", |n, b| n == b)
            && holds("Gte", |n, b| n >= b)
            && holds("Lte", |n, b| n <= b)
            && holds("Gt", |n, b| n > b)
            && holds("Lt", |n, b| n < b)
    })
}

fn map_matches(values: &[&Value], filter: &Value) -> bool {
    let key = filter["Key"].as_str().unwrap_or_default();
    let mapped: Vec<Value> = values.iter().filter_map(|m| m.get(key)).cloned().collect();
    let refs: Vec<&Value> = mapped.iter().collect();
    string_matches(&refs, filter)
}

fn ip_matches(values: &[&Value], filter: &Value) -> bool {
    let Some((net, bits)) = filter["Cidr"].as_str().and_then(|c| c.split_once('/')) else {
        return false;
    };
    let (Ok(net), Ok(bits)) = (net.parse::<std::net::Ipv4Addr>(), bits.parse::<u32>()) else {
        return false;
    };
    let mask = u32::MAX.checked_shl(32 - bits.min(32)).unwrap_or(0);
    values
        .iter()
        .filter_map(|v| v.as_str()?.parse::<std::net::Ipv4Addr>().ok())
        .any(|ip| u32::from(ip) & mask == u32::from(net) & mask)
}

/// Whether one filter holds for the values at its field.
type FilterTest<'t> = &'t dyn Fn(&[&Value], &Value) -> bool;

/// Whether one composite filter holds for `doc`: its filters and nested composites combined
/// with its `Operator` (AND when absent).
fn composite_matches(composite: &Value, doc: &Value, now: DateTime<Utc>) -> bool {
    let mut results = Vec::new();
    let kinds: [(&str, FilterTest); 6] = [
        ("StringFilters", &string_matches),
        ("DateFilters", &|v, f| date_matches(v, f, now)),
        ("NumberFilters", &number_matches),
        ("BooleanFilters", &|v, f| {
            v.iter().any(|x| x.as_bool() == f["Value"].as_bool())
        }),
        ("MapFilters", &map_matches),
        ("IpFilters", &ip_matches),
    ];
    for (kind, test) in kinds {
        for item in composite
            .get(kind)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let values = values_at(doc, item["FieldName"].as_str().unwrap_or_default());
            results.push(test(&values, &item["Filter"]));
        }
    }
    for nested in composite
        .get("NestedCompositeFilters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        results.push(composite_matches(nested, doc, now));
    }
    combine(composite.get("Operator"), &results)
}

fn combine(operator: Option<&Value>, results: &[bool]) -> bool {
    match operator.and_then(Value::as_str) {
        Some("OR") => results.iter().any(|r| *r),
        _ => results.iter().all(|r| *r),
    }
}

/// Whether `doc` matches GetFindingsV2 `filters` (`{}`: every document).
pub fn matches(filters: &Value, doc: &Value, now: DateTime<Utc>) -> bool {
    let results: Vec<bool> = filters
        .get("CompositeFilters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| composite_matches(c, doc, now))
        .collect();
    combine(filters.get("CompositeOperator"), &results)
}

/// Checks GetFindingsV2 `Filters` against the limits the API reference states (the
/// ValidationException message otherwise): only `CompositeFilters` and `CompositeOperator` at
/// the top, at most 10 composite filters a level, 20 filters of one type in a composite, three
/// levels of nesting, operators AND or OR.
pub fn check_filters(filters: &Value) -> Result<(), String> {
    let Some(top) = filters.as_object() else {
        return Err("Filters must be an object".into());
    };
    if let Some(key) = top
        .keys()
        .find(|k| !matches!(k.as_str(), "CompositeFilters" | "CompositeOperator"))
    {
        return Err(format!("Filters has an unknown member {key}"));
    }
    check_operator(top.get("CompositeOperator"))?;
    check_level(top.get("CompositeFilters"), 1)
}

const FILTER_LISTS: &[&str] = &[
    "StringFilters",
    "DateFilters",
    "BooleanFilters",
    "NumberFilters",
    "MapFilters",
    "IpFilters",
];

fn check_operator(operator: Option<&Value>) -> Result<(), String> {
    match operator.map(Value::as_str) {
        None | Some(Some("AND" | "OR")) => Ok(()),
        Some(other) => Err(format!("Operator must be AND or OR, not {other:?}")),
    }
}

fn check_level(composites: Option<&Value>, level: usize) -> Result<(), String> {
    let Some(composites) = composites else {
        return Ok(());
    };
    let composites = composites
        .as_array()
        .ok_or("composite filters must be a list")?;
    if composites.len() > 10 {
        return Err(format!(
            "{} composite filters at one level; at most 10",
            composites.len()
        ));
    }
    if level > 3 && !composites.is_empty() {
        return Err("composite filters nest at most 3 levels".into());
    }
    for composite in composites {
        let object = composite
            .as_object()
            .ok_or("a composite filter must be an object")?;
        for (key, value) in object {
            match key.as_str() {
                "Operator" => check_operator(Some(value))?,
                "NestedCompositeFilters" => check_level(Some(value), level + 1)?,
                list if FILTER_LISTS.contains(&list) => {
                    let items = value.as_array().ok_or(format!("{list} must be a list"))?;
                    if items.len() > 20 {
                        return Err(format!(
                            "{} {list} in one composite filter; at most 20",
                            items.len()
                        ));
                    }
                }
                other => return Err(format!("a composite filter has an unknown member {other}")),
            }
        }
    }
    Ok(())
}

/// Checks GetFindingsV2 `Scopes` as the AwsOrganizationScope reference states: a request
/// scopes either to the whole organization (an entry with only `OrganizationId`) or to
/// organizational units (entries with `OrganizationalUnitId`), never both.
pub fn check_scopes(scopes: &Value) -> Result<(), String> {
    let entries = scopes["AwsOrganizations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let whole = entries
        .iter()
        .filter(|entry| entry.get("OrganizationalUnitId").is_none())
        .count();
    if whole > 0 && whole < entries.len() {
        return Err("Scopes combine a whole organization with organizational units".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::Generator;

    #[test]
    fn every_generated_finding_maps_to_an_ocsf_document_of_its_class() {
        let generator = Generator::default();
        let mut classes = std::collections::BTreeSet::new();
        for index in 0..200 {
            let asff = generator.finding_value(index);
            let doc = from_asff(&asff);
            assert_eq!(doc["finding_info"]["uid"], asff["Id"]);
            assert_eq!(doc["metadata"]["product"]["uid"], asff["ProductArn"]);
            assert_eq!(doc["cloud"]["account"]["uid"], asff["AwsAccountId"]);
            let modified = parse_time(asff["UpdatedAt"].as_str().unwrap()).unwrap();
            assert_eq!(
                doc["finding_info"]["modified_time"],
                modified.timestamp_millis()
            );
            classes.insert(doc["class_uid"].as_i64().unwrap());
        }
        assert_eq!(classes.into_iter().collect::<Vec<_>>(), [2002, 2003, 2004]);
    }

    #[test]
    fn composite_filters_combine_as_the_service_documents() {
        let doc = json!({"severity": "High", "severity_id": 4, "resources": [{"type": "AWS::S3::Bucket", "tags": {"env": "prod"}}, {"type": "AWS::Account"}],
                         "finding_info": {"modified_time_dt": "2026-01-02T00:00:00+02:00"}, "evidences": [{"src_endpoint": {"ip": "10.1.2.3"}}]});
        let now = Utc::now();
        let s = |field: &str, value: &str, cmp: &str| json!({"FieldName": field, "Filter": {"Value": value, "Comparison": cmp}});
        let one = |composite: Value| json!({"CompositeFilters": [composite]});
        assert!(matches(&json!({}), &doc, now));
        assert!(matches(
            &one(json!({"StringFilters": [s("resources.type", "AWS::Account", "EQUALS")]})),
            &doc,
            now
        ));
        assert!(!matches(
            &one(json!({"StringFilters": [s("resources.type", "AWS::", "PREFIX_NOT_EQUALS")]})),
            &doc,
            now
        ));
        assert!(matches(
            &one(
                json!({"StringFilters": [s("severity", "Low", "EQUALS"), s("severity", "High", "EQUALS")], "Operator": "OR"})
            ),
            &doc,
            now
        ));
        assert!(!matches(
            &one(
                json!({"StringFilters": [s("severity", "Low", "EQUALS"), s("severity", "High", "EQUALS")]})
            ),
            &doc,
            now
        ));
        let window = |start: &str, end: &str| {
            one(
                json!({"DateFilters": [{"FieldName": "finding_info.modified_time_dt", "Filter": {"Start": start, "End": end}}]}),
            )
        };
        assert!(
            matches(
                &window("2026-01-01T22:00:00Z", "2026-01-01T22:00:00Z"),
                &doc,
                now
            ),
            "inclusive, in UTC"
        );
        assert!(!matches(
            &window("2026-01-01T22:00:00.001Z", "2026-02-01T00:00:00Z"),
            &doc,
            now
        ));
        assert!(matches(
            &one(
                json!({"NumberFilters": [{"FieldName": "severity_id", "Filter": {"Gte": 3, "Lt": 5}}]})
            ),
            &doc,
            now
        ));
        assert!(matches(
            &one(
                json!({"MapFilters": [{"FieldName": "resources.tags", "Filter": {"Key": "env", "Value": "prod", "Comparison": "EQUALS"}}]})
            ),
            &doc,
            now
        ));
        assert!(matches(
            &one(
                json!({"IpFilters": [{"FieldName": "evidences.src_endpoint.ip", "Filter": {"Cidr": "10.0.0.0/8"}}]})
            ),
            &doc,
            now
        ));
        let nested = json!({"CompositeFilters": [{"NestedCompositeFilters": [{"StringFilters": [s("severity", "Low", "EQUALS")]}, {"StringFilters": [s("severity", "High", "EQUALS")]}], "Operator": "OR"},
                                                 {"StringFilters": [s("severity", "Critical", "NOT_EQUALS")]}], "CompositeOperator": "AND"});
        assert!(matches(&nested, &doc, now));
    }
}
