//! Accounts and Regions in the emulator: one hub (findings, quota bucket, token epoch) per
//! account and Region, the caller told apart by the access key and Region of its SigV4
//! signature, and the STS and Security Hub calls a job over many accounts makes: AssumeRole
//! (denied where the role is missing), GetCallerIdentity, DescribeHub and ListMembers.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::changes::{self, Change};
use super::generate::Generator;
use super::query::Dataset;
use super::quota::{DemandMeter, TokenBucket};
use super::replies::service_error;
use super::server::EmulatorState;
use super::EMULATOR_ACCOUNT;
use crate::semantics::Api;

/// What one account's Security Hub holds in one Region, with its own quota.
pub(super) struct Hub {
    /// Its findings (replaced as a whole when they change).
    dataset: Mutex<Dataset>,
    pub bucket: Mutex<TokenBucket>,
    /// The "other operations" quota (insights, statistics), apart from GetFindings'.
    pub other_bucket: Mutex<TokenBucket>,
    pub meter: Mutex<DemandMeter>,
    /// Bumped when the invalid-token fault fires: every older token is dead from then on.
    pub epoch: AtomicU64,
    /// Matching finding indexes per filtered query.
    pub matches: Mutex<HashMap<u64, Arc<Vec<u64>>>>,
    /// GetFindingStatisticsV2 answers per request (the work of a count is done once per data
    /// set, as the service's own indexes would).
    pub statistics: Mutex<HashMap<u64, Arc<Vec<serde_json::Value>>>>,
}

impl Hub {
    /// Its findings as they are now.
    pub(super) fn dataset(&self) -> Dataset {
        self.dataset.lock().expect("dataset").clone()
    }

    /// Applies a change to its findings; queries computed before it are computed again.
    pub(super) fn change(&self, change: &Change) {
        let mut dataset = self.dataset.lock().expect("dataset");
        *dataset = changes::apply(&dataset, change, chrono::Utc::now());
        self.matches.lock().expect("matches").clear();
        self.statistics.lock().expect("statistics").clear();
    }

    pub(super) fn new(dataset: Dataset, rate: f64, burst: u32) -> Hub {
        Hub {
            dataset: Mutex::new(dataset),
            bucket: Mutex::new(TokenBucket::new(rate, burst, Instant::now())),
            other_bucket: Mutex::new(TokenBucket::new(
                super::insights::OTHER_RATE,
                super::insights::OTHER_BURST,
                Instant::now(),
            )),
            meter: Mutex::new(DemandMeter::new(rate)),
            epoch: AtomicU64::new(0),
            matches: Mutex::new(HashMap::new()),
            statistics: Mutex::new(HashMap::new()),
        }
    }
}

/// The hubs of an emulator: one shared by every caller (the default), or one per account and
/// Region when accounts or Regions are configured.
pub(super) struct Hubs {
    single: Option<Arc<Hub>>,
    template: Dataset,
    members: Vec<String>,
    regions: Vec<String>,
    aggregation_home: Option<String>,
    administrator_view: bool,
    rate: f64,
    burst: u32,
    by_key: Mutex<HashMap<(String, String), Arc<Hub>>>,
}

impl Hubs {
    /// `members` (besides [`EMULATOR_ACCOUNT`]) and `regions` (empty: any) make one hub per
    /// account and Region, each serving the template's count of findings of its own; with
    /// neither, every caller shares one hub serving `template`. With `aggregation_home`, every
    /// account aggregates all `regions` into that one (ALL_REGIONS linking).
    pub(super) fn new(
        template: Dataset,
        members: Vec<String>,
        regions: Vec<String>,
        aggregation_home: Option<String>,
        administrator_view: bool,
        rate: f64,
        burst: u32,
    ) -> Hubs {
        let single = (members.is_empty() && regions.is_empty())
            .then(|| Arc::new(Hub::new(template.clone(), rate, burst)));
        Hubs {
            single,
            template,
            members,
            regions,
            aggregation_home,
            administrator_view,
            rate,
            burst,
            by_key: Mutex::new(HashMap::new()),
        }
    }

    /// The home Region of the accounts' finding aggregator, if any.
    pub(super) fn aggregation_home(&self) -> Option<&str> {
        self.aggregation_home.as_deref()
    }

    /// The hub of `account` in `region`, or `None` where Security Hub is not enabled.
    pub(super) fn get(&self, account: &str, region: &str) -> Option<Arc<Hub>> {
        if let Some(hub) = &self.single {
            return Some(hub.clone());
        }
        let known = account == EMULATOR_ACCOUNT || self.members.iter().any(|m| m == account);
        let enabled = self.regions.is_empty() || self.regions.iter().any(|r| r == region);
        if !(known && enabled) {
            return None;
        }
        let key = (account.to_string(), region.to_string());
        let mut hubs = self.by_key.lock().expect("hubs");
        let hub = hubs.entry(key).or_insert_with(|| {
            Arc::new(Hub::new(
                self.dataset_of(account, region),
                self.rate,
                self.burst,
            ))
        });
        Some(hub.clone())
    }

    /// Every hub made so far.
    pub(super) fn all(&self) -> Vec<Arc<Hub>> {
        match &self.single {
            Some(hub) => vec![hub.clone()],
            None => self
                .by_key
                .lock()
                .expect("hubs")
                .values()
                .cloned()
                .collect(),
        }
    }

    /// The member accounts (ListMembers of the administrator).
    pub(super) fn members(&self) -> &[String] {
        &self.members
    }

    /// A hub's findings: its own, and in an aggregation home Region every linked Region's too;
    /// the administrator's (with its view on) also every member's of the same Regions.
    fn dataset_of(&self, account: &str, region: &str) -> Dataset {
        let regions: Vec<&str> = if self.aggregation_home.as_deref() == Some(region) {
            std::iter::once(region)
                .chain(
                    self.regions
                        .iter()
                        .map(String::as_str)
                        .filter(|r| *r != region),
                )
                .collect()
        } else {
            vec![region]
        };
        let mut accounts = vec![account];
        if account == EMULATOR_ACCOUNT && self.administrator_view {
            accounts.extend(self.members.iter().map(String::as_str));
        }
        let parts: Vec<Dataset> = accounts
            .iter()
            .flat_map(|a| regions.iter().map(move |r| self.own_dataset(a, r)))
            .collect();
        match parts.len() {
            1 => parts.into_iter().next().expect("one part"),
            _ => Dataset::Union(Arc::new(parts)),
        }
    }

    /// The findings generated in `region` for `account`.
    fn own_dataset(&self, account: &str, region: &str) -> Dataset {
        match &self.template {
            Dataset::Generated { generator, count } => Dataset::Generated {
                generator: Generator {
                    seed: hub_seed(generator.seed, account, region),
                    home: Some((account.to_string(), region.to_string())),
                    ..generator.clone()
                },
                count: *count,
            },
            loaded => loaded.clone(),
        }
    }
}

/// The seed of the findings of `account` in `region` for a base seed (tests regenerate them).
pub fn hub_seed(seed: u64, account: &str, region: &str) -> u64 {
    let digest = Sha256::digest(format!("{seed}/{account}/{region}"));
    u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// The generator of the findings `account` holds in `region` (what a hub serves).
pub fn hub_generator(seed: u64, account: &str, region: &str) -> Generator {
    Generator {
        seed: hub_seed(seed, account, region),
        home: Some((account.to_string(), region.to_string())),
        ..Generator::default()
    }
}

/// The caller's account and Region from the SigV4 `Authorization` header: keys the emulator's
/// AssumeRole issued carry their account; any other key is [`EMULATOR_ACCOUNT`].
pub(super) fn caller(headers: &HeaderMap) -> (String, String) {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let scope: Vec<&str> = auth
        .split("Credential=")
        .nth(1)
        .and_then(|rest| rest.split([',', ' ']).next())
        .map(|credential| credential.split('/').collect())
        .unwrap_or_default();
    let key = scope.first().copied().unwrap_or_default();
    let region = scope.get(2).copied().unwrap_or("us-east-1").to_string();
    (
        account_of_key(key).unwrap_or(EMULATOR_ACCOUNT.into()),
        region,
    )
}

/// `ASIA<account>EMUL` keys come from the emulator's AssumeRole.
fn access_key_for(account: &str) -> String {
    format!("ASIA{account}EMUL")
}

fn account_of_key(key: &str) -> Option<String> {
    let account = key.strip_prefix("ASIA")?.strip_suffix("EMUL")?;
    (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())).then(|| account.into())
}

fn xml(body: String) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/xml")], body).into_response()
}

fn sts_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = format!(
        "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>"
    );
    (status, [(header::CONTENT_TYPE, "text/xml")], body).into_response()
}

/// A form field of a query-protocol body (values here never need more than `%3A`/`%2F`).
fn form_field(body: &str, name: &str) -> Option<String> {
    body.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then(|| value.replace("%3A", ":").replace("%2F", "/"))
    })
}

/// `POST /`: STS (query protocol): GetCallerIdentity and AssumeRole.
pub(super) async fn sts(
    State(state): State<Arc<EmulatorState>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let (account, _) = caller(&headers);
    match form_field(&body, "Action").as_deref() {
        Some("GetCallerIdentity") => xml(format!(
            "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><GetCallerIdentityResult>\
             <Arn>arn:aws:iam::{account}:user/emulator</Arn><UserId>AIDAEMULATOR</UserId><Account>{account}</Account>\
             </GetCallerIdentityResult><ResponseMetadata><RequestId>00000000-0000-0000-0000-000000000000</RequestId></ResponseMetadata></GetCallerIdentityResponse>"
        )),
        Some("AssumeRole") => assume_role(&state, &account, &body),
        _ => (
            StatusCode::BAD_REQUEST,
            "the emulator serves only STS GetCallerIdentity and AssumeRole",
        )
            .into_response(),
    }
}

fn assume_role(state: &EmulatorState, caller: &str, body: &str) -> Response {
    let arn = form_field(body, "RoleArn").unwrap_or_default();
    let target = arn.split(':').nth(4).unwrap_or_default().to_string();
    let missing = state.faults.lock().expect("faults").missing_roles.clone();
    let known = target == EMULATOR_ACCOUNT || state.hubs.members().contains(&target);
    if !known || missing.contains(&target) {
        return sts_error(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            &format!("User: arn:aws:iam::{caller}:user/emulator is not authorized to perform: sts:AssumeRole on resource: {arn}"),
        );
    }
    let key = access_key_for(&target);
    let expires = (chrono::Utc::now() + chrono::Duration::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    xml(format!(
        "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleResult>\
         <Credentials><AccessKeyId>{key}</AccessKeyId><SecretAccessKey>emulator</SecretAccessKey>\
         <SessionToken>emulator-session</SessionToken><Expiration>{expires}</Expiration></Credentials>\
         <AssumedRoleUser><AssumedRoleId>AROAEMULATOR:sechub-export</AssumedRoleId><Arn>{arn}</Arn></AssumedRoleUser>\
         </AssumeRoleResult><ResponseMetadata><RequestId>00000000-0000-0000-0000-000000000000</RequestId></ResponseMetadata></AssumeRoleResponse>"
    ))
}

/// The answer of an account with no hub in a Region, as the service gives it.
pub(super) fn not_subscribed(account: &str) -> Response {
    service_error(
        StatusCode::UNAUTHORIZED,
        "InvalidAccessException",
        &format!("Account {account} is not subscribed to AWS Security Hub"),
    )
}

/// The answer of `api` where its service is not enabled: GetFindings as Security Hub CSPM
/// answers; GetFindingsV2 with the AccessDeniedException its model declares (the service's
/// exact answer is not documented).
pub(super) fn not_enabled(api: Api, account: &str) -> Response {
    match api {
        Api::GetFindings => not_subscribed(account),
        Api::GetFindingsV2 => service_error(
            StatusCode::FORBIDDEN,
            "AccessDeniedException",
            &format!("Security Hub is not enabled for account {account} in this Region"),
        ),
    }
}

/// `GET /hubv2`: DescribeSecurityHubV2 of the caller in the signed Region.
pub(super) async fn describe_security_hub_v2(
    State(state): State<Arc<EmulatorState>>,
    headers: HeaderMap,
) -> Response {
    let (account, region) = caller(&headers);
    if state.hubs.get(&account, &region).is_none() || !state.services.v2 {
        return service_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            "Security Hub is not enabled",
        );
    }
    let body = serde_json::json!({
        "HubV2Arn": format!("arn:aws:securityhub:{region}:{account}:hubv2/default"),
        "SubscribedAt": "2025-12-02T00:00:00.000Z",
    });
    axum::Json(body).into_response()
}

/// `GET /accounts`: DescribeHub of the caller in the signed Region.
pub(super) async fn describe_hub(
    State(state): State<Arc<EmulatorState>>,
    headers: HeaderMap,
) -> Response {
    let (account, region) = caller(&headers);
    if state.hubs.get(&account, &region).is_none() || !state.services.cspm {
        return not_subscribed(&account);
    }
    let body = serde_json::json!({
        "HubArn": format!("arn:aws:securityhub:{region}:{account}:hub/default"),
        "SubscribedAt": "2025-01-01T00:00:00.000Z",
        "AutoEnableControls": true,
        "ControlFindingGenerator": "SECURITY_CONTROL",
    });
    axum::Json(body).into_response()
}

/// `GET /findingAggregator/list`: the caller's aggregator, if the emulator has one.
pub(super) async fn list_finding_aggregators(
    State(state): State<Arc<EmulatorState>>,
    headers: HeaderMap,
) -> Response {
    let (account, _) = caller(&headers);
    let aggregators: Vec<serde_json::Value> = state
        .hubs
        .aggregation_home()
        .map(|home| serde_json::json!({"FindingAggregatorArn": aggregator_arn(home, &account)}))
        .into_iter()
        .collect();
    axum::Json(serde_json::json!({"FindingAggregators": aggregators})).into_response()
}

/// `GET /findingAggregator/get/{arn}`: the aggregator's home Region and linking, answered in
/// its home Region only.
pub(super) async fn get_finding_aggregator(
    State(state): State<Arc<EmulatorState>>,
    headers: HeaderMap,
) -> Response {
    let (account, region) = caller(&headers);
    match state.hubs.aggregation_home() {
        Some(home) if home == region => axum::Json(serde_json::json!({
            "FindingAggregatorArn": aggregator_arn(home, &account),
            "FindingAggregationRegion": home,
            "RegionLinkingMode": "ALL_REGIONS",
        }))
        .into_response(),
        _ => service_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            "No finding aggregator in this Region",
        ),
    }
}

fn aggregator_arn(home: &str, account: &str) -> String {
    format!("arn:aws:securityhub:{home}:{account}:finding-aggregator/00000000-0000-0000-0000-000000000001")
}

/// `GET /members`: ListMembers of the administrator ([`EMULATOR_ACCOUNT`]).
pub(super) async fn list_members(
    State(state): State<Arc<EmulatorState>>,
    headers: HeaderMap,
) -> Response {
    let (account, _) = caller(&headers);
    let members: Vec<serde_json::Value> = if account == EMULATOR_ACCOUNT {
        state
            .hubs
            .members()
            .iter()
            .map(|id| serde_json::json!({"AccountId": id, "MemberStatus": "Enabled", "AdministratorId": EMULATOR_ACCOUNT}))
            .collect()
    } else {
        Vec::new()
    };
    axum::Json(serde_json::json!({"Members": members})).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_caller_is_read_from_the_signature() {
        let mut headers = HeaderMap::new();
        let key = access_key_for("111111111111");
        headers.insert(
            header::AUTHORIZATION,
            format!("AWS4-HMAC-SHA256 Credential={key}/20261123/eu-west-1/securityhub/aws4_request, SignedHeaders=host, Signature=x").parse().unwrap(),
        );
        assert_eq!(
            caller(&headers),
            ("111111111111".into(), "eu-west-1".into())
        );
        headers.insert(
            header::AUTHORIZATION,
            "AWS4-HMAC-SHA256 Credential=testing/20261123/us-east-2/sts/aws4_request, SignedHeaders=host, Signature=x".parse().unwrap(),
        );
        assert_eq!(
            caller(&headers),
            (EMULATOR_ACCOUNT.into(), "us-east-2".into())
        );
        assert_eq!(
            form_field(
                "Action=AssumeRole&RoleArn=arn%3Aaws%3Aiam%3A%3A1%3Arole%2FR",
                "RoleArn"
            )
            .as_deref(),
            Some("arn:aws:iam::1:role/R")
        );
    }
}
