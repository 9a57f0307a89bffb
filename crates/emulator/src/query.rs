//! The emulator's data set and query semantics: filters as the service applies them, and
//! NextTokens bound to the exact query (a changed query is rejected, as the service does).

use std::sync::Arc;

use chrono::Utc;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::generate::Generator;
use crate::semantics::{parse_time, string_matches};

/// The findings the emulator serves.
#[derive(Debug, Clone)]
pub enum Dataset {
    /// `count` findings made on demand.
    #[allow(missing_docs)]
    Generated { generator: Generator, count: u64 },
    /// Findings loaded from a file, as JSON texts.
    Loaded(Arc<Vec<String>>),
    /// Several data sets one after the other (an aggregation home Region: its own findings,
    /// then each linked Region's).
    Union(Arc<Vec<Dataset>>),
    /// A data set with findings changed (by index, as JSON texts) and findings added after it
    /// (see `changes`).
    #[allow(missing_docs)]
    Changed {
        base: Arc<Dataset>,
        replaced: Arc<std::collections::HashMap<u64, String>>,
        added: Arc<Vec<String>>,
    },
}

impl Dataset {
    /// Number of findings.
    pub fn len(&self) -> u64 {
        match self {
            Dataset::Generated { count, .. } => *count,
            Dataset::Loaded(findings) => findings.len() as u64,
            Dataset::Union(parts) => parts.iter().map(Dataset::len).sum(),
            Dataset::Changed { base, added, .. } => base.len() + added.len() as u64,
        }
    }

    /// The JSON text a change replaced or added at `index`, if any.
    fn changed_text(&self, index: u64) -> Option<&str> {
        let Dataset::Changed {
            base,
            replaced,
            added,
        } = self
        else {
            return None;
        };
        match index.checked_sub(base.len()) {
            Some(extra) => added.get(extra as usize).map(String::as_str),
            None => replaced.get(&index).map(String::as_str),
        }
    }

    /// The part of a union holding `index`, and the index within it.
    fn locate(parts: &[Dataset], mut index: u64) -> (&Dataset, u64) {
        for part in parts {
            if index < part.len() {
                return (part, index);
            }
            index -= part.len();
        }
        panic!("finding index {index} past the end of the data set")
    }

    /// Whether finding `index` was deleted (its index stays, so the others keep theirs).
    pub fn is_deleted(&self, index: u64) -> bool {
        self.changed_text(index).is_some_and(str::is_empty)
    }

    /// Whether any finding was deleted.
    pub fn has_deletions(&self) -> bool {
        matches!(self, Dataset::Changed { replaced, .. } if replaced.values().any(String::is_empty))
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Finding `index` as JSON text.
    pub fn text(&self, index: u64) -> String {
        match self {
            Dataset::Generated { generator, .. } => generator.finding(index),
            Dataset::Loaded(findings) => findings[index as usize].clone(),
            Dataset::Union(parts) => {
                let (part, index) = Self::locate(parts, index);
                part.text(index)
            }
            Dataset::Changed { base, .. } => match self.changed_text(index) {
                Some(text) => text.to_string(),
                None => base.text(index),
            },
        }
    }

    /// The `Id` of finding `index` (for filters on `Id` alone, cheaper than the whole finding).
    pub fn id(&self, index: u64) -> Option<String> {
        match self {
            Dataset::Generated { generator, .. } => Some(generator.finding_id(index)),
            Dataset::Loaded(_) => self.value(index)["Id"].as_str().map(str::to_string),
            Dataset::Union(parts) => {
                let (part, index) = Self::locate(parts, index);
                part.id(index)
            }
            Dataset::Changed { base, .. } => match self.changed_text(index) {
                Some(_) => self.value(index)["Id"].as_str().map(str::to_string),
                None => base.id(index),
            },
        }
    }

    /// The `UpdatedAt` of finding `index` (for a window on `UpdatedAt` alone, cheaper than the
    /// whole finding).
    pub fn updated_at(&self, index: u64) -> Option<chrono::DateTime<Utc>> {
        match self {
            Dataset::Generated { generator, .. } => Some(generator.updated_at(index)),
            Dataset::Loaded(findings) => updated_at_of(&findings[index as usize]),
            Dataset::Union(parts) => {
                let (part, index) = Self::locate(parts, index);
                part.updated_at(index)
            }
            Dataset::Changed { base, .. } => match self.changed_text(index) {
                Some(text) => updated_at_of(text),
                None => base.updated_at(index),
            },
        }
    }

    /// Finding `index` as a JSON value (for filtering).
    pub fn value(&self, index: u64) -> Value {
        match self {
            Dataset::Generated { generator, .. } => generator.finding_value(index),
            Dataset::Loaded(findings) => {
                serde_json::from_str(&findings[index as usize]).unwrap_or(Value::Null)
            }
            Dataset::Union(parts) => {
                let (part, index) = Self::locate(parts, index);
                part.value(index)
            }
            Dataset::Changed { base, .. } => match self.changed_text(index) {
                Some(text) => serde_json::from_str(text).unwrap_or(Value::Null),
                None => base.value(index),
            },
        }
    }

    /// Loads findings from NDJSON (one finding a line) or `aws securityhub get-findings` output.
    pub fn load(path: &std::path::Path) -> Result<Dataset, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let findings = match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(mut body)) if body.contains_key("Findings") => {
                match body.remove("Findings") {
                    Some(Value::Array(items)) => items.iter().map(Value::to_string).collect(),
                    _ => return Err(format!("{}: Findings is not an array", path.display())),
                }
            }
            Ok(Value::Array(items)) => items.iter().map(Value::to_string).collect(),
            _ => text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| serde_json::from_str::<Value>(l).map(|_| l.trim().to_string()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| {
                    format!(
                        "{}: neither get-findings JSON nor NDJSON: {e}",
                        path.display()
                    )
                })?,
        };
        Ok(Dataset::Loaded(Arc::new(findings)))
    }
}

/// String filters the emulator honours, with where they read in ASFF.
const STRING_FIELDS: &[(&str, &str)] = &[
    ("AwsAccountId", "/AwsAccountId"),
    ("CompanyName", "/CompanyName"),
    ("ComplianceStatus", "/Compliance/Status"),
    ("GeneratorId", "/GeneratorId"),
    ("Id", "/Id"),
    ("ProductArn", "/ProductArn"),
    ("ProductName", "/ProductName"),
    ("RecordState", "/RecordState"),
    ("Region", "/Region"),
    ("SeverityLabel", "/Severity/Label"),
    ("Title", "/Title"),
    ("WorkflowStatus", "/Workflow/Status"),
];
const DATE_FIELDS: &[(&str, &str)] = &[
    ("CreatedAt", "/CreatedAt"),
    ("FirstObservedAt", "/FirstObservedAt"),
    ("LastObservedAt", "/LastObservedAt"),
    ("UpdatedAt", "/UpdatedAt"),
];

/// Fails for a filter attribute the emulator does not implement (rather than ignoring it).
pub fn check_supported(filters: &Value) -> Result<(), String> {
    let Some(fields) = filters.as_object() else {
        return Err("Filters must be an object".into());
    };
    for name in fields.keys() {
        let known = STRING_FIELDS
            .iter()
            .chain(DATE_FIELDS)
            .any(|(n, _)| n == name);
        if !known {
            return Err(format!("the emulator does not implement the {name} filter"));
        }
    }
    Ok(())
}

/// The `Id` conditions of `filters` (matched on Ids, without building each finding), and the
/// other filters, if any.
pub fn split_id(filters: &Value) -> (Option<&[Value]>, Option<Value>) {
    let Some(fields) = filters.as_object() else {
        return (None, None);
    };
    let id = fields
        .get("Id")
        .and_then(Value::as_array)
        .map(Vec::as_slice);
    let mut others = fields.clone();
    others.remove("Id");
    (id, (!others.is_empty()).then_some(Value::Object(others)))
}

/// Whether a finding passes every filter (AND across attributes).
pub fn matches(filters: &Value, finding: &Value) -> bool {
    let Some(fields) = filters.as_object() else {
        return true;
    };
    fields.iter().all(|(name, conditions)| {
        let conditions = conditions.as_array().map(Vec::as_slice).unwrap_or_default();
        if let Some((_, path)) = STRING_FIELDS.iter().find(|(n, _)| n == name) {
            string_matches(finding.pointer(path).and_then(Value::as_str), conditions)
        } else if let Some((_, path)) = DATE_FIELDS.iter().find(|(n, _)| n == name) {
            let time = finding
                .pointer(path)
                .and_then(Value::as_str)
                .and_then(parse_time);
            dates_match(time, conditions)
        } else {
            true
        }
    })
}

/// The `UpdatedAt` conditions when `filters` (without `Id`) filter on `UpdatedAt` alone.
pub fn updated_at_only(filters: &Value) -> Option<&[Value]> {
    let fields = filters.as_object()?;
    (fields.len() == 1)
        .then(|| fields.get("UpdatedAt")?.as_array().map(Vec::as_slice))
        .flatten()
}

/// Whether a time passes every date condition of one attribute (see
/// [`crate::semantics::date_matches`]).
pub fn dates_match(time: Option<chrono::DateTime<Utc>>, conditions: &[Value]) -> bool {
    let now = Utc::now();
    conditions
        .iter()
        .all(|c| crate::semantics::date_matches(time, c, now))
}

/// The `UpdatedAt` of a finding's JSON text.
fn updated_at_of(text: &str) -> Option<chrono::DateTime<Utc>> {
    let finding: Value = serde_json::from_str(text).ok()?;
    parse_time(finding["UpdatedAt"].as_str()?)
}

pub use crate::semantics::id_order;

/// A hash of everything a NextToken is bound to.
pub fn query_hash(filters: &Value, sort: &Value, max_results: i64) -> u64 {
    let canonical = format!("{filters}|{sort}|{max_results}");
    let digest = Sha256::digest(canonical.as_bytes());
    u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// An opaque token: epoch, query hash and offset.
pub fn make_token(epoch: u64, hash: u64, offset: u64) -> String {
    format!("{epoch:x}.{hash:016x}.{offset:x}")
}

/// Why a token was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum TokenError {
    /// Not a token this emulator issued.
    Malformed,
    /// Issued for another query.
    QueryChanged,
    /// Issued before the tokens were invalidated.
    Expired,
}

/// Reads a token for this query; the offset it points at.
pub fn read_token(token: &str, epoch: u64, hash: u64) -> Result<u64, TokenError> {
    let mut parts = token.split('.');
    let (Some(e), Some(h), Some(o), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let parse = |s: &str| u64::from_str_radix(s, 16).map_err(|_| TokenError::Malformed);
    let (e, h, o) = (parse(e)?, parse(h)?, parse(o)?);
    if e != epoch {
        return Err(TokenError::Expired);
    }
    if h != hash {
        return Err(TokenError::QueryChanged);
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn string_filters_or_positive_and_and_negative_comparisons() {
        let finding = json!({"RecordState": "ACTIVE", "Severity": {"Label": "HIGH"}, "ProductName": "GuardDuty"});
        let pass = |filters: Value| matches(&filters, &finding);
        assert!(pass(
            json!({"RecordState": [{"Value": "ACTIVE", "Comparison": "EQUALS"}]})
        ));
        assert!(!pass(
            json!({"RecordState": [{"Value": "ARCHIVED", "Comparison": "EQUALS"}]})
        ));
        assert!(pass(
            json!({"SeverityLabel": [{"Value": "LOW", "Comparison": "EQUALS"}, {"Value": "HIGH", "Comparison": "EQUALS"}]})
        ));
        assert!(!pass(
            json!({"SeverityLabel": [{"Value": "LOW", "Comparison": "NOT_EQUALS"}, {"Value": "HIGH", "Comparison": "NOT_EQUALS"}]})
        ));
        assert!(pass(
            json!({"ProductName": [{"Value": "Guard", "Comparison": "PREFIX"}]})
        ));
        assert!(!pass(
            json!({"ProductName": [{"Value": "Guard", "Comparison": "PREFIX_NOT_EQUALS"}]})
        ));
        assert!(!pass(
            json!({"RecordState": [{"Value": "ACTIVE", "Comparison": "EQUALS"}], "ProductName": [{"Value": "Macie", "Comparison": "EQUALS"}]})
        ));
    }

    #[test]
    fn date_filters_take_start_and_end_inclusive_in_any_timestamp_form() {
        let finding = json!({"UpdatedAt": "2026-10-01T12:00:00.000+02:00"});
        let range = |s: &str, e: &str| json!({"UpdatedAt": [{"Start": s, "End": e}]});
        assert!(matches(
            &range("2026-10-01T10:00:00Z", "2026-10-01T10:00:00Z"),
            &finding
        ));
        assert!(!matches(
            &range("2026-10-01T10:00:01Z", "2026-10-02T00:00:00Z"),
            &finding
        ));
    }

    #[test]
    fn a_token_only_continues_the_query_and_epoch_it_was_issued_for() {
        let hash = query_hash(&json!({}), &Value::Null, 100);
        let token = make_token(0, hash, 300);
        assert_eq!(read_token(&token, 0, hash), Ok(300));
        assert_eq!(
            read_token(&token, 0, query_hash(&json!({}), &Value::Null, 50)),
            Err(TokenError::QueryChanged)
        );
        assert_eq!(read_token(&token, 1, hash), Err(TokenError::Expired));
        assert_eq!(read_token("garbage", 0, hash), Err(TokenError::Malformed));
        assert!(check_supported(&json!({"Sample": [{"Value": true}]})).is_err());
    }
}
