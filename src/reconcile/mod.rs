//! Reconciles a lake with Security Hub itself (`verify --source`): per stream and per group
//! (account, product), the service's own count of the job's frozen request against the
//! distinct findings in the lake, every difference explained: findings missing from the lake,
//! findings of the lake updated after the freeze (counted with a second query over `UpdatedAt`
//! after it), findings deleted since. `--list-missing` reads the groups that differ again and
//! compares identities, which also tells a late arrival and a service that counts findings its
//! own GetFindings does not return.

pub mod job;
pub mod lake;
pub mod reread;

use std::collections::{BTreeSet, HashSet};

use aws_config::SdkConfig;
use chrono::Utc;

use crate::error::Result;
use crate::job::checkpoint::{Checkpoint, PartRecord};
use crate::job::Cancel;
use crate::sink::ObjectStore;
use crate::source::counts::{CountQuery, Counter, GroupBy, Groups};
use lake::LakeSide;

/// One stream to reconcile: its credentials and Region, checkpoint and parts.
pub struct StreamToCheck<'a> {
    /// `account/Region`, as the user reads it.
    pub label: String,
    /// The stream's account and Region.
    pub config: SdkConfig,
    /// Its checkpoint (the frozen request).
    pub checkpoint: &'a Checkpoint,
    /// Its parts.
    pub parts: Vec<PartRecord>,
}

/// What reconciling one stream found.
#[derive(Debug, Default)]
pub struct Verdict {
    /// The service's count of the frozen request.
    pub service: u64,
    /// Distinct findings in the lake.
    pub lake: u64,
    /// Findings the service has that the lake does not.
    pub missing: u64,
    /// Findings of the lake updated after the freeze (no longer in the frozen window).
    pub updated_after: u64,
    /// Findings of the lake Security Hub no longer returns (deleted since the freeze).
    pub gone: u64,
    /// What the user reads, one line each.
    pub lines: Vec<String>,
    /// Lines that make the verification fail.
    pub problems: Vec<String>,
}

/// The groupings counted, the first of which gives totals.
const GROUPINGS: [GroupBy; 2] = [GroupBy::Account, GroupBy::Product];

/// Reconciles one stream; `owner` names temporary insights; `list_missing` reads differing
/// accounts again.
pub async fn stream(
    store: &dyn ObjectStore,
    check: &StreamToCheck<'_>,
    owner: &str,
    list_missing: bool,
    cancel: &Cancel,
) -> Result<Verdict> {
    let request = &check.checkpoint.request;
    let api = request.identity.api;
    let counter = Counter::new(&check.config, owner);
    let frozen = CountQuery {
        api,
        filters: request.filters.clone(),
        scopes: request.identity.scopes.clone(),
    };
    let service = counter
        .count(&frozen, &GROUPINGS, cancel.cancelled())
        .await?;
    let now = Utc::now();
    let after = match api.changed_since_filters(&request.filters, request.frozen_at, now) {
        Some((filters, _)) => {
            let query = CountQuery { filters, ..frozen };
            Some(
                counter
                    .count(&query, &GROUPINGS, cancel.cancelled())
                    .await?,
            )
        }
        None => None,
    };
    let lake = lake::read(store, api, &check.parts, list_missing).await?;
    let mut verdict = compare(&check.label, &service, after.as_deref(), &lake);
    if lake.duplicates > 0 {
        verdict.problems.push(format!(
            "stream {}: the lake holds {} rows more than distinct findings (the same Id and product twice); query the `latest` view, and re-export under a new --job-id",
            check.label, lake.duplicates
        ));
    }
    if list_missing {
        let accounts = to_read_again(&service[0], after.as_ref().map(|a| &a[0]), &lake);
        for account in accounts {
            let expected = service[0].counts.get(&account).copied().unwrap_or(0);
            identities(check, &lake, &account, expected, &mut verdict).await?;
        }
    }
    Ok(verdict)
}

/// Compares counts group by group (totals from the account grouping) and explains each
/// difference.
fn compare(label: &str, service: &[Groups], after: Option<&[Groups]>, lake: &LakeSide) -> Verdict {
    let mut verdict = Verdict {
        service: service[0].total(),
        lake: lake.by_account.values().sum(),
        ..Verdict::default()
    };
    for (index, group) in GROUPINGS.iter().enumerate() {
        let counted = &service[index];
        if counted.truncated {
            verdict.problems.push(format!(
                "stream {label}: Security Hub returned {} {} groups, the most it returns, so its counts may be cut off and the lake cannot be proven against them",
                counted.counts.len(),
                group.noun()
            ));
        }
        let changed = after.map(|a| &a[index].counts);
        let lake_groups = lake.groups(*group);
        let values: BTreeSet<&String> = counted.counts.keys().chain(lake_groups.keys()).collect();
        for value in values {
            let s = counted.counts.get(value).copied().unwrap_or(0);
            let l = lake_groups.get(value).copied().unwrap_or(0);
            let a = changed.and_then(|c| c.get(value)).copied().unwrap_or(0);
            let (missing, updated, gone) = explain(s, l, a);
            if missing > 0 {
                verdict.problems.push(format!(
                    "stream {label}: {missing} findings of {} {value} are in Security Hub but not in the lake ({s} counted, {l} in the lake), or arrived after the export's freeze with an UpdatedAt inside its window; --list-missing names them",
                    group.noun()
                ));
            }
            if *group == GroupBy::Account {
                verdict.missing += missing;
                verdict.updated_after += updated;
                verdict.gone += gone;
            }
        }
    }
    verdict.lines.push(line(label, &verdict, after.is_some()));
    verdict
}

/// A group's difference as (missing, updated after the freeze, deleted since) from the
/// service's count `s`, the lake's `l` and the count `a` updated after the freeze.
fn explain(s: u64, l: u64, a: u64) -> (u64, u64, u64) {
    if s >= l {
        return (s - l, 0, 0);
    }
    let extra = l - s;
    let updated = extra.min(a);
    (0, updated, extra - updated)
}

/// The stream's line: counts, and what explains a lake holding more.
fn line(label: &str, verdict: &Verdict, after_counted: bool) -> String {
    let mut line = format!(
        "stream {label}: Security Hub counts {} findings for the job's frozen request, the lake holds {}",
        verdict.service, verdict.lake
    );
    if verdict.missing > 0 {
        line.push_str(&format!("; {} missing from the lake", verdict.missing));
    }
    if verdict.updated_after > 0 {
        line.push_str(&format!("; {} updated in Security Hub after the export's freeze (their newer state is outside the job's window: a later export or the feed holds it; not an error)", verdict.updated_after));
    }
    if verdict.gone > 0 {
        line.push_str(&format!("; {} no longer in Security Hub (deleted since the freeze: retention removes a finding 90 days after its last update; not an error)", verdict.gone));
    }
    if !after_counted && verdict.lake > verdict.service {
        line.push_str("; the request has no UpdatedAt window to count changes after, so the lake's extra findings are not told apart");
    }
    line
}

/// The accounts whose identities are compared: those whose counts differ, or whose findings
/// changed after the freeze (a change can hide a missing finding behind an extra one).
fn to_read_again(service: &Groups, after: Option<&Groups>, lake: &LakeSide) -> Vec<String> {
    let accounts: BTreeSet<&String> = service
        .counts
        .keys()
        .chain(lake.by_account.keys())
        .collect();
    accounts
        .into_iter()
        .filter(|account| {
            let s = service.counts.get(*account).copied().unwrap_or(0);
            let l = lake.by_account.get(*account).copied().unwrap_or(0);
            let a = after
                .and_then(|c| c.counts.get(*account))
                .copied()
                .unwrap_or(0);
            s != l || a > 0
        })
        .cloned()
        .collect()
}

/// Reads `account`'s findings of the frozen request again and compares identities with the
/// lake's; the exact missing ones replace the count's estimate for that account.
async fn identities(
    check: &StreamToCheck<'_>,
    lake: &LakeSide,
    account: &str,
    expected: u64,
    verdict: &mut Verdict,
) -> Result<()> {
    let request = &check.checkpoint.request;
    let api = request.identity.api;
    let label = &check.label;
    let Some(filters) = reread::for_account(api, &request.filters, account)? else {
        return Ok(());
    };
    let found = reread::read(&check.config, request, filters.clone()).await?;
    let empty = HashSet::new();
    let in_lake = lake.identities.get(account).unwrap_or(&empty);
    let mut missing: Vec<_> = found
        .iter()
        .filter(|(id, _)| !in_lake.contains(*id))
        .collect();
    missing.sort();
    for ((id, product), processed) in &missing {
        let late = processed.filter(|at| *at > request.frozen_at);
        let why = match late {
            Some(at) => {
                format!("arrived after the export's freeze (Security Hub received it at {at})")
            }
            None => "missed by the export".to_string(),
        };
        verdict.lines.push(format!(
            "missing: {id} {product} (account {account}): {why}"
        ));
    }
    if (found.len() as u64) < expected {
        verdict.problems.push(format!(
            "stream {label}: Security Hub counts {expected} findings of account {account} but its own GetFindings returns {} when read again: a service-side fault to report to AWS Support, not a lake to trust",
            found.len()
        ));
    }
    let extra: Vec<_> = in_lake
        .iter()
        .filter(|id| !found.contains_key(*id))
        .collect();
    if !extra.is_empty() {
        let since = api.changed_since_filters(&request.filters, request.frozen_at, Utc::now());
        let changed = match since {
            Some((filters, _)) => {
                let narrowed = reread::for_account(api, &filters, account)?;
                match narrowed {
                    Some(f) => reread::read(&check.config, request, f).await?,
                    None => Default::default(),
                }
            }
            None => Default::default(),
        };
        let updated = extra.iter().filter(|id| changed.contains_key(**id)).count() as u64;
        verdict.lines.push(format!(
            "account {account}: {updated} findings of the lake were updated after the freeze, {} are no longer returned by Security Hub (deleted, or changed so they no longer match the filters)",
            extra.len() as u64 - updated
        ));
    }
    let counted_missing =
        expected.saturating_sub(lake.by_account.get(account).copied().unwrap_or(0));
    verdict.missing = verdict.missing - counted_missing.min(verdict.missing) + missing.len() as u64;
    if !missing.is_empty() && counted_missing == 0 {
        verdict.problems.push(format!(
            "stream {label}: {} findings of account {account} are in Security Hub but not in the lake (the counts agreed only because other findings changed)",
            missing.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lake_with_more_is_explained_by_changes_first_then_deletions() {
        assert_eq!(explain(10, 10, 3), (0, 0, 0));
        assert_eq!(explain(10, 7, 0), (3, 0, 0));
        assert_eq!(explain(10, 14, 3), (0, 3, 1));
        assert_eq!(explain(10, 12, 5), (0, 2, 0));
    }

    #[test]
    fn accounts_are_read_again_where_counts_differ_or_findings_changed() {
        let groups = |pairs: &[(&str, u64)]| Groups {
            counts: pairs.iter().map(|(v, c)| (v.to_string(), *c)).collect(),
            truncated: false,
        };
        let lake = LakeSide {
            by_account: [
                ("a".to_string(), 5),
                ("b".to_string(), 5),
                ("c".to_string(), 5),
            ]
            .into(),
            ..LakeSide::default()
        };
        let service = groups(&[("a", 5), ("b", 6), ("c", 5)]);
        let after = groups(&[("c", 1)]);
        assert_eq!(to_read_again(&service, Some(&after), &lake), ["b", "c"]);
    }
}
