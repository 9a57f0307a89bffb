//! Counting with a temporary Security Hub CSPM custom insight: `CreateInsight` with the frozen
//! filters, `GetInsightResults`, then `DeleteInsight` always (after an error and after Ctrl-C
//! too). Its name says what made it, for which job and when, so a leftover from a killed run is
//! recognisable; [`remove_leftovers`] deletes the job's own, and any older than an hour.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

use super::{interrupted, refused, Counter, GroupBy, Groups, INSIGHT_RESULTS_CAP};
use crate::aws::Failure;
use crate::error::{Error, Result};
use crate::request::Api;
use crate::source::get_findings::InjectFilters;

/// Every temporary insight's name starts with this.
const NAME_PREFIX: &str = "sechub-export temporary count for job ";
/// A leftover of another job is removed once it is this old (a count takes seconds).
const STALE_AFTER: chrono::Duration = chrono::Duration::hours(1);

/// The name of a temporary insight made for `job` at `now`.
fn name(job: &str, now: DateTime<Utc>) -> String {
    format!(
        "{NAME_PREFIX}{job} at {} (deleted when the count ends)",
        now.to_rfc3339_opts(SecondsFormat::Secs, true)
    )
}

/// The job and creation time a temporary insight's name records; `None` for any other insight.
fn parse_name(name: &str) -> Option<(&str, DateTime<Utc>)> {
    let rest = name.strip_prefix(NAME_PREFIX)?;
    let (job, rest) = rest.split_once(" at ")?;
    let (time, _) = rest.split_once(' ')?;
    Some((job, time.parse().ok()?))
}

/// Whether a temporary insight of `job` made at `made` is removed by a count for `owner` now.
fn is_leftover(job: &str, made: DateTime<Utc>, owner: &str, now: DateTime<Utc>) -> bool {
    job == owner || now - made > STALE_AFTER
}

/// Counts `filters` grouped by `group` with a temporary insight, deleted whatever happens.
pub(super) async fn count(
    counter: &Counter,
    filters: &Value,
    group: GroupBy,
    stop: &mut Pin<&mut impl Future<Output = ()>>,
) -> Result<Groups> {
    let arn = create(counter, filters, group).await?;
    let counted = tokio::select! {
        counted = results(counter, &arn) => counted,
        () = stop.as_mut() => Err(interrupted()),
    };
    let deleted = delete(counter, &arn).await;
    match (counted, deleted) {
        (Err(err), Err(left)) => {
            tracing::warn!("{}", crate::error::one_line(&left));
            Err(err)
        }
        (Err(err), Ok(())) => Err(err),
        (Ok(_), Err(left)) => Err(left),
        (Ok(groups), Ok(())) => Ok(groups),
    }
}

/// CreateInsight with the filters exactly as frozen.
async fn create(counter: &Counter, filters: &Value, group: GroupBy) -> Result<String> {
    let mut members = serde_json::Map::new();
    members.insert("Filters".into(), filters.clone());
    let inject = InjectFilters(Arc::new(members));
    let name = name(&counter.owner, Utc::now());
    let output = counter
        .call(|| async {
            counter
                .client
                .create_insight()
                .name(&name)
                .group_by_attribute(group.attribute(Api::GetFindings))
                .customize()
                .interceptor(inject.clone())
                .send()
                .await
                .map_err(|e| {
                    refused(
                        "CreateInsight",
                        "securityhub:CreateInsight",
                        &Failure::of(&e),
                    )
                })
        })
        .await?;
    let arn = output
        .insight_arn()
        .ok_or_else(|| Error::Internal("CreateInsight answered without an InsightArn".into()))?
        .to_string();
    tracing::debug!("created temporary insight {arn}");
    Ok(arn)
}

/// GetInsightResults of the temporary insight.
async fn results(counter: &Counter, arn: &str) -> Result<Groups> {
    let output = counter
        .call(|| async {
            counter
                .client
                .get_insight_results()
                .insight_arn(arn)
                .send()
                .await
                .map_err(|e| {
                    refused(
                        "GetInsightResults",
                        "securityhub:GetInsightResults",
                        &Failure::of(&e),
                    )
                })
        })
        .await?;
    let values = output
        .insight_results()
        .map(|r| r.result_values())
        .unwrap_or_default();
    Ok(Groups {
        counts: values
            .iter()
            .filter_map(|v| {
                Some((
                    v.group_by_attribute_value()?.to_string(),
                    v.count()?.max(0) as u64,
                ))
            })
            .collect(),
        truncated: values.len() >= INSIGHT_RESULTS_CAP,
    })
}

/// DeleteInsight; an insight already gone counts as deleted.
async fn delete(counter: &Counter, arn: &str) -> Result<()> {
    let deleted = counter
        .call(|| async {
            match counter
                .client
                .delete_insight()
                .insight_arn(arn)
                .send()
                .await
            {
                Ok(_) => Ok(()),
                Err(e) => {
                    let failure = Failure::of(&e);
                    if failure.code.as_deref() == Some("ResourceNotFoundException") {
                        return Ok(());
                    }
                    Err(refused(
                        "DeleteInsight",
                        "securityhub:DeleteInsight",
                        &failure,
                    ))
                }
            }
        })
        .await;
    deleted.map_err(|err| {
        Error::auth(
            format!(
                "the temporary insight {arn} could not be deleted ({}); delete it in the Security Hub console (Insights), or allow securityhub:DeleteInsight and run verify --source again, which removes it",
                crate::error::one_line(&err)
            ),
            None,
        )
    })
}

/// Deletes this job's temporary insights left by a killed run, and other jobs' older than an
/// hour; returns how many. Needs `securityhub:GetInsights`.
pub async fn remove_leftovers(counter: &Counter) -> Result<usize> {
    let now = Utc::now();
    let mut token: Option<String> = None;
    let mut leftovers = Vec::new();
    loop {
        let page = counter
            .call(|| async {
                counter
                    .client
                    .get_insights()
                    .max_results(100)
                    .set_next_token(token.clone())
                    .send()
                    .await
                    .map_err(|e| {
                        refused("GetInsights", "securityhub:GetInsights", &Failure::of(&e))
                    })
            })
            .await?;
        for insight in page.insights() {
            let leftover = parse_name(insight.name().unwrap_or_default())
                .is_some_and(|(job, made)| is_leftover(job, made, &counter.owner, now));
            if leftover {
                leftovers.extend(insight.insight_arn().map(str::to_string));
            }
        }
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    for arn in &leftovers {
        delete(counter, arn).await?;
        tracing::info!("removed temporary insight {arn} left by an earlier count");
    }
    Ok(leftovers.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_temporary_insight_is_known_by_its_name_and_only_its_own_job_or_age_removes_it() {
        let made: DateTime<Utc> = "2026-12-07T02:30:00Z".parse().unwrap();
        let named = name("job-1", made);
        assert_eq!(parse_name(&named), Some(("job-1", made)));
        assert_eq!(parse_name("Critical findings by account"), None);
        let soon = made + chrono::Duration::minutes(5);
        assert!(is_leftover("job-1", made, "job-1", soon));
        assert!(
            !is_leftover("job-1", made, "job-2", soon),
            "another job's count may be running"
        );
        assert!(is_leftover(
            "job-1",
            made,
            "job-2",
            made + chrono::Duration::hours(2)
        ));
    }
}
