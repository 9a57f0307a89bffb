//! The emulator's HTTP handlers: GetFindings and GetFindingsV2 (rest-json, each API's real
//! error shapes, quota, faults) on the caller's hub, and the stats / faults endpoints (STS and
//! the hub calls are in `hubs`, the counting calls in `insights`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use rand::rngs::SmallRng;
use rand::Rng;
use serde_json::Value;

use super::changes::Change;
use super::hubs::{self, Hub, Hubs};
use super::query::{self, Dataset, TokenError};
use super::replies::{codes, invalid_input, service_error, throttled};
use super::{ocsf, Faults, Services, SortMode, Stats};
use crate::semantics::{string_matches, Api, Order};

/// Shared state of a running emulator.
pub(super) struct EmulatorState {
    pub hubs: Hubs,
    pub services: Services,
    pub rate: f64,
    pub burst: u32,
    pub faults: Mutex<Faults>,
    pub rng: Mutex<SmallRng>,
    pub counters: Counters,
    /// Changes to make once this many pages were served (findings changing under an export).
    pub scheduled: Mutex<Vec<(u64, Change)>>,
    /// Custom insights (CreateInsight) of every account and Region.
    pub insights: super::insights::Insights,
}

impl EmulatorState {
    /// Makes the scheduled changes whose page count has come.
    fn apply_due_changes(&self) {
        let served = self.counters.pages.load(Ordering::Relaxed);
        let mut scheduled = self.scheduled.lock().expect("scheduled");
        let (due, later): (Vec<_>, Vec<_>) = scheduled.drain(..).partition(|(at, _)| *at <= served);
        *scheduled = later;
        drop(scheduled);
        for (_, change) in due {
            for hub in self.hubs.all() {
                hub.change(&change);
            }
        }
    }
}

/// What the emulator has seen.
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub requests: AtomicU64,
    pub accepted: AtomicU64,
    pub throttled_quota: AtomicU64,
    pub throttled_injected: AtomicU64,
    pub internal_errors: AtomicU64,
    pub dropped: AtomicU64,
    pub invalid_tokens: AtomicU64,
    pub pages: AtomicU64,
    pub findings: AtomicU64,
    pub count_requests: AtomicU64,
}

impl EmulatorState {
    pub(super) fn stats(&self) -> Stats {
        let c = &self.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Stats {
            requests: load(&c.requests),
            accepted: load(&c.accepted),
            throttled_quota: load(&c.throttled_quota),
            throttled_injected: load(&c.throttled_injected),
            internal_errors: load(&c.internal_errors),
            dropped: load(&c.dropped),
            invalid_tokens: load(&c.invalid_tokens),
            pages: load(&c.pages),
            findings: load(&c.findings),
            count_requests: load(&c.count_requests),
            peak_demand: self
                .hubs
                .all()
                .iter()
                .map(|hub| hub.meter.lock().expect("meter").peak())
                .fold(0.0, f64::max),
            rate: self.rate,
            burst: self.burst,
        }
    }

    fn chance(&self, probability: f64) -> bool {
        probability > 0.0
            && self
                .rng
                .lock()
                .expect("rng")
                .random_bool(probability.min(1.0))
    }
}

/// `POST /findings`: a GetFindings page of the caller's hub in the signed Region.
pub(super) async fn get_findings(
    State(state): State<Arc<EmulatorState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve(state, headers, body, Api::GetFindings).await
}

/// `POST /findingsv2`: a GetFindingsV2 page (OCSF documents) of the same hub.
pub(super) async fn get_findings_v2(
    State(state): State<Arc<EmulatorState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve(state, headers, body, Api::GetFindingsV2).await
}

async fn serve(state: Arc<EmulatorState>, headers: HeaderMap, body: Bytes, api: Api) -> Response {
    let now = Instant::now();
    state.counters.requests.fetch_add(1, Ordering::Relaxed);
    let (account, region) = hubs::caller(&headers);
    let Some(hub) = state.hubs.get(&account, &region) else {
        return hubs::not_enabled(api, &account);
    };
    if !state.services.serves(api) {
        return hubs::not_enabled(api, &account);
    }
    hub.meter.lock().expect("meter").record(now);
    let faults = state.faults.lock().expect("faults").clone();
    let counters = &state.counters;
    // The quota is checked on arrival, as the service's front door does; the latency is the
    // work of answering an accepted request.
    if !hub.bucket.lock().expect("bucket").try_take(now) {
        return throttled(api, &counters.throttled_quota);
    }
    if faults.latency_ms > 0 {
        let delay = state
            .rng
            .lock()
            .expect("rng")
            .random_range(faults.latency_ms / 2..=faults.latency_ms * 3 / 2);
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    if state.chance(faults.throttle_probability) {
        return throttled(api, &counters.throttled_injected);
    }
    if state.chance(faults.error_probability) {
        counters.internal_errors.fetch_add(1, Ordering::Relaxed);
        let message = "Internal service error (injected)";
        return service_error(StatusCode::INTERNAL_SERVER_ERROR, codes(api).2, message);
    }
    // Building a page (and matching a new filter over the whole data set) is CPU work: off the
    // async workers, so other requests' arrival and quota check are never held up behind it.
    let built = {
        let (state, hub, faults) = (state.clone(), hub.clone(), faults.clone());
        tokio::task::spawn_blocking(move || page(&state, &hub, &body, &faults, api)).await
    };
    let response = match built {
        Ok(Ok(text)) => text,
        Ok(Err(PageError::Invalid(message))) => return invalid_input(api, &message),
        Ok(Err(PageError::Sort(SortMode::Fail))) => {
            counters.internal_errors.fetch_add(1, Ordering::Relaxed);
            let message = "Internal service error (the emulator fails every sorted request)";
            return service_error(StatusCode::INTERNAL_SERVER_ERROR, codes(api).2, message);
        }
        Ok(Err(PageError::Sort(_))) => {
            return invalid_input(
                api,
                "SortCriteria is not supported (the emulator refuses every sort)",
            )
        }
        Err(panicked) => {
            return service_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalException",
                &format!("the emulator failed to build the page: {panicked}"),
            )
        }
    };
    if state.chance(faults.drop_probability) {
        state.counters.dropped.fetch_add(1, Ordering::Relaxed);
        let bytes = Bytes::from(response);
        let cut = bytes.len() / 2;
        let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
            Ok(bytes.slice(..cut)),
            Err(std::io::Error::other("connection dropped (injected)")),
        ];
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            Body::from_stream(futures::stream::iter(chunks)),
        )
            .into_response();
    }
    state.counters.accepted.fetch_add(1, Ordering::Relaxed);
    state.counters.pages.fetch_add(1, Ordering::Relaxed);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        response,
    )
        .into_response()
}

/// Why a request gets no page.
enum PageError {
    /// The InvalidInputException message.
    Invalid(String),
    /// A sort the emulator's sort mode refuses or fails.
    Sort(SortMode),
}

impl From<String> for PageError {
    fn from(message: String) -> Self {
        PageError::Invalid(message)
    }
}

impl From<&str> for PageError {
    fn from(message: &str) -> Self {
        PageError::Invalid(message.to_string())
    }
}

/// Builds the page for a request body, or the InvalidInputException message the service would answer.
fn page(
    state: &EmulatorState,
    hub: &Hub,
    body: &[u8],
    faults: &Faults,
    api: Api,
) -> Result<String, PageError> {
    let request: Value =
        serde_json::from_slice(body).map_err(|_| "Request body is not valid JSON".to_string())?;
    let filters = request
        .get("Filters")
        .cloned()
        .unwrap_or_else(|| Value::Object(Default::default()));
    let sort = request.get("SortCriteria").cloned().unwrap_or(Value::Null);
    let max_results = request
        .get("MaxResults")
        .and_then(Value::as_i64)
        .unwrap_or(100);
    if !(1..=100).contains(&max_results) {
        return Err("MaxResults must be between 1 and 100".into());
    }
    match api {
        Api::GetFindings => query::check_supported(&filters)?,
        Api::GetFindingsV2 => {
            ocsf::check_filters(&filters)?;
            if let Some(scopes) = request.get("Scopes") {
                ocsf::check_scopes(scopes)?;
            }
        }
    }
    let keyed = match api {
        Api::GetFindings => filters.clone(),
        Api::GetFindingsV2 => serde_json::json!({"GetFindingsV2": filters}),
    };
    let asked = query::id_order(&sort)?;
    let order = match faults.sort_mode {
        SortMode::Global => asked,
        SortMode::Page | SortMode::Ignore => None,
        SortMode::Refuse | SortMode::Fail if asked.is_some() => {
            return Err(PageError::Sort(faults.sort_mode))
        }
        SortMode::Refuse | SortMode::Fail => None,
    };
    let page_sort = asked.filter(|_| faults.sort_mode == SortMode::Page);
    let unsorted = query::query_hash(&keyed, &Value::Null, max_results);
    let hash = query::query_hash(&keyed, &sort, max_results);
    let offset = match request.get("NextToken").and_then(Value::as_str) {
        None => 0,
        Some("") => return Err("Invalid NextToken: the token must not be empty".into()),
        Some(token) => {
            if faults
                .invalid_token_after_pages
                .is_some_and(|n| state.counters.pages.load(Ordering::Relaxed) >= n)
            {
                // Fire once: every token issued so far dies.
                state
                    .faults
                    .lock()
                    .expect("faults")
                    .invalid_token_after_pages = None;
                hub.epoch.fetch_add(1, Ordering::Relaxed);
            }
            let epoch = hub.epoch.load(Ordering::Relaxed);
            query::read_token(token, epoch, hash).map_err(|e| {
                state
                    .counters
                    .invalid_tokens
                    .fetch_add(1, Ordering::Relaxed);
                match e {
                    TokenError::QueryChanged => "Invalid NextToken: Input Query has changed",
                    TokenError::Expired => "Invalid NextToken: the token has expired",
                    TokenError::Malformed => "Invalid NextToken",
                }
                .to_string()
            })?
        }
    };
    state.apply_due_changes();
    let dataset = hub.dataset();
    let indexes = matching(hub, &dataset, &filters, unsorted, api);
    let indexes = match order {
        None => indexes,
        Some(order) => Some(sorted(hub, &dataset, indexes, order, unsorted)),
    };
    let total = indexes.as_ref().map_or(dataset.len(), |m| m.len() as u64);
    let page_size = match faults.short_pages {
        0 => max_results as u64,
        short => short.min(max_results as u64),
    };
    let end = (offset + page_size).min(total);
    let mut positions: Vec<u64> = (offset..end)
        .map(|position| indexes.as_ref().map_or(position, |m| m[position as usize]))
        .collect();
    if let Some(order) = page_sort {
        positions.sort_by_key(|&index| dataset.id(index));
        if order == Order::Desc {
            positions.reverse();
        }
    }
    let mut text = String::from("{\"Findings\":[");
    for (n, index) in positions.into_iter().enumerate() {
        if n > 0 {
            text.push(',');
        }
        match api {
            Api::GetFindings => text.push_str(&dataset.text(index)),
            Api::GetFindingsV2 => {
                text.push_str(&ocsf::from_asff(&dataset.value(index)).to_string())
            }
        }
    }
    text.push(']');
    if end < total {
        let token = query::make_token(hub.epoch.load(Ordering::Relaxed), hash, end);
        text.push_str(&format!(",\"NextToken\":\"{token}\""));
    }
    text.push('}');
    state
        .counters
        .findings
        .fetch_add(end.saturating_sub(offset), Ordering::Relaxed);
    Ok(text)
}

/// The indexes matching a filtered query of `api` (`None`: no filters, every finding),
/// computed once.
fn matching(
    hub: &Hub,
    dataset: &Dataset,
    filters: &Value,
    hash: u64,
    api: Api,
) -> Option<Arc<Vec<u64>>> {
    let unfiltered = filters.as_object().is_none_or(|f| f.is_empty());
    if unfiltered && !dataset.has_deletions() {
        return None;
    }
    if let Some(found) = hub.matches.lock().expect("matches").get(&hash) {
        return Some(found.clone());
    }
    let present = (0..dataset.len()).filter(|&i| !dataset.is_deleted(i));
    let found: Arc<Vec<u64>> = Arc::new(match api {
        Api::GetFindings => asff_matching(dataset, filters, present),
        Api::GetFindingsV2 => {
            // Each finding judged on its OCSF document.
            let now = chrono::Utc::now();
            present
                .filter(|&i| ocsf::matches(filters, &ocsf::from_asff(&dataset.value(i)), now))
                .collect()
        }
    });
    hub.matches
        .lock()
        .expect("matches")
        .insert(hash, found.clone());
    Some(found)
}

/// The matching findings (`None`: every finding) in `order` of `Id`: sorted once per query
/// (cached under `unsorted`, the query's hash without its sort), the descending order read
/// from the same list backwards.
fn sorted(
    hub: &Hub,
    dataset: &Dataset,
    indexes: Option<Arc<Vec<u64>>>,
    order: Order,
    unsorted: u64,
) -> Arc<Vec<u64>> {
    let key = unsorted ^ 0x5EED_0F1D;
    let cached = hub.matches.lock().expect("matches").get(&key).cloned();
    let ascending = cached.unwrap_or_else(|| {
        let all = || {
            (0..dataset.len())
                .filter(|&i| !dataset.is_deleted(i))
                .collect()
        };
        let mut keyed: Vec<(Option<String>, u64)> = indexes
            .map_or_else(all, |found| found.to_vec())
            .into_iter()
            .map(|i| (dataset.id(i), i))
            .collect();
        keyed.sort();
        let ascending: Arc<Vec<u64>> = Arc::new(keyed.into_iter().map(|(_, i)| i).collect());
        hub.matches
            .lock()
            .expect("matches")
            .insert(key, ascending.clone());
        ascending
    });
    match order {
        Order::Asc => ascending,
        Order::Desc => Arc::new(ascending.iter().rev().copied().collect()),
    }
}

/// The findings among `present` matching GetFindings `filters`.
pub(super) fn asff_matching(
    dataset: &Dataset,
    filters: &Value,
    present: impl Iterator<Item = u64>,
) -> Vec<u64> {
    // Id conditions first, on Ids alone: a shard's finding is built only when its Id matches.
    let (id_conditions, others) = query::split_id(filters);
    present
        .filter(|&i| {
            id_conditions
                .is_none_or(|conditions| string_matches(dataset.id(i).as_deref(), conditions))
        })
        .filter(|&i| match others.as_ref() {
            None => true,
            Some(others) => match query::updated_at_only(others) {
                Some(window) => query::dates_match(dataset.updated_at(i), window),
                None => query::matches(others, &dataset.value(i)),
            },
        })
        .collect()
}

/// `GET /stats`.
pub(super) async fn stats(State(state): State<Arc<EmulatorState>>) -> Json<Stats> {
    Json(state.stats())
}

/// `GET /faults`.
pub(super) async fn get_faults(State(state): State<Arc<EmulatorState>>) -> Json<Faults> {
    Json(state.faults.lock().expect("faults").clone())
}

/// `PUT /faults`: replaces the fault settings.
pub(super) async fn put_faults(
    State(state): State<Arc<EmulatorState>>,
    Json(faults): Json<Faults>,
) -> Json<Faults> {
    *state.faults.lock().expect("faults") = faults.clone();
    Json(faults)
}
