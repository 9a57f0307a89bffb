//! The service's own counts, answered from the emulator's findings with its own filter code:
//! Security Hub CSPM's custom insights (`CreateInsight`, `GetInsightResults`, `DeleteInsight`,
//! `GetInsights`) and the new Security Hub's `GetFindingStatisticsV2`. They draw on the
//! "other operations" quota (10 requests/s, burst 30), not GetFindings', and each can be denied
//! as IAM would (`Faults::denied_actions`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use rand::Rng;
use serde::Serialize;
use serde_json::{json, Value};

use super::hubs::{self, Hub};
use super::ocsf;
use super::query::{self, Dataset};
use super::replies::{invalid_input, service_error, throttled};
use super::server::{asff_matching, EmulatorState};
use crate::semantics::Api;

/// Requests per second of the "other operations" quota.
pub(crate) const OTHER_RATE: f64 = 10.0;
/// Its burst.
pub(crate) const OTHER_BURST: u32 = 30;
/// The most results `GetFindingStatisticsV2` returns per group-by rule (the model's maximum).
const MAX_STATISTIC_RESULTS: i64 = 400;

/// A custom insight, as CreateInsight stored it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct Insight {
    insight_arn: String,
    name: String,
    filters: Value,
    group_by_attribute: String,
    #[serde(skip)]
    owner: (String, String),
}

/// The custom insights of every account and Region, and a counter for their ARNs.
#[derive(Debug, Default)]
pub(super) struct Insights {
    by_arn: std::sync::Mutex<BTreeMap<String, Insight>>,
    next: AtomicU64,
}

impl Insights {
    /// How many custom insights exist (tests check that none is left behind).
    pub(super) fn count(&self) -> usize {
        self.by_arn.lock().expect("insights").len()
    }
}

/// The ASFF attributes an insight can group by, and where each is in a finding.
const GROUP_BY_ATTRIBUTES: &[(&str, &str)] = &[
    ("AwsAccountId", "AwsAccountId"),
    ("ProductName", "ProductName"),
    ("ProductArn", "ProductArn"),
    ("CompanyName", "CompanyName"),
    ("GeneratorId", "GeneratorId"),
    ("RecordState", "RecordState"),
    ("Region", "Region"),
    ("SeverityLabel", "Severity.Label"),
    ("WorkflowStatus", "Workflow.Status"),
    ("ComplianceStatus", "Compliance.Status"),
    ("ResourceType", "Resources.Type"),
    ("ResourceId", "Resources.Id"),
    ("Type", "Types"),
];

/// A counting call let through: the caller's hub, its account and Region, the latency to add.
struct Admitted {
    hub: Arc<Hub>,
    owner: (String, String),
    latency: Duration,
}

/// The checks every counting call passes first: a hub for the caller, IAM, the quota, the
/// latency. `Err` is the answer to send instead.
fn admit(
    state: &EmulatorState,
    headers: &HeaderMap,
    action: &str,
    api: Api,
) -> Result<Admitted, Box<Response>> {
    state
        .counters
        .count_requests
        .fetch_add(1, Ordering::Relaxed);
    let (account, region) = hubs::caller(headers);
    let faults = state.faults.lock().expect("faults").clone();
    if faults.denied_actions.iter().any(|a| a == action) {
        return Err(Box::new(service_error(
            StatusCode::FORBIDDEN,
            "AccessDeniedException",
            &format!(
                "User: arn:aws:iam::{account}:user/emulator is not authorized to perform: {action} because no identity-based policy allows the {action} action"
            ),
        )));
    }
    let Some(hub) = state.hubs.get(&account, &region) else {
        return Err(Box::new(hubs::not_enabled(api, &account)));
    };
    if !state.services.serves(api) {
        return Err(Box::new(hubs::not_enabled(api, &account)));
    }
    if !hub
        .other_bucket
        .lock()
        .expect("bucket")
        .try_take(Instant::now())
    {
        return Err(Box::new(throttled(api, &state.counters.throttled_quota)));
    }
    let latency = match faults.latency_ms {
        0 => Duration::ZERO,
        ms => Duration::from_millis(
            state
                .rng
                .lock()
                .expect("rng")
                .random_range(ms / 2..=ms * 3 / 2),
        ),
    };
    Ok(Admitted {
        hub,
        owner: (account, region),
        latency,
    })
}

fn ok(body: Value) -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// `POST /insights`: CreateInsight.
pub(super) async fn create_insight(
    State(state): State<Arc<EmulatorState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Admitted {
        owner: (account, region),
        latency,
        ..
    } = match admit(
        &state,
        &headers,
        "securityhub:CreateInsight",
        Api::GetFindings,
    ) {
        Ok(admitted) => admitted,
        Err(answer) => return *answer,
    };
    tokio::time::sleep(latency).await;
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let name = request["Name"].as_str().unwrap_or_default();
    let group_by = request["GroupByAttribute"].as_str().unwrap_or_default();
    let filters = request.get("Filters").cloned().unwrap_or(Value::Null);
    if name.trim().is_empty() || !filters.is_object() {
        return invalid_input(Api::GetFindings, "Name and Filters are required");
    }
    if !GROUP_BY_ATTRIBUTES.iter().any(|(a, _)| *a == group_by) {
        return invalid_input(
            Api::GetFindings,
            &format!("GroupByAttribute {group_by:?} is not a valid grouping attribute"),
        );
    }
    if let Err(message) = query::check_supported(&filters) {
        return invalid_input(Api::GetFindings, &message);
    }
    let number = state.insights.next.fetch_add(1, Ordering::Relaxed);
    let arn = format!(
        "arn:aws:securityhub:{region}:{account}:insight/{account}/custom/{:08x}-emul-{number:04}",
        rand::random::<u32>()
    );
    let insight = Insight {
        insight_arn: arn.clone(),
        name: name.to_string(),
        filters,
        group_by_attribute: group_by.to_string(),
        owner: (account, region),
    };
    state
        .insights
        .by_arn
        .lock()
        .expect("insights")
        .insert(arn.clone(), insight);
    ok(json!({"InsightArn": arn}))
}

/// The insight `arn` if the caller owns it, else the ResourceNotFoundException to answer.
fn owned(
    state: &EmulatorState,
    arn: &str,
    owner: &(String, String),
) -> Result<Insight, Box<Response>> {
    let insights = state.insights.by_arn.lock().expect("insights");
    match insights.get(arn) {
        Some(insight) if &insight.owner == owner => Ok(insight.clone()),
        _ => Err(Box::new(service_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            &format!("Insight {arn} not found"),
        ))),
    }
}

/// `GET /insights/results/{arn}`: GetInsightResults, counted now from the hub's findings.
pub(super) async fn get_insight_results(
    State(state): State<Arc<EmulatorState>>,
    headers: HeaderMap,
    Path(arn): Path<String>,
) -> Response {
    let Admitted {
        hub,
        owner,
        latency,
    } = match admit(
        &state,
        &headers,
        "securityhub:GetInsightResults",
        Api::GetFindings,
    ) {
        Ok(admitted) => admitted,
        Err(answer) => return *answer,
    };
    tokio::time::sleep(latency).await;
    let insight = match owned(&state, &arn, &owner) {
        Ok(insight) => insight,
        Err(answer) => return *answer,
    };
    let path = GROUP_BY_ATTRIBUTES
        .iter()
        .find(|(a, _)| *a == insight.group_by_attribute)
        .map_or("AwsAccountId", |(_, p)| *p);
    let attribute = insight.group_by_attribute.clone();
    let dataset = hub.dataset();
    let counted = tokio::task::spawn_blocking(move || {
        let present = (0..dataset.len()).filter(|&i| !dataset.is_deleted(i));
        let found = asff_matching(&dataset, &insight.filters, present);
        group(found.into_iter().map(|i| dataset.value(i)), path)
    })
    .await
    .unwrap_or_default();
    let values: Vec<Value> = ranked(counted, true, usize::MAX)
        .into_iter()
        .map(|(value, count)| json!({"GroupByAttributeValue": value, "Count": count}))
        .collect();
    ok(json!({"InsightResults": {
        "InsightArn": arn,
        "GroupByAttribute": attribute,
        "ResultValues": values,
    }}))
}

/// `DELETE /insights/{arn}`: DeleteInsight.
pub(super) async fn delete_insight(
    State(state): State<Arc<EmulatorState>>,
    headers: HeaderMap,
    Path(arn): Path<String>,
) -> Response {
    let Admitted { owner, .. } = match admit(
        &state,
        &headers,
        "securityhub:DeleteInsight",
        Api::GetFindings,
    ) {
        Ok(admitted) => admitted,
        Err(answer) => return *answer,
    };
    if let Err(answer) = owned(&state, &arn, &owner) {
        return *answer;
    }
    state.insights.by_arn.lock().expect("insights").remove(&arn);
    ok(json!({"InsightArn": arn}))
}

/// `POST /insights/get`: GetInsights (the caller's custom insights, paged).
pub(super) async fn get_insights(
    State(state): State<Arc<EmulatorState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Admitted { owner, .. } = match admit(
        &state,
        &headers,
        "securityhub:GetInsights",
        Api::GetFindings,
    ) {
        Ok(admitted) => admitted,
        Err(answer) => return *answer,
    };
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let max = request["MaxResults"].as_u64().unwrap_or(100);
    if !(1..=100).contains(&max) {
        return invalid_input(Api::GetFindings, "MaxResults must be between 1 and 100");
    }
    let wanted: Option<BTreeSet<&str>> = request["InsightArns"]
        .as_array()
        .map(|arns| arns.iter().filter_map(Value::as_str).collect());
    let start = match request["NextToken"].as_str() {
        None => 0,
        Some(token) => match token.strip_prefix("insights-").and_then(|n| n.parse().ok()) {
            Some(n) => n,
            None => return invalid_input(Api::GetFindings, "Invalid NextToken"),
        },
    };
    let insights = state.insights.by_arn.lock().expect("insights");
    let mine: Vec<&Insight> = insights
        .values()
        .filter(|i| i.owner == owner)
        .filter(|i| {
            wanted
                .as_ref()
                .is_none_or(|w| w.contains(i.insight_arn.as_str()))
        })
        .collect();
    let end = (start + max as usize).min(mine.len());
    let page: Vec<&Insight> = mine.get(start..end).unwrap_or_default().to_vec();
    let mut answer = json!({"Insights": page});
    if end < mine.len() {
        answer["NextToken"] = format!("insights-{end}").into();
    }
    ok(answer)
}

/// `POST /findingsv2/statistics`: GetFindingStatisticsV2, each rule's filters matched on the
/// OCSF documents GetFindingsV2 serves.
pub(super) async fn get_finding_statistics_v2(
    State(state): State<Arc<EmulatorState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let api = Api::GetFindingsV2;
    let Admitted { hub, latency, .. } =
        match admit(&state, &headers, "securityhub:GetAdhocInsightResults", api) {
            Ok(admitted) => admitted,
            Err(answer) => return *answer,
        };
    tokio::time::sleep(latency).await;
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let rules = request["GroupByRules"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if rules.is_empty() || rules.len() > 5 {
        return invalid_input(api, "GroupByRules must hold 1 to 5 rules");
    }
    let max = request["MaxStatisticResults"]
        .as_i64()
        .unwrap_or(MAX_STATISTIC_RESULTS);
    if !(1..=MAX_STATISTIC_RESULTS).contains(&max) {
        return invalid_input(api, "MaxStatisticResults must be between 1 and 400");
    }
    let descending = request["SortOrder"].as_str() != Some("asc");
    if let Some(scopes) = request.get("Scopes") {
        if let Err(message) = ocsf::check_scopes(scopes) {
            return invalid_input(api, &message);
        }
    }
    for rule in &rules {
        let filters = rule.get("Filters").cloned().unwrap_or(json!({}));
        if let Err(message) = ocsf::check_filters(&filters) {
            return invalid_input(api, &message);
        }
        if rule["GroupByField"].as_str().is_none_or(str::is_empty) {
            return invalid_input(api, "every GroupByRule needs a GroupByField");
        }
    }
    let key = query::query_hash(&json!(rules), &json!(descending), max);
    let cached = hub
        .statistics
        .lock()
        .expect("statistics")
        .get(&key)
        .cloned();
    let results = match cached {
        Some(results) => results,
        // Computed and kept off the async workers, even when the caller goes away meanwhile.
        None => tokio::task::spawn_blocking(move || {
            let results = Arc::new(statistics(&hub.dataset(), &rules, descending, max));
            hub.statistics
                .lock()
                .expect("statistics")
                .insert(key, results.clone());
            results
        })
        .await
        .unwrap_or_default(),
    };
    ok(json!({"GroupByResults": *results}))
}

/// Each rule's groups over the findings its filters match.
fn statistics(dataset: &Dataset, rules: &[Value], descending: bool, max: i64) -> Vec<Value> {
    let now = chrono::Utc::now();
    let documents: Vec<Value> = (0..dataset.len())
        .filter(|&i| !dataset.is_deleted(i))
        .map(|i| ocsf::from_asff(&dataset.value(i)))
        .collect();
    rules
        .iter()
        .map(|rule| {
            let filters = rule.get("Filters").cloned().unwrap_or(json!({}));
            let field = rule["GroupByField"].as_str().unwrap_or_default();
            let matched = documents
                .iter()
                .filter(|doc| ocsf::matches(&filters, doc, now))
                .cloned();
            let values: Vec<Value> = ranked(group(matched, field), descending, max as usize)
                .into_iter()
                .map(|(value, count)| json!({"FieldValue": value, "Count": count}))
                .collect();
            json!({"GroupByField": field, "GroupByValues": values})
        })
        .collect()
}

/// Counts findings per value at a dotted `path` (arrays on the way are walked; a finding counts
/// once per distinct value; findings without a value are in no group).
fn group(findings: impl Iterator<Item = Value>, path: &str) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for finding in findings {
        let mut values = BTreeSet::new();
        collect(&finding, &path.split('.').collect::<Vec<_>>(), &mut values);
        for value in values {
            *counts.entry(value).or_insert(0) += 1;
        }
    }
    counts
}

fn collect(value: &Value, path: &[&str], out: &mut BTreeSet<String>) {
    match (value, path.split_first()) {
        (Value::Array(items), _) => items.iter().for_each(|item| collect(item, path, out)),
        (Value::String(text), None) if !text.is_empty() => {
            out.insert(text.clone());
        }
        (Value::Object(map), Some((key, rest))) => {
            if let Some(inner) = map.get(*key) {
                collect(inner, rest, out);
            }
        }
        _ => {}
    }
}

/// Groups by count (descending or ascending, ties by value), at most `max`.
fn ranked(counts: BTreeMap<String, u64>, descending: bool, max: usize) -> Vec<(String, u64)> {
    let mut ranked: Vec<(String, u64)> = counts.into_iter().collect();
    ranked.sort_by(|a, b| match descending {
        true => b.1.cmp(&a.1).then(a.0.cmp(&b.0)),
        false => a.1.cmp(&b.1).then(a.0.cmp(&b.0)),
    });
    ranked.truncate(max);
    ranked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_walk_arrays_and_count_a_finding_once_per_value() {
        let findings = vec![
            json!({"AwsAccountId": "1", "Resources": [{"Type": "A"}, {"Type": "A"}, {"Type": "B"}]}),
            json!({"AwsAccountId": "1", "Resources": [{"Type": "B"}]}),
            json!({"AwsAccountId": "2"}),
        ];
        let by_type = group(findings.clone().into_iter(), "Resources.Type");
        assert_eq!(by_type, BTreeMap::from([("A".into(), 1), ("B".into(), 2)]));
        let by_account = group(findings.into_iter(), "AwsAccountId");
        assert_eq!(ranked(by_account, true, 1), vec![("1".to_string(), 2)]);
    }
}
