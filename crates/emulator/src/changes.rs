//! Findings changing under an export, as they do in a live Security Hub: updated (a new
//! `UpdatedAt`), changed by BatchUpdateFindings (workflow status, `UpdatedAt` kept), newly
//! created and deleted (90 days after their last update). A change replaces the hub's data set with one layered over it; queries asked after
//! it see the new findings.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};

use super::query::Dataset;

/// One change to every hub's findings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// These findings are updated at the moment of the change: a new `UpdatedAt`, a new
    /// `Title`.
    Update(Vec<u64>),
    /// These findings are archived by their provider: `RecordState` ARCHIVED, a new
    /// `UpdatedAt`.
    Archive(Vec<u64>),
    /// These findings' workflow status becomes RESOLVED, their `UpdatedAt` kept (what
    /// BatchUpdateFindings does).
    Resolve(Vec<u64>),
    /// This many findings are created at the moment of the change.
    Add(u64),
    /// These findings are deleted (as the service does 90 days after a finding's last update).
    Delete(Vec<u64>),
}

/// `dataset` with `change` applied at `now`.
pub fn apply(dataset: &Dataset, change: &Change, now: DateTime<Utc>) -> Dataset {
    let (base, mut replaced, mut added) = match dataset {
        Dataset::Changed {
            base,
            replaced,
            added,
        } => (base.clone(), (**replaced).clone(), (**added).clone()),
        other => (Arc::new(other.clone()), HashMap::new(), Vec::new()),
    };
    let stamp = now.to_rfc3339_opts(SecondsFormat::Millis, true);
    let total = base.len() + added.len() as u64;
    // An empty text marks a deleted finding; every other finding keeps its index.
    let mut put = |index: u64, text: String| match index.checked_sub(base.len()) {
        Some(extra) => added[extra as usize] = text,
        None => {
            replaced.insert(index, text);
        }
    };
    match change {
        Change::Update(indexes) => {
            for &index in indexes.iter().filter(|&&i| i < total) {
                let mut finding = dataset.value(index);
                finding["UpdatedAt"] = stamp.clone().into();
                let title = finding["Title"].as_str().unwrap_or("").to_string();
                finding["Title"] = format!("{title} (updated {stamp})").into();
                put(index, finding.to_string());
            }
        }
        Change::Archive(indexes) => {
            for &index in indexes.iter().filter(|&&i| i < total) {
                let mut finding = dataset.value(index);
                finding["UpdatedAt"] = stamp.clone().into();
                finding["RecordState"] = "ARCHIVED".into();
                put(index, finding.to_string());
            }
        }
        Change::Resolve(indexes) => {
            for &index in indexes.iter().filter(|&&i| i < total) {
                let mut finding = dataset.value(index);
                finding["Workflow"] = serde_json::json!({"Status": "RESOLVED"});
                put(index, finding.to_string());
            }
        }
        Change::Delete(indexes) => {
            for &index in indexes.iter().filter(|&&i| i < total) {
                put(index, String::new());
            }
        }
        Change::Add(count) => {
            for n in 0..*count {
                let mut finding = dataset.value(n % total.max(1));
                let id = finding["Id"].as_str().unwrap_or("finding").to_string();
                finding["Id"] = format!("{id}-new-{}", total + n).into();
                finding["CreatedAt"] = stamp.clone().into();
                finding["UpdatedAt"] = stamp.clone().into();
                added.push(finding.to_string());
            }
        }
    }
    Dataset::Changed {
        base,
        replaced: Arc::new(replaced),
        added: Arc::new(added),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::Generator;

    #[test]
    fn updates_move_updated_at_resolutions_keep_it_and_additions_extend_the_set() {
        let now: DateTime<Utc> = "2026-11-23T12:00:00Z".parse().unwrap();
        let generated = Dataset::Generated {
            generator: Generator::default(),
            count: 10,
        };
        let changed = apply(&generated, &Change::Update(vec![1]), now);
        let changed = apply(&changed, &Change::Resolve(vec![2]), now);
        let changed = apply(&changed, &Change::Archive(vec![5]), now);
        assert_eq!(changed.value(5)["RecordState"], "ARCHIVED");
        assert_eq!(changed.updated_at(5), Some(now));
        let changed = apply(&changed, &Change::Add(3), now);
        assert_eq!(changed.len(), 13);
        assert!(!changed.has_deletions());
        let deleted = apply(&changed, &Change::Delete(vec![4]), now);
        assert!(deleted.is_deleted(4) && !deleted.is_deleted(3) && deleted.has_deletions());
        assert_eq!(
            deleted.updated_at(4),
            None,
            "no window matches a deleted finding"
        );
        assert_eq!(changed.updated_at(1), Some(now));
        assert!(changed.value(1)["Title"]
            .as_str()
            .unwrap()
            .contains("(updated"));
        assert_eq!(
            changed.updated_at(2),
            generated.updated_at(2),
            "workflow only"
        );
        assert_eq!(changed.value(2)["Workflow"]["Status"], "RESOLVED");
        assert_eq!(changed.text(3), generated.text(3), "untouched");
        assert_eq!(changed.updated_at(12), Some(now));
        let ids: std::collections::HashSet<_> = (0..13).filter_map(|i| changed.id(i)).collect();
        assert_eq!(ids.len(), 13, "new findings have ids of their own");
    }
}
