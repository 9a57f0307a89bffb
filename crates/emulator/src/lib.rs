//! A local Security Hub for sechub-export's demo, tests and benchmarks: GetFindings and
//! GetFindingsV2 on the real wire protocol, the real quota (token bucket, 429s) per account and
//! Region, the hub calls and AssumeRole into member accounts, the service's own counts
//! (custom insights, GetFindingStatisticsV2), and faults on demand.
//!
//! It is the exporter's test oracle, so it shares none of the exporter's code: this crate does
//! not depend on sechub-export (the compiler enforces it), and its filter, sort, date and scope
//! semantics are written from the API reference ([`semantics`]). The freedoms the contract
//! leaves a service are options ([`Faults`]): the order of pages, short pages, a refused or
//! failing sort, tokens that die, and the administrator's view of its members' findings.
#![warn(missing_docs, unreachable_pub)]

pub mod changes;
pub mod generate;
pub mod hubs;
mod insights;
pub mod ocsf;
pub mod query;
pub mod quota;
mod replies;
pub mod semantics;
mod server;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::routing::{delete, get, post};
use axum::Router;
use rand::rngs::SmallRng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use hubs::Hubs;
use query::Dataset;
use semantics::Api;
use server::{Counters, EmulatorState};

/// The account id the emulator's STS answers with.
pub const EMULATOR_ACCOUNT: &str = "123456789012";

/// Faults injected into GetFindings answers (after the quota check).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(default)]
pub struct Faults {
    /// Share of in-quota requests answered 429 anyway.
    #[arg(long, default_value_t = 0.0)]
    pub throttle_probability: f64,
    /// Share answered 500 InternalException.
    #[arg(long, default_value_t = 0.0)]
    pub error_probability: f64,
    /// Added latency per request: a mean of N ms, uniform in N/2..=3N/2 ms.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Share of responses whose connection drops halfway.
    #[arg(long, default_value_t = 0.0)]
    pub drop_probability: f64,
    /// After N pages, reject every NextToken issued so far (once).
    #[arg(long)]
    pub invalid_token_after_pages: Option<u64>,
    /// Accounts whose export role is missing: AssumeRole into them is denied.
    #[arg(long, value_delimiter = ',')]
    pub missing_roles: Vec<String>,
    /// How a SortCriteria on Id is answered. The API reference promises no order of pages, so
    /// each mode is a service that keeps the contract: `global` sorts the whole result; `page`
    /// pages the result in the service's own order and sorts each page it returns; `ignore`
    /// answers in its own order (as moto does); `refuse` answers 400 InvalidInputException;
    /// `fail` answers 500 InternalException.
    #[arg(long, value_enum, default_value_t = SortMode::Global)]
    pub sort_mode: SortMode,
    /// Findings per page at most, whatever MaxResults asks (short pages that still carry a
    /// NextToken, as the contract allows); 0: as asked.
    #[arg(long, default_value_t = 0)]
    pub short_pages: u64,
    /// IAM actions the caller is denied (AccessDeniedException), e.g.
    /// `securityhub:CreateInsight,securityhub:GetAdhocInsightResults`.
    #[arg(long, value_delimiter = ',')]
    pub denied_actions: Vec<String>,
}

/// How the emulator answers a sort (see [`Faults::sort_mode`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum SortMode {
    /// The whole result in the requested order.
    #[default]
    Global,
    /// Pages in the service's own order, each page sorted.
    Page,
    /// The service's own order.
    Ignore,
    /// 400 InvalidInputException.
    Refuse,
    /// 500 InternalException.
    Fail,
}

/// Which Security Hub services the emulator's hubs have enabled (both by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Services {
    /// Security Hub CSPM: GetFindings (ASFF) and DescribeHub.
    pub cspm: bool,
    /// The new Security Hub: GetFindingsV2 (OCSF) and DescribeSecurityHubV2.
    pub v2: bool,
}

impl Default for Services {
    fn default() -> Self {
        Services {
            cspm: true,
            v2: true,
        }
    }
}

impl Services {
    /// Whether `api` is answered.
    pub fn serves(&self, api: Api) -> bool {
        match api {
            Api::GetFindings => self.cspm,
            Api::GetFindingsV2 => self.v2,
        }
    }
}

/// What the emulator saw (served at `GET /stats`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Stats {
    /// GetFindings and GetFindingsV2 requests received.
    pub requests: u64,
    /// Requests answered with a page.
    pub accepted: u64,
    /// Requests over the quota, answered 429.
    pub throttled_quota: u64,
    /// Injected 429s.
    pub throttled_injected: u64,
    /// Injected 500s.
    pub internal_errors: u64,
    /// Connections dropped mid-body.
    pub dropped: u64,
    /// NextTokens rejected.
    pub invalid_tokens: u64,
    /// Pages served.
    pub pages: u64,
    /// Findings served.
    pub findings: u64,
    /// Counting calls received (insights, statistics: the "other operations" quota), apart
    /// from `requests`, which are GetFindings'.
    #[serde(default)]
    pub count_requests: u64,
    /// Burst the client's arrivals needed at the quota rate; at most `burst` for a client that
    /// stayed within the quota.
    pub peak_demand: f64,
    /// Quota rate.
    pub rate: f64,
    /// Quota burst.
    pub burst: u32,
}

/// How to run an emulator.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// The findings served.
    pub dataset: Dataset,
    /// Quota rate.
    pub rate: f64,
    /// Quota burst.
    pub burst: u32,
    /// Faults injected.
    pub faults: Faults,
    /// Seed of the fault dice.
    pub fault_seed: u64,
    /// Member accounts of the administrator ([`EMULATOR_ACCOUNT`]): with any, or with
    /// `regions`, every account has a hub per Region of `dataset`'s size, findings of its own.
    pub members: Vec<String>,
    /// Regions where Security Hub is enabled (empty: every Region).
    pub regions: Vec<String>,
    /// Cross-Region aggregation: every account's findings of all `regions` also appear in this
    /// home Region (ALL_REGIONS linking).
    pub aggregation_home: Option<String>,
    /// Which services answer.
    pub services: Services,
    /// The administrator's view, as the user guide describes it: in each Region the
    /// administrator ([`EMULATOR_ACCOUNT`]) sees its members' findings beside its own (and in
    /// an aggregation home Region, the linked Regions' too); a member sees its own. `false`:
    /// the administrator sees only its own.
    pub administrator_view: bool,
}

impl EmulatorConfig {
    /// `count` generated findings at the service's quota, no faults.
    pub fn generated(count: u64, seed: u64) -> Self {
        EmulatorConfig {
            dataset: Dataset::Generated {
                generator: generate::Generator {
                    seed,
                    ..Default::default()
                },
                count,
            },
            rate: 3.0,
            burst: 6,
            faults: Faults::default(),
            fault_seed: seed,
            members: Vec::new(),
            regions: Vec::new(),
            aggregation_home: None,
            services: Services::default(),
            administrator_view: true,
        }
    }
}

/// A running emulator; stops when dropped or on `stop`.
pub struct Emulator {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<EmulatorState>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Emulator {
    /// Starts serving on `bind` (port 0 picks a free port).
    pub async fn start(config: EmulatorConfig, bind: SocketAddr) -> std::io::Result<Emulator> {
        let state = Arc::new(EmulatorState {
            hubs: Hubs::new(
                config.dataset,
                config.members,
                config.regions,
                config.aggregation_home,
                config.administrator_view,
                config.rate,
                config.burst,
            ),
            services: config.services,
            rate: config.rate,
            burst: config.burst,
            scheduled: Mutex::new(Vec::new()),
            faults: Mutex::new(config.faults),
            rng: Mutex::new(SmallRng::seed_from_u64(config.fault_seed)),
            counters: Counters::default(),
            insights: Default::default(),
        });
        let app = Router::new()
            .route("/findings", post(server::get_findings))
            .route("/findingsv2", post(server::get_findings_v2))
            .route(
                "/findingsv2/statistics",
                post(insights::get_finding_statistics_v2),
            )
            .route("/insights", post(insights::create_insight))
            .route("/insights/get", post(insights::get_insights))
            .route(
                "/insights/results/{*arn}",
                get(insights::get_insight_results),
            )
            .route("/insights/{*arn}", delete(insights::delete_insight))
            .route("/hubv2", get(hubs::describe_security_hub_v2))
            .route("/accounts", get(hubs::describe_hub))
            .route("/members", get(hubs::list_members))
            .route(
                "/findingAggregator/list",
                get(hubs::list_finding_aggregators),
            )
            .route(
                "/findingAggregator/get/{*arn}",
                get(hubs::get_finding_aggregator),
            )
            .route("/", post(hubs::sts))
            .route("/stats", get(server::stats))
            .route("/faults", get(server::get_faults).put(server::put_faults))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let (shutdown, signal) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = signal.await;
                })
                .await;
        });
        Ok(Emulator {
            addr,
            state,
            shutdown: Some(shutdown),
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:PORT`, for `--endpoint-url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What it saw so far.
    pub fn stats(&self) -> Stats {
        self.state.stats()
    }

    /// Changes the findings of every hub made so far while it runs (queries asked after it see
    /// them).
    pub fn change(&self, change: &changes::Change) {
        for hub in self.state.hubs.all() {
            hub.change(change);
        }
    }

    /// Every finding of the only hub as it is now, as JSON texts (what a complete lake's
    /// latest view must equal), in index order; a deleted one is an empty text.
    pub fn findings(&self) -> Vec<String> {
        let dataset = self.state.hubs.all()[0].dataset();
        (0..dataset.len()).map(|i| dataset.text(i)).collect()
    }

    /// The same findings as the OCSF texts GetFindingsV2 serves, in the same order.
    pub fn ocsf_findings(&self) -> Vec<String> {
        let dataset = self.state.hubs.all()[0].dataset();
        (0..dataset.len())
            .filter(|&i| !dataset.is_deleted(i))
            .map(|i| ocsf::from_asff(&dataset.value(i)).to_string())
            .collect()
    }

    /// Makes `change` once `pages` pages were served in all: findings that change while an
    /// export reads them.
    pub fn change_after_pages(&self, pages: u64, change: changes::Change) {
        self.state
            .scheduled
            .lock()
            .expect("scheduled")
            .push((pages, change));
    }

    /// How many custom insights exist in all (none is left behind by a clean run).
    pub fn insight_count(&self) -> usize {
        self.state.insights.count()
    }

    /// Changes the faults while it runs.
    pub fn set_faults(&self, faults: Faults) {
        *self.state.faults.lock().expect("faults") = faults;
    }

    /// Stops serving and waits for the server task.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}
