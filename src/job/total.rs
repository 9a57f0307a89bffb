//! A new job's expected total, from Security Hub's own count of its frozen request (see
//! `source::counts`), and what the total decides: a stream whose pages fit in the burst is read
//! as one chain with no probe, and a small stream is never split into more shards than its
//! pages justify.

use std::sync::atomic::{AtomicBool, Ordering};

use aws_config::SdkConfig;

use crate::plan::{ExportPlan, TotalMode};
use crate::request::{Api, FrozenRequest};
use crate::source::counts::{CountQuery, Counter, GroupBy};
use crate::source::Pace;

/// Pages a shard should have at least to be worth its own chain (its first and last pages
/// are the overhead of a shard).
const MIN_PAGES_PER_SHARD: u64 = 4;

/// A count that takes longer than this is given up: the export does not wait on it.
const COUNT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Said once a process: why the run shows no total.
static SAID_NO_TOTAL: AtomicBool = AtomicBool::new(false);

fn say_once(message: String) {
    if !SAID_NO_TOTAL.swap(true, Ordering::Relaxed) {
        tracing::info!("{message}");
    }
}

/// The findings Security Hub counts for `request` now, if the plan allows counting and the
/// credentials may; `None` (said once) otherwise: the run goes on without a total.
pub async fn expected(
    plan: &ExportPlan,
    config: &SdkConfig,
    request: &FrozenRequest,
    job_id: &str,
) -> Option<u64> {
    let api = request.identity.api;
    match (plan.total, api) {
        (TotalMode::Off, _) => return None,
        (TotalMode::Auto, Api::GetFindings) => {
            say_once("no expected total: Security Hub CSPM has no read-only count; pass --total insight to count with a temporary custom insight (securityhub:CreateInsight, GetInsightResults, DeleteInsight), deleted at once".into());
            return None;
        }
        _ => {}
    }
    let query = CountQuery {
        api,
        filters: request.filters.clone(),
        scopes: request.identity.scopes.clone(),
    };
    let counter = Counter::new(config, job_id);
    let counting = counter.count(&query, &[GroupBy::Account], std::future::pending());
    let counted = tokio::time::timeout(COUNT_TIMEOUT, counting)
        .await
        .unwrap_or_else(|_| {
            Err(crate::error::Error::Transient {
                throttled: false,
                message: format!("the count took more than {COUNT_TIMEOUT:?}"),
            })
        });
    match counted {
        Ok(groups) if groups[0].truncated => {
            say_once("no expected total: Security Hub returned as many account groups as it returns at most, so the count may be cut off".into());
            None
        }
        Ok(groups) => Some(groups[0].total()),
        Err(err) => {
            say_once(format!(
                "no expected total ({}); the export goes on without one",
                crate::error::one_line(&err)
            ));
            None
        }
    }
}

/// Whether a stream of `pages` pages (when counted) is read within the burst.
pub fn fits_in_burst(pages: Option<u64>, pace: &Pace) -> bool {
    pages.is_some_and(|pages| pages <= u64::from(pace.burst))
}

/// The most chains a stream of `pages` pages (when counted) is split into.
pub fn max_shards_for(pages: Option<u64>, max_shards: u32) -> u32 {
    match pages {
        Some(pages) => max_shards.min((pages / MIN_PAGES_PER_SHARD).max(1) as u32),
        None => max_shards,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_streams_are_one_chain_and_shards_are_bounded_by_pages() {
        let pace = Pace {
            rate: 3.0,
            burst: 6,
        };
        assert!(fits_in_burst(Some(3), &pace));
        assert!(fits_in_burst(Some(6), &pace));
        assert!(!fits_in_burst(Some(7), &pace));
        assert!(!fits_in_burst(None, &pace), "not counted: probe as before");
        assert_eq!(max_shards_for(Some(30), 16), 7);
        assert_eq!(max_shards_for(Some(10_000), 16), 16);
        assert_eq!(max_shards_for(Some(2), 16), 1);
        assert_eq!(max_shards_for(None, 16), 16);
    }
}
