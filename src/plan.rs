//! The export plan: every offline check done once, before any network call, whether the request
//! comes from command-line flags, a Lambda event or a feed run. A plan serializes as the request
//! it was made from and deserializes only through the same checks.

use std::str::FromStr;
use std::time::Duration;

use clap::Args;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::aws::AwsSettings;
use crate::encode::Compression;
use crate::error::{Error, Result};
use crate::job::shards::MAX_SHARDS;
use crate::request::{self, filters, Api};
use crate::sink::Destination;
use crate::source::Pace;
use crate::streams::{Regions, StreamArgs, StreamSpec, MAX_FANOUT_JOB_ID};

/// Largest `part_rows` accepted (a part is built in memory before upload).
pub const MAX_PART_ROWS: u64 = 1_000_000;
const DEFAULT_RATE: f64 = 3.0;
const DEFAULT_BURST: u32 = 6;
const DEFAULT_PART_ROWS: u64 = 50_000;

/// An export as asked for: the `export` flags, or the same names in snake_case in an event.
#[derive(Debug, Clone, PartialEq, Args, Serialize, Deserialize)]
pub struct ExportRequest {
    /// s3://bucket/prefix, file:///path or a folder path.
    #[arg(long)]
    pub destination: String,
    #[command(flatten)]
    #[serde(flatten)]
    #[allow(missing_docs)]
    pub aws: AwsSettings,
    #[command(flatten)]
    #[serde(flatten)]
    #[allow(missing_docs)]
    pub streams: StreamArgs,
    /// The API read: v1 (GetFindings: Security Hub CSPM's ASFF findings, table `findings`) or
    /// v2 (GetFindingsV2: the new Security Hub's OCSF findings, table `findings_ocsf`).
    #[arg(long, default_value = "v1")]
    #[serde(default, skip_serializing_if = "is_v1")]
    pub api: Api,
    /// Filters as JSON or file://path, in the `aws securityhub get-findings --filters` format
    /// (with --api v2: the `get-findings-v2` CompositeFilters format).
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filters: Option<FiltersArg>,
    /// With --api v2: Scopes as JSON or file://path, the organizations or organizational units
    /// a delegated administrator reads, e.g. {"AwsOrganizations":[{"OrganizationalUnitId":"ou-..."}]}.
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<FiltersArg>,
    /// Send filter attributes this build does not know (newer than it) as written, with a
    /// warning, instead of refusing them.
    #[arg(long)]
    #[serde(default)]
    pub allow_unknown_filters: bool,
    /// Name of the job (default: account, Region and a hash of the request and destination).
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// GetFindings requests per second (the service quota is 3).
    #[arg(long, default_value_t = DEFAULT_RATE, allow_negative_numbers = true)]
    #[serde(default = "default_rate")]
    pub rate: f64,
    /// Requests allowed at once before the rate applies (the service allows 6).
    #[arg(long, default_value_t = DEFAULT_BURST)]
    #[serde(default = "default_burst")]
    pub burst: u32,
    /// SSM parameter holding the exported count; `none` disables it.
    /// Default: /sechub-export/<job-id>/exported-count for S3 destinations, none for local ones.
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_parameter: Option<String>,
    /// Most NextToken chains a stream is read with when GetFindings is too slow for one chain
    /// to use the quota: shards on disjoint Id prefixes (or, with --trust-id-order, a meeting
    /// pair from both ends of its Ids, or prefix shards each read by a pair); 1 never splits.
    #[arg(long, default_value_t = MAX_SHARDS)]
    #[serde(default = "default_max_shards")]
    pub max_shards: u32,
    /// Let a slow stream be read from both ends of its Ids when its first pages look sorted.
    /// The API reference does not promise the order of pages: every page is checked and a
    /// broken order reads the stream again without it, but a service that sorts each block of
    /// its own order can pass every check, so exactness then rests on the service sorting
    /// globally.
    #[arg(long)]
    #[serde(default)]
    pub trust_id_order: bool,
    /// Findings per Parquet part (whole pages of 100; a checkpoint follows each part).
    #[arg(long, default_value_t = DEFAULT_PART_ROWS)]
    #[serde(default = "default_part_rows")]
    pub part_rows: u64,
    /// Parquet codec: zstd or snappy.
    #[arg(long, default_value = "zstd")]
    #[serde(default)]
    pub compression: Compression,
    /// Stop at the next part boundary after this long (e.g. 10m, 1h30m) and exit 0, resumable.
    #[arg(long, value_parser = humantime::parse_duration)]
    #[serde(
        default,
        with = "human_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_duration: Option<Duration>,
    /// Export the job's frozen query again from the first page, replacing its parts (after the
    /// service rejected the saved NextToken).
    #[arg(long)]
    #[serde(default)]
    pub restart: bool,
    /// How a new job learns its expected total (for done/total, ETA and its reading plan):
    /// `auto` counts with GetFindingStatisticsV2 (read-only) for --api v2 and not at all for
    /// v1, which has no read-only count; `insight` also counts v1 with a temporary custom
    /// insight (created and deleted at once); `off` never counts.
    #[arg(long, value_enum, default_value_t = TotalMode::Auto)]
    #[serde(default, skip_serializing_if = "TotalMode::is_auto")]
    pub total: TotalMode,
}

/// How a job learns its expected total (see [`ExportRequest::total`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum TotalMode {
    /// Read-only counts only (GetFindingStatisticsV2).
    #[default]
    Auto,
    /// Also a temporary custom insight for Security Hub CSPM.
    Insight,
    /// Never.
    Off,
}

impl TotalMode {
    fn is_auto(&self) -> bool {
        *self == TotalMode::Auto
    }
}

fn is_v1(api: &Api) -> bool {
    *api == Api::GetFindings
}
fn default_rate() -> f64 {
    DEFAULT_RATE
}
fn default_burst() -> u32 {
    DEFAULT_BURST
}
fn default_part_rows() -> u64 {
    DEFAULT_PART_ROWS
}
fn default_max_shards() -> u32 {
    MAX_SHARDS
}

/// `--filters`: JSON text or `file://path` on the command line; in an event, the JSON itself
/// (or such a string).
#[derive(Debug, Clone, PartialEq)]
pub enum FiltersArg {
    /// JSON text, or `file://path`.
    Text(String),
    /// The filter JSON itself.
    Json(Value),
}

impl FromStr for FiltersArg {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Ok(FiltersArg::Text(s.to_string()))
    }
}

impl Serialize for FiltersArg {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            FiltersArg::Text(text) => serializer.serialize_str(text),
            FiltersArg::Json(value) => value.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for FiltersArg {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        Ok(match Value::deserialize(deserializer)? {
            Value::String(text) => FiltersArg::Text(text),
            other => FiltersArg::Json(other),
        })
    }
}

impl FiltersArg {
    /// The filter JSON (read from the file for `file://`).
    fn resolve(&self) -> Result<Value> {
        match self {
            FiltersArg::Text(text) => filters::read_arg(text),
            FiltersArg::Json(value) => Ok(value.clone()),
        }
    }
}

/// Where a job's exported count is published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// S3 destinations: `/sechub-export/<job-id>/exported-count`; local ones: nowhere.
    Default,
    /// Nowhere (`none`).
    Off,
    /// This SSM parameter.
    Parameter(String),
}

/// A validated export: nothing in it can fail an offline check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "ExportRequest", into = "ExportRequest")]
pub struct ExportPlan {
    /// Where parts and state go.
    pub destination: Destination,
    /// How to reach AWS.
    pub aws: AwsSettings,
    /// The API read.
    pub api: Api,
    /// Filters as given (validated; relative dates are resolved when the job is created).
    pub filters: Value,
    /// GetFindingsV2 scopes (validated), if any.
    pub scopes: Option<Value>,
    /// Whether attribute names unknown to this build were allowed.
    pub allow_unknown_filters: bool,
    /// The accounts and Regions read (one stream each), and how many at once.
    pub streams: StreamSpec,
    /// The job id asked for, if any (otherwise derived from the identity).
    pub job_id: Option<String>,
    /// Pace of every attempt.
    pub pace: Pace,
    /// Most shards of a slow stream (1: never sharded).
    pub max_shards: u32,
    /// Whether a slow stream may be read by meeting pairs (see [`ExportRequest::trust_id_order`]).
    pub trust_id_order: bool,
    /// Where the count is published.
    pub progress: Progress,
    /// Findings per part.
    pub part_rows: u64,
    /// Parquet codec.
    pub compression: Compression,
    /// Time box of one run.
    pub max_duration: Option<Duration>,
    /// Export the frozen query again from page 1.
    pub restart: bool,
    /// How a new job counts its expected total.
    pub total: TotalMode,
    /// The URL an older build stored this local destination's spelling under, when it
    /// differs: its default job id is resumed when the normalised one has no job.
    pub legacy_destination: Option<String>,
}

impl ExportPlan {
    /// Checks everything that can be checked without the network.
    pub fn new(request: &ExportRequest) -> Result<ExportPlan> {
        let destination = Destination::parse(&request.destination)?;
        let api = request.api;
        let filters = match &request.filters {
            Some(arg) => arg.resolve()?,
            None => Value::Object(Default::default()),
        };
        api.validate_filters(&filters, request.allow_unknown_filters)?;
        let scopes = match &request.scopes {
            None => None,
            Some(_) if api != Api::GetFindingsV2 => {
                return Err(Error::Usage(
                    "--scopes is a GetFindingsV2 parameter: add --api v2, or drop --scopes".into(),
                ))
            }
            Some(arg) => {
                let scopes = arg.resolve()?;
                request::ocsf_filters::validate_scopes(&scopes)?;
                Some(scopes)
            }
        };
        let streams = StreamSpec::new(&request.streams)?;
        if api == Api::GetFindingsV2 && !matches!(&streams.regions, Regions::Caller) {
            return Err(Error::Usage(
                "--api v2 reads one Region per job (the new Security Hub gathers linked Regions into its home Region): drop --regions and give the home Region with --region".into(),
            ));
        }
        if let Some(job_id) = &request.job_id {
            request::validate_job_id(job_id)?;
            if !streams.is_single() && job_id.len() > MAX_FANOUT_JOB_ID {
                return Err(Error::Usage(format!(
                    "invalid --job-id: a job over several accounts or Regions takes at most {MAX_FANOUT_JOB_ID} characters (its streams append .<account>.<region>)"
                )));
            }
        }
        if !(1..=MAX_PART_ROWS).contains(&request.part_rows)
            || request.part_rows % u64::from(request::PAGE_SIZE) != 0
        {
            return Err(Error::Usage(format!(
                "invalid --part-rows {}: a part holds whole pages of {} findings; use a multiple of {} from {} to {MAX_PART_ROWS}",
                request.part_rows,
                request::PAGE_SIZE,
                request::PAGE_SIZE,
                request::PAGE_SIZE,
            )));
        }
        if !(1..=MAX_SHARDS).contains(&request.max_shards) {
            return Err(Error::Usage(format!(
                "invalid --max-shards {}: use 1 to {MAX_SHARDS} (1 never splits a stream)",
                request.max_shards
            )));
        }
        let progress = match request.progress_parameter.as_deref() {
            None => Progress::Default,
            Some("none") => Progress::Off,
            Some(name) => {
                validate_parameter_name(name)?;
                Progress::Parameter(name.to_string())
            }
        };
        if request.max_duration == Some(Duration::ZERO) {
            return Err(Error::Usage(
                "invalid --max-duration 0: give a positive duration such as 10m".into(),
            ));
        }
        Ok(ExportPlan {
            destination: destination.clone(),
            aws: request.aws.clone(),
            api,
            filters,
            scopes,
            allow_unknown_filters: request.allow_unknown_filters,
            streams,
            job_id: request.job_id.clone(),
            pace: Pace::new(request.rate, request.burst)?,
            max_shards: request.max_shards,
            trust_id_order: request.trust_id_order,
            progress,
            part_rows: request.part_rows,
            compression: request.compression,
            max_duration: request.max_duration,
            restart: request.restart,
            total: request.total,
            legacy_destination: destination.legacy_url(&request.destination),
        })
    }

    /// The name of a job (or feed family): `asked`, or else the default `name_for` today's
    /// destination URL gives, unless only the name an older build gave this destination as
    /// spelled has state at `key_of` (that job is then resumed).
    pub(crate) async fn name_or_default(
        &self,
        store: &dyn crate::sink::ObjectStore,
        asked: Option<&str>,
        name_for: impl Fn(&str) -> String,
        key_of: fn(&str) -> String,
    ) -> Result<String> {
        if let Some(asked) = asked {
            return Ok(asked.to_string());
        }
        let legacy = self.legacy_destination.as_deref().map(&name_for);
        let default = name_for(&self.destination.url());
        crate::sink::default_or_legacy_id(store, default, legacy, key_of).await
    }

    /// The SSM parameter this plan publishes the count of job `job_id` to, if any.
    pub fn progress_parameter(&self, job_id: &str) -> Option<String> {
        match &self.progress {
            Progress::Default => default_progress_parameter(&self.destination, job_id),
            Progress::Off => None,
            Progress::Parameter(name) => Some(name.clone()),
        }
    }
}

impl TryFrom<ExportRequest> for ExportPlan {
    type Error = Error;
    fn try_from(request: ExportRequest) -> Result<ExportPlan> {
        ExportPlan::new(&request)
    }
}

impl From<ExportPlan> for ExportRequest {
    fn from(plan: ExportPlan) -> ExportRequest {
        ExportRequest {
            destination: plan.destination.url(),
            aws: plan.aws,
            api: plan.api,
            filters: Some(FiltersArg::Json(plan.filters)),
            scopes: plan.scopes.map(FiltersArg::Json),
            allow_unknown_filters: plan.allow_unknown_filters,
            streams: plan.streams.to_args(),
            job_id: plan.job_id,
            rate: plan.pace.rate,
            burst: plan.pace.burst,
            max_shards: plan.max_shards,
            trust_id_order: plan.trust_id_order,
            progress_parameter: match plan.progress {
                Progress::Default => None,
                Progress::Off => Some("none".into()),
                Progress::Parameter(name) => Some(name),
            },
            part_rows: plan.part_rows,
            compression: plan.compression,
            max_duration: plan.max_duration,
            restart: plan.restart,
            total: plan.total,
        }
    }
}

/// The SSM parameter a job publishes to when none is named: S3 destinations only.
pub fn default_progress_parameter(destination: &Destination, job_id: &str) -> Option<String> {
    destination
        .is_s3()
        .then(|| format!("/sechub-export/{job_id}/exported-count"))
}

/// Checks an SSM parameter name before any call.
pub fn validate_parameter_name(name: &str) -> Result<()> {
    let lower = name.to_ascii_lowercase();
    let bare = lower.trim_start_matches('/');
    // AWS: a name with a `/` is a path that starts with `/`, at most 15 levels deep.
    let hierarchy_ok = !name.contains('/')
        || (name.starts_with('/')
            && name.split('/').skip(1).all(|l| !l.is_empty())
            && name.split('/').count() - 1 <= 15);
    let ok = name.len() <= 1011
        && hierarchy_ok
        && !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/_.-".contains(c))
        && !bare.starts_with("aws")
        && !bare.starts_with("ssm");
    if ok {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "invalid --progress-parameter {name:?}: use letters, digits and _ . - in at most 15 /-separated levels starting with / (not aws or ssm)"
        )))
    }
}

/// Serde for an optional duration written as humantime text (`10m`, `1h 30m`).
mod human_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        value: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(d) => serializer.serialize_str(&humantime::format_duration(*d).to_string()),
            None => serializer.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        Option::<String>::deserialize(deserializer)?
            .map(|text| {
                humantime::parse_duration(&text).map_err(|e| {
                    serde::de::Error::custom(format!(
                        "invalid max_duration {text:?} ({e}); give a duration such as 10m"
                    ))
                })
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests;
