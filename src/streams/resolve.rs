//! Resolving a stream spec into streams when a job is created: the administrator's members for
//! `--accounts organization`, the Regions where Security Hub is enabled for `--regions all`.
//! The result is frozen in the job's stream record, so every later run reads the same set.

use aws_config::{Region, SdkConfig};

use futures::StreamExt;
use serde_json::Value;

use super::aggregation::{self, AccountAggregation};
use super::{regions, Accounts, Regions, Stream, StreamSpec};
use crate::aws::Failure;
use crate::error::{Error, Result};
use crate::request::Api;

/// Streams read at once while their accounts' aggregation is read.
const AGGREGATION_READS: usize = 16;

/// The resolved stream set and what each account's aggregation was found to be.
#[derive(Debug, Clone)]
pub struct Resolution {
    /// Every stream, sorted.
    pub streams: Vec<Stream>,
    /// Accounts with more than one Region in the job: their aggregation (the rest need none).
    pub aggregation: Vec<AccountAggregation>,
}

/// The streams of `spec` for `caller` (account) whose own Region is `home_region`: every
/// account crossed with every Region, sorted; an aggregation home Region's stream leaves out
/// the job's other Regions of its account (see [`super::aggregation`]), and a stream whose
/// Region `filters` exclude altogether is left out of the job.
pub async fn resolve(
    spec: &StreamSpec,
    base: &SdkConfig,
    caller: &str,
    home_region: &str,
    api: Api,
    filters: &Value,
) -> Result<Resolution> {
    let accounts = match &spec.accounts {
        Accounts::Caller => vec![caller.to_string()],
        Accounts::Listed(ids) => ids.clone(),
        Accounts::Organization => organization(base, caller, home_region).await?,
    };
    let regions = match &spec.regions {
        Regions::Caller => vec![home_region.to_string()],
        Regions::Listed(names) => names.clone(),
        Regions::All => enabled_regions(base, home_region).await?,
    };
    let aggregation = if regions.len() > 1 {
        let reads = accounts.iter().map(|account_id| async {
            let probe = Stream::new(account_id, &regions[0]);
            AccountAggregation {
                account_id: account_id.clone(),
                aggregation: aggregation::detect(base, caller, &probe, spec.role.as_ref()).await,
            }
        });
        futures::stream::iter(reads)
            .buffered(AGGREGATION_READS)
            .collect::<Vec<_>>()
            .await
    } else {
        Vec::new()
    };
    let mut streams = Vec::new();
    for account_id in &accounts {
        let found = aggregation.iter().find(|a| &a.account_id == account_id);
        for region in &regions {
            let mut stream = Stream::new(account_id, region);
            if let Some(found) = found {
                stream.left_out = found.aggregation.left_out(region, &regions);
            }
            // An administrator sees its members' findings: with several accounts in the job,
            // each account's stream reads only what it owns, so no finding is read twice.
            stream.own_findings_only = accounts.len() > 1;
            if stream.filters(api, filters)?.is_some() {
                streams.push(stream);
            } else {
                tracing::info!(
                    "stream {} left out: the filters keep none of its Regions or accounts",
                    stream.label()
                );
            }
        }
    }
    streams.sort();
    Ok(Resolution {
        streams,
        aggregation,
    })
}

fn securityhub(base: &SdkConfig, region: &str) -> aws_sdk_securityhub::Client {
    let config = base
        .to_builder()
        .region(Region::new(region.to_string()))
        .build();
    aws_sdk_securityhub::Client::new(&config)
}

/// The administrator (the caller) and its enabled members, from Security Hub ListMembers.
async fn organization(base: &SdkConfig, caller: &str, region: &str) -> Result<Vec<String>> {
    let client = securityhub(base, region);
    let mut accounts = vec![caller.to_string()];
    let mut pages = client
        .list_members()
        .only_associated(true)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|err| {
            let failure = Failure::of(&err);
            if failure.transport {
                return Error::Unreachable {
                    service: "Security Hub".into(),
                    message: failure.message,
                };
            }
            Error::auth(
                format!(
                    "--accounts organization lists the members of the Security Hub administrator, but ListMembers failed in {region} ({}); run it with the delegated administrator's credentials, or list the accounts with --accounts",
                    failure.summary()
                ),
                None,
            )
        })?;
        for member in page.members() {
            if let Some(id) = member.account_id() {
                accounts.push(id.to_string());
            }
        }
    }
    if accounts.len() == 1 {
        return Err(Error::auth(
            format!("--accounts organization found no enabled member accounts of {caller} in {region} (ListMembers is empty); run it as the Security Hub (delegated) administrator, or list the accounts with --accounts"),
            None,
        ));
    }
    accounts.sort();
    accounts.dedup();
    Ok(accounts)
}

/// Codes meaning "Security Hub is not on here": not subscribed, or a Region not enabled for the
/// account (its credentials are unknown there).
fn not_enabled(code: &str) -> bool {
    matches!(
        code,
        "InvalidAccessException"
            | "UnrecognizedClientException"
            | "InvalidClientTokenId"
            | "ResourceNotFoundException"
    )
}

/// The Regions of the caller's partition where its Security Hub is enabled (DescribeHub
/// answers), probed together.
async fn enabled_regions(base: &SdkConfig, home_region: &str) -> Result<Vec<String>> {
    let probes = regions::in_partition_of(home_region)
        .into_iter()
        .map(|region| async move {
            let answer = securityhub(base, &region).describe_hub().send().await;
            (region, answer.map_err(|err| Failure::of(&err)))
        });
    let mut enabled = Vec::new();
    let mut skipped = Vec::new();
    for (region, answer) in futures::future::join_all(probes).await {
        match answer {
            Ok(_) => enabled.push(region),
            // Not subscribed, or an opt-in Region the account has not enabled.
            Err(failure) if failure.code.as_deref().is_some_and(not_enabled) => {
                skipped.push(format!(
                    "{region} ({})",
                    failure.code.as_deref().unwrap_or_default()
                ));
            }
            Err(failure) if failure.is_access_denied() => {
                return Err(Error::auth(
                    format!("--regions all probes each Region with DescribeHub, which was denied in {region} ({}); allow securityhub:DescribeHub, or list Regions with --regions", failure.summary()),
                    None,
                ))
            }
            Err(failure) => {
                return Err(Error::Unreachable {
                    service: format!("Security Hub in {region}"),
                    message: format!(
                        "DescribeHub failed ({}) while finding the Regions for --regions all; list them with --regions",
                        failure.summary()
                    ),
                })
            }
        }
    }
    tracing::info!(
        "--regions all probed the {} Regions this build knows in the {} partition with DescribeHub: Security Hub is enabled in {}; skipped, not enabled or not opted in: {}",
        enabled.len() + skipped.len(),
        regions::partition(home_region),
        if enabled.is_empty() { "none".into() } else { enabled.join(", ") },
        if skipped.is_empty() { "none".into() } else { skipped.join(", ") }
    );
    if enabled.is_empty() {
        return Err(Error::auth(
            format!("--regions all found no Region of the {} partition where Security Hub is enabled for this account; enable it, or list Regions with --regions", regions::partition(home_region)),
            None,
        ));
    }
    Ok(enabled)
}
