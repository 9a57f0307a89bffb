//! Narrowing a request to a part of it: the string-filter semantics of GetFindings evaluated
//! offline, and a request leaving out the findings generated in some Regions (what an
//! aggregation home Region's stream reads when linked Regions have streams of their own).

use serde_json::{json, Map, Value};

use super::filters::{MAX_ATTRIBUTES, MAX_VALUES};
use crate::error::{Error, Result};

/// Whether `value` passes one attribute's string conditions as the service applies them:
/// EQUALS / PREFIX / CONTAINS are OR-ed, NOT_EQUALS / PREFIX_NOT_EQUALS / NOT_CONTAINS AND-ed,
/// and both groups must pass. A missing value passes no positive condition.
pub fn string_conditions_match(value: Option<&str>, conditions: &[Value]) -> bool {
    let mut positive = Vec::new();
    let mut negative = Vec::new();
    for condition in conditions {
        let wanted = condition
            .get("Value")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let comparison = condition
            .get("Comparison")
            .and_then(Value::as_str)
            .unwrap_or("EQUALS");
        let hit = value.is_some_and(|v| match comparison {
            "EQUALS" | "NOT_EQUALS" => v == wanted,
            "PREFIX" | "PREFIX_NOT_EQUALS" => v.starts_with(wanted),
            "CONTAINS" | "NOT_CONTAINS" => v.contains(wanted),
            _ => false,
        });
        if matches!(
            comparison,
            "NOT_EQUALS" | "PREFIX_NOT_EQUALS" | "NOT_CONTAINS"
        ) {
            negative.push(!hit);
        } else {
            positive.push(hit);
        }
    }
    (positive.is_empty() || positive.iter().any(|h| *h)) && negative.iter().all(|h| *h)
}

/// `filters` leaving out findings generated in `regions` (`Region NOT_EQUALS` each), combined
/// with the user's own Region conditions: EQUALS values lose those Regions, NOT_EQUALS and
/// PREFIX conditions gain the exclusions. `Ok(None)`: nothing is left to read.
pub fn leave_out_regions(filters: &Value, regions: &[String]) -> Result<Option<Value>> {
    if regions.is_empty() {
        return Ok(Some(filters.clone()));
    }
    let mut fields: Map<String, Value> = filters.as_object().cloned().unwrap_or_default();
    let given: Vec<Value> = match fields.get("Region") {
        Some(conditions) => conditions.as_array().cloned().unwrap_or_default(),
        None if fields.len() >= MAX_ATTRIBUTES => {
            return Err(Error::Filters(format!(
                "{} attributes given, and reading an aggregation home Region beside its linked Regions adds a Region filter (Security Hub accepts at most {MAX_ATTRIBUTES}); drop one attribute",
                fields.len()
            )))
        }
        None => Vec::new(),
    };
    let comparison = |c: &Value| {
        c.get("Comparison")
            .and_then(Value::as_str)
            .unwrap_or("EQUALS")
            .to_string()
    };
    let value = |c: &Value| c.get("Value").and_then(Value::as_str).map(str::to_string);
    let excluded = |c: &Value| value(c).is_some_and(|v| regions.contains(&v));
    let combined: Vec<Value> = if given.iter().any(|c| comparison(c) == "EQUALS") {
        // EQUALS cannot be mixed with negations: drop the left-out Regions from the list.
        let kept: Vec<Value> = given.into_iter().filter(|c| !excluded(c)).collect();
        if kept.is_empty() {
            return Ok(None);
        }
        kept
    } else if given.iter().all(|c| {
        matches!(
            comparison(c).as_str(),
            "NOT_EQUALS" | "PREFIX_NOT_EQUALS" | "PREFIX"
        )
    }) {
        let mut all = given;
        for region in regions {
            let condition = json!({"Value": region, "Comparison": "NOT_EQUALS"});
            if !all.contains(&condition) {
                all.push(condition);
            }
        }
        all
    } else {
        return Err(Error::Filters(
            "a CONTAINS or NOT_CONTAINS Region filter cannot be combined with reading an aggregation home Region beside its linked Regions; use EQUALS, PREFIX or NOT_EQUALS".into(),
        ));
    };
    if combined.len() > MAX_VALUES {
        return Err(Error::Filters(format!(
            "reading an aggregation home Region beside {} of its linked Regions needs {} Region conditions (Security Hub accepts at most {MAX_VALUES}); split the job's --regions",
            regions.len(),
            combined.len()
        )));
    }
    fields.insert("Region".into(), Value::Array(combined));
    Ok(Some(Value::Object(fields)))
}

/// `filters` keeping only the findings account `account` owns (`AwsAccountId EQUALS` it), the
/// intersection with the user's own `AwsAccountId` conditions: what an account's stream reads
/// when other accounts in the job have streams of their own (an administrator sees its
/// members' findings). `Ok(None)`: the user's conditions exclude the account altogether.
pub fn own_account(filters: &Value, account: &str) -> Result<Option<Value>> {
    let mut fields: Map<String, Value> = filters.as_object().cloned().unwrap_or_default();
    match fields.get("AwsAccountId").and_then(Value::as_array) {
        Some(given) if !string_conditions_match(Some(account), given) => return Ok(None),
        Some(_) => {}
        None if fields.len() >= MAX_ATTRIBUTES => {
            return Err(Error::Filters(format!(
                "{} attributes given, and a job over several accounts restricts each account's stream to its own findings with an AwsAccountId filter (Security Hub accepts at most {MAX_ATTRIBUTES}); drop one attribute",
                fields.len()
            )))
        }
        None => {}
    }
    fields.insert(
        "AwsAccountId".into(),
        json!([{"Value": account, "Comparison": "EQUALS"}]),
    );
    Ok(Some(Value::Object(fields)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conditions(list: &[(&str, &str)]) -> Vec<Value> {
        list.iter()
            .map(|(c, v)| json!({"Comparison": c, "Value": v}))
            .collect()
    }

    #[test]
    fn string_conditions_follow_the_service_semantics() {
        let any_of = conditions(&[("EQUALS", "a"), ("PREFIX", "b")]);
        assert!(string_conditions_match(Some("a"), &any_of));
        assert!(string_conditions_match(Some("bc"), &any_of));
        assert!(!string_conditions_match(Some("c"), &any_of));
        let none_of = conditions(&[("NOT_EQUALS", "a"), ("PREFIX_NOT_EQUALS", "b")]);
        assert!(string_conditions_match(Some("c"), &none_of));
        assert!(!string_conditions_match(Some("bc"), &none_of));
        let both = conditions(&[("PREFIX", "eu-"), ("NOT_EQUALS", "eu-west-2")]);
        assert!(string_conditions_match(Some("eu-west-1"), &both));
        assert!(!string_conditions_match(Some("eu-west-2"), &both));
        assert!(!string_conditions_match(None, &any_of));
        assert!(string_conditions_match(None, &none_of));
    }

    #[test]
    fn an_accounts_stream_keeps_its_own_findings_within_the_users_account_conditions() {
        let own = |filters: Value| own_account(&filters, "111111111111").unwrap();
        let state = json!({"RecordState": [{"Value": "ACTIVE", "Comparison": "EQUALS"}]});
        let mine = json!([{"Value": "111111111111", "Comparison": "EQUALS"}]);
        let plain = own(state.clone()).unwrap();
        assert_eq!(plain["AwsAccountId"], mine);
        assert_eq!(plain["RecordState"], state["RecordState"]);
        let listed = json!({"AwsAccountId": [{"Value": "111111111111", "Comparison": "EQUALS"}, {"Value": "222222222222", "Comparison": "EQUALS"}]});
        assert_eq!(own(listed).unwrap()["AwsAccountId"], mine);
        let others = json!({"AwsAccountId": [{"Value": "222222222222", "Comparison": "EQUALS"}]});
        assert_eq!(own(others), None, "excluded by the user's filter");
        let not_me =
            json!({"AwsAccountId": [{"Value": "1111", "Comparison": "PREFIX_NOT_EQUALS"}]});
        assert_eq!(own(not_me), None);
        let mut ten = Map::new();
        for n in 0..10 {
            ten.insert(format!("A{n}"), json!([]));
        }
        let err = own_account(&Value::Object(ten), "111111111111").unwrap_err();
        assert!(err.to_string().contains("drop one attribute"), "{err}");
    }

    #[test]
    fn other_regions_are_left_out_exactly() {
        let out = |filters: Value| {
            leave_out_regions(&filters, &["eu-west-1".into(), "ap-southeast-2".into()])
        };
        let state = json!({"RecordState": [{"Value": "ACTIVE", "Comparison": "EQUALS"}]});
        let plain = out(state.clone()).unwrap().unwrap();
        assert_eq!(
            plain["Region"],
            json!([{"Value": "eu-west-1", "Comparison": "NOT_EQUALS"}, {"Value": "ap-southeast-2", "Comparison": "NOT_EQUALS"}])
        );
        assert_eq!(plain["RecordState"], state["RecordState"]);
        let listed = out(
            json!({"Region": [{"Value": "us-east-1", "Comparison": "EQUALS"}, {"Value": "eu-west-1", "Comparison": "EQUALS"}]}),
        );
        assert_eq!(
            listed.unwrap().unwrap()["Region"],
            json!([{"Value": "us-east-1", "Comparison": "EQUALS"}])
        );
        assert_eq!(
            out(json!({"Region": [{"Value": "eu-west-1", "Comparison": "EQUALS"}]})).unwrap(),
            None
        );
        let prefixed = out(json!({"Region": [{"Value": "eu-", "Comparison": "PREFIX"}]}))
            .unwrap()
            .unwrap();
        assert_eq!(prefixed["Region"].as_array().unwrap().len(), 3);
        assert!(out(json!({"Region": [{"Value": "eu", "Comparison": "CONTAINS"}]})).is_err());
        assert_eq!(leave_out_regions(&state, &[]).unwrap(), Some(state.clone()));
        let mut ten = Map::new();
        for n in 0..10 {
            ten.insert(format!("A{n}"), json!([]));
        }
        let err = out(Value::Object(ten)).unwrap_err();
        assert!(err.to_string().contains("drop one attribute"), "{err}");
    }
}
