//! The service's own counts of a frozen request, grouped by account and by product: read-only
//! `GetFindingStatisticsV2` for the new Security Hub, and a temporary custom insight for
//! Security Hub CSPM (see [`insight`]). Both draw on the "other operations" quota (10 requests/s,
//! burst 30), paced and retried by the same loop as GetFindings, never on GetFindings' bucket.

pub mod insight;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use aws_config::SdkConfig;
use aws_sdk_securityhub::types::{GroupByField, GroupByRule};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::get_findings::{self, InjectFilters};
use super::retry::{retryable_error, Paced, RetryPolicy};
use super::{Limiter, Pace, SourceStats};
use crate::aws::Failure;
use crate::error::{Error, Result};
use crate::request::Api;

/// Requests per second of Security Hub's "other operations" quota.
pub const OTHER_RATE: f64 = 10.0;
/// Its burst.
pub const OTHER_BURST: u32 = 30;
/// The most groups `GetFindingStatisticsV2` returns per rule (the API model's maximum).
const MAX_STATISTIC_RESULTS: i32 = 400;
/// Insight results this long or longer may have been cut off by the service.
const INSIGHT_RESULTS_CAP: usize = 100;

/// What findings are counted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    /// The account that owns the finding.
    Account,
    /// The product that reported it.
    Product,
}

impl GroupBy {
    /// The attribute (v1 insight) or field (v2 statistics) of `api` grouped on.
    pub fn attribute(self, api: Api) -> &'static str {
        match (api, self) {
            (Api::GetFindings, GroupBy::Account) => "AwsAccountId",
            (Api::GetFindings, GroupBy::Product) => "ProductName",
            (Api::GetFindingsV2, GroupBy::Account) => "cloud.account.uid",
            (Api::GetFindingsV2, GroupBy::Product) => "metadata.product.name",
        }
    }

    /// The lake column holding the same value.
    pub fn column(self, api: Api) -> &'static str {
        match (api, self) {
            (Api::GetFindings, GroupBy::Account) => "aws_account_id",
            (Api::GetFindingsV2, GroupBy::Account) => "account_uid",
            (_, GroupBy::Product) => "product_name",
        }
    }

    /// How a user reads it.
    pub fn noun(self) -> &'static str {
        match self {
            GroupBy::Account => "account",
            GroupBy::Product => "product",
        }
    }
}

/// Counts per group value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Groups {
    /// Findings per value (findings without a value are in no group).
    pub counts: BTreeMap<String, u64>,
    /// The service returned as many groups as it returns at most: some may be missing.
    pub truncated: bool,
}

impl Groups {
    /// The sum over every group.
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }
}

/// What is counted: an API's filters (and v2 scopes), as a stream sends them.
#[derive(Debug, Clone, PartialEq)]
pub struct CountQuery {
    /// Which Security Hub.
    pub api: Api,
    /// Filters in that API's dialect.
    pub filters: Value,
    /// GetFindingsV2 `Scopes`.
    pub scopes: Option<Value>,
}

/// Asks one account's Security Hub in one Region for counts.
pub struct Counter {
    client: aws_sdk_securityhub::Client,
    limiter: Limiter,
    rng: Mutex<SmallRng>,
    stats: Arc<SourceStats>,
    /// Names the temporary insights (the job counted for).
    owner: String,
}

impl Counter {
    /// A counter with the credentials and Region of `config`, for job `owner`.
    pub fn new(config: &SdkConfig, owner: &str) -> Counter {
        let pace = Pace {
            rate: OTHER_RATE,
            burst: OTHER_BURST,
        };
        Counter {
            client: get_findings::client(config),
            limiter: pace.limiter(),
            rng: Mutex::new(SmallRng::from_os_rng()),
            stats: Arc::default(),
            owner: owner.to_string(),
        }
    }

    /// One call, paced on the "other operations" quota and retried as every call is.
    async fn call<T, F, Fut>(&self, attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let paced = Paced {
            limiter: &self.limiter,
            policy: RetryPolicy::default(),
            rng: &self.rng,
            stats: &self.stats,
            fault_limit: None,
        };
        paced.call(0, attempt).await.map(|(value, _)| value)
    }

    /// The counts of `query` by each of `by`, in that order. `stop` ends a count early (Ctrl-C):
    /// a temporary insight is deleted whatever happens once it exists.
    pub async fn count(
        &self,
        query: &CountQuery,
        by: &[GroupBy],
        stop: impl Future<Output = ()>,
    ) -> Result<Vec<Groups>> {
        match query.api {
            Api::GetFindingsV2 => {
                tokio::select! {
                    counted = self.statistics(query, by) => counted,
                    () = stop => Err(interrupted()),
                }
            }
            Api::GetFindings => {
                tokio::pin!(stop);
                let mut all = Vec::new();
                for group in by {
                    all.push(insight::count(self, &query.filters, *group, &mut stop).await?);
                }
                Ok(all)
            }
        }
    }

    /// GetFindingStatisticsV2 with one rule per grouping, each with the query's filters.
    async fn statistics(&self, query: &CountQuery, by: &[GroupBy]) -> Result<Vec<Groups>> {
        let rules: Vec<Value> = by
            .iter()
            .map(|g| json!({"Filters": query.filters, "GroupByField": g.attribute(Api::GetFindingsV2)}))
            .collect();
        let mut members = serde_json::Map::new();
        members.insert("GroupByRules".into(), Value::Array(rules));
        if let Some(scopes) = &query.scopes {
            members.insert("Scopes".into(), scopes.clone());
        }
        let inject = InjectFilters(Arc::new(members));
        let output = self
            .call(|| async {
                let mut call = self
                    .client
                    .get_finding_statistics_v2()
                    .max_statistic_results(MAX_STATISTIC_RESULTS);
                for group in by {
                    let field = GroupByField::from(group.attribute(Api::GetFindingsV2));
                    call =
                        call.group_by_rules(GroupByRule::builder().group_by_field(field).build());
                }
                call.customize()
                    .interceptor(inject.clone())
                    .send()
                    .await
                    .map_err(|e| {
                        refused(
                            "GetFindingStatisticsV2",
                            "securityhub:GetAdhocInsightResults",
                            &Failure::of(&e),
                        )
                    })
            })
            .await?;
        let results = output.group_by_results();
        Ok(by
            .iter()
            .map(|group| {
                let field = group.attribute(Api::GetFindingsV2);
                let values = results
                    .iter()
                    .find(|r| r.group_by_field() == Some(field))
                    .map(|r| r.group_by_values())
                    .unwrap_or_default();
                Groups {
                    counts: values
                        .iter()
                        .filter_map(|v| {
                            Some((v.field_value()?.to_string(), v.count()?.max(0) as u64))
                        })
                        .collect(),
                    truncated: values.len() >= MAX_STATISTIC_RESULTS as usize,
                }
            })
            .collect())
    }
}

/// The error for a counting call that failed: retryable failures are retried; a refusal names
/// the IAM action to allow.
fn refused(operation: &str, action: &str, failure: &Failure) -> Error {
    if let Some(retry) = retryable_error(failure) {
        return retry;
    }
    if failure.is_access_denied() {
        return Error::auth(
            format!(
                "Security Hub refused {operation} ({}): allow {action} for these credentials to count findings (see docs/guarantees.md, \"Reconciling with Security Hub\")",
                failure.summary()
            ),
            None,
        );
    }
    Error::Rejected {
        page: 0,
        message: format!("Security Hub rejected {operation} ({})", failure.summary()),
    }
}

/// A count stopped by Ctrl-C or SIGTERM.
fn interrupted() -> Error {
    Error::Interrupted("the count was interrupted; nothing was changed in the lake".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_name_the_action_and_faults_are_retried() {
        let denied = Failure {
            status: Some(403),
            code: Some("AccessDeniedException".into()),
            message: "not authorized".into(),
            transport: false,
        };
        let err = refused("CreateInsight", "securityhub:CreateInsight", &denied);
        assert!(matches!(err, Error::Auth { .. }), "{err}");
        assert!(
            err.to_string().contains("allow securityhub:CreateInsight"),
            "{err}"
        );
        let fault = Failure {
            status: Some(500),
            code: Some("InternalException".into()),
            ..denied
        };
        assert!(refused("x", "y", &fault).is_retryable());
    }
}
