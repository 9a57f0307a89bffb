//! Streams: a job over many accounts and Regions is one stream per (account, Region), each at
//! its own quota with its own credentials, checkpoint and parts. This module holds the flags
//! that choose them, checked offline, and the stream set resolved when the job is created.

pub mod aggregation;
pub mod regions;
pub mod resolve;

use clap::Args;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::request::{narrow, ocsf_filters, Api};

/// Streams exported at once by default: each waits on its own quota most of the time, and 16
/// streams at 300 findings/s each stay well inside what two cores encode.
pub const DEFAULT_MAX_STREAMS: u32 = 16;
/// Most streams exported at once.
pub const MAX_STREAMS: u32 = 256;
/// Longest job id of a multi-stream job (stream job ids append `.<account>.<region>`).
pub const MAX_FANOUT_JOB_ID: usize = 96;

/// The flags that make a job span accounts and Regions (the same names in an event).
#[derive(Debug, Clone, PartialEq, Eq, Args, Serialize, Deserialize)]
pub struct StreamArgs {
    /// Accounts to export, one stream per account and Region: 12-digit ids separated by
    /// commas, or `organization` (the Security Hub administrator running this and its enabled
    /// members). Needs --role-name. Default: the caller's own account.
    #[arg(long, value_delimiter = ',')]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accounts: Vec<String>,
    /// Regions to export: Region codes separated by commas, or `all` (every Region of the
    /// partition where the caller has Security Hub enabled). Default: --region.
    #[arg(long, value_delimiter = ',')]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<String>,
    /// IAM role assumed in every account of --accounts other than the caller's own
    /// (arn:<partition>:iam::<account>:role/<role-name>).
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_name: Option<String>,
    /// External id the roles' trust policies require.
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// Streams exported at once, each at its own quota; a finished stream frees its slot.
    #[arg(long, default_value_t = DEFAULT_MAX_STREAMS)]
    #[serde(default = "default_max_streams")]
    pub max_streams: u32,
}

fn default_max_streams() -> u32 {
    DEFAULT_MAX_STREAMS
}

impl Default for StreamArgs {
    /// No stream flags: the caller's own account and Region.
    fn default() -> Self {
        StreamArgs {
            accounts: Vec::new(),
            regions: Vec::new(),
            role_name: None,
            external_id: None,
            max_streams: DEFAULT_MAX_STREAMS,
        }
    }
}

/// Which accounts a job reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Accounts {
    /// The caller's own account only.
    Caller,
    /// These accounts (sorted, no duplicates).
    Listed(Vec<String>),
    /// The Security Hub administrator running the job and its enabled members.
    Organization,
}

/// Which Regions a job reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Regions {
    /// The configured Region only.
    Caller,
    /// These Regions (sorted, no duplicates).
    Listed(Vec<String>),
    /// Every Region of the partition where the caller has Security Hub enabled.
    All,
}

/// The role assumed in other accounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    /// Role name (no path).
    pub name: String,
    /// External id, if the trust policy requires one.
    pub external_id: Option<String>,
}

/// The validated stream flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSpec {
    /// Accounts read.
    pub accounts: Accounts,
    /// Regions read.
    pub regions: Regions,
    /// Role assumed in other accounts.
    pub role: Option<Role>,
    /// Streams at once.
    pub max_streams: u32,
}

/// One stream: what one account's GetFindings returns in one Region.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Stream {
    /// The account read.
    pub account_id: String,
    /// The Region read.
    pub region: String,
    /// Regions whose findings this stream leaves out (`Region NOT_EQUALS`): an aggregation
    /// home Region's copies of Regions that have streams of their own in the job.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left_out: Vec<String>,
    /// The stream reads only the findings its account owns (`AwsAccountId`, or
    /// `cloud.account.uid`, EQUALS the account): other accounts in the job have streams of
    /// their own, and an administrator also sees its members' findings. Absent in jobs made
    /// before it existed, which keep reading what they read.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub own_findings_only: bool,
}

impl Stream {
    /// The stream of `account_id` in `region`, reading all of it.
    pub fn new(account_id: &str, region: &str) -> Stream {
        Stream {
            account_id: account_id.to_string(),
            region: region.to_string(),
            left_out: Vec::new(),
            own_findings_only: false,
        }
    }

    /// What this stream reads of a job's `filters` (of `api`): the Regions it leaves out left
    /// out, and only its account's own findings when it reads only those; `None` when nothing
    /// is left.
    pub fn filters(&self, api: Api, filters: &Value) -> Result<Option<Value>> {
        let Some(filters) = narrow::leave_out_regions(filters, &self.left_out)? else {
            return Ok(None);
        };
        if !self.own_findings_only {
            return Ok(Some(filters));
        }
        match api {
            Api::GetFindings => narrow::own_account(&filters, &self.account_id),
            Api::GetFindingsV2 => Ok(Some(ocsf_filters::own_account(&filters, &self.account_id))),
        }
    }

    /// `111111111111/eu-west-1`, as the user reads it.
    pub fn label(&self) -> String {
        format!("{}/{}", self.account_id, self.region)
    }

    /// The job id of this stream within job `job_id`: `<job>.<account>.<region>`.
    pub fn job_id(&self, job_id: &str) -> String {
        format!("{job_id}.{}.{}", self.account_id, self.region)
    }
}

impl StreamSpec {
    /// Checks the stream flags without the network.
    pub fn new(args: &StreamArgs) -> Result<StreamSpec> {
        let accounts = parse_accounts(&args.accounts)?;
        let regions = parse_regions(&args.regions)?;
        if args.external_id.is_some() && args.role_name.is_none() {
            return Err(usage("--external-id needs --role-name"));
        }
        let role = match (&args.role_name, &accounts) {
            (Some(_), Accounts::Caller) => {
                return Err(usage(
                    "--role-name needs --accounts: list the accounts to assume it in (or `organization`)",
                ))
            }
            (None, Accounts::Listed(_) | Accounts::Organization) => {
                return Err(usage(
                    "--accounts needs --role-name: the IAM role to assume in each account (e.g. --role-name SecurityHubExportRole)",
                ))
            }
            (Some(name), _) => Some(Role {
                name: check_role_name(name)?,
                external_id: args.external_id.as_deref().map(check_external_id).transpose()?,
            }),
            (None, Accounts::Caller) => None,
        };
        if !(1..=MAX_STREAMS).contains(&args.max_streams) {
            return Err(usage(&format!(
                "invalid --max-streams {}: use 1 to {MAX_STREAMS}",
                args.max_streams
            )));
        }
        Ok(StreamSpec {
            accounts,
            regions,
            role,
            max_streams: args.max_streams,
        })
    }

    /// True for the one-stream job of the caller's account and Region (no stream flags).
    pub fn is_single(&self) -> bool {
        self.accounts == Accounts::Caller && self.regions == Regions::Caller
    }

    /// The flags this spec was made from (normalised).
    pub fn to_args(&self) -> StreamArgs {
        let (role_name, external_id) = match &self.role {
            Some(role) => (Some(role.name.clone()), role.external_id.clone()),
            None => (None, None),
        };
        StreamArgs {
            accounts: match &self.accounts {
                Accounts::Caller => Vec::new(),
                Accounts::Listed(ids) => ids.clone(),
                Accounts::Organization => vec!["organization".into()],
            },
            regions: match &self.regions {
                Regions::Caller => Vec::new(),
                Regions::Listed(names) => names.clone(),
                Regions::All => vec!["all".into()],
            },
            role_name,
            external_id,
            max_streams: self.max_streams,
        }
    }
}

/// What selects a multi-stream job's streams: the same selection resumes the same job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selection {
    /// Accounts as asked.
    pub accounts: Accounts,
    /// Regions as asked (`Caller` resolved to the configured Region).
    pub regions: Regions,
    /// The account that ran the job first (whose credentials assume the roles).
    pub caller_account_id: String,
}

fn usage(message: &str) -> Error {
    Error::Usage(message.to_string())
}

fn parse_accounts(given: &[String]) -> Result<Accounts> {
    let given: Vec<&str> = given.iter().map(|a| a.trim()).collect();
    if given.is_empty() {
        return Ok(Accounts::Caller);
    }
    if given.contains(&"organization") {
        return if given.len() == 1 {
            Ok(Accounts::Organization)
        } else {
            Err(usage(
                "--accounts organization cannot be combined with account ids",
            ))
        };
    }
    let mut ids = Vec::new();
    for id in given {
        if id.len() != 12 || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(usage(&format!(
                "invalid account id {id:?} in --accounts: use 12-digit ids separated by commas, or `organization`"
            )));
        }
        ids.push(id.to_string());
    }
    ids.sort();
    ids.dedup();
    Ok(Accounts::Listed(ids))
}

fn parse_regions(given: &[String]) -> Result<Regions> {
    let given: Vec<&str> = given.iter().map(|r| r.trim()).collect();
    if given.is_empty() {
        return Ok(Regions::Caller);
    }
    if given.contains(&"all") {
        return if given.len() == 1 {
            Ok(Regions::All)
        } else {
            Err(usage("--regions all cannot be combined with Region names"))
        };
    }
    let mut names = Vec::new();
    for name in given {
        if !regions::is_well_formed(name) {
            return Err(usage(&format!(
                "{name:?} in --regions is not a Region code: use codes such as us-east-1,eu-west-1 separated by commas, or `all`"
            )));
        }
        regions::check(name, "--regions").map_err(|message| usage(&message))?;
        if !regions::is_known(name) {
            tracing::warn!("Region {name} is not one this build knows (a new Region, or a typo): it is read as given");
        }
        names.push(name.to_string());
    }
    if names
        .iter()
        .any(|r| regions::partition(r) != regions::partition(&names[0]))
    {
        return Err(usage(
            "--regions mixes partitions (aws, aws-us-gov, aws-cn): one job reads one partition",
        ));
    }
    names.sort();
    names.dedup();
    Ok(Regions::Listed(names))
}

/// IAM role names: 1-64 of letters, digits and `+=,.@_-` (a path is not accepted).
fn check_role_name(name: &str) -> Result<String> {
    let ok = (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c));
    if ok {
        Ok(name.to_string())
    } else {
        Err(usage(&format!(
            "invalid --role-name {name:?}: give the role's name (1-64 of letters, digits and +=,.@_-), not its ARN or path"
        )))
    }
}

/// STS external ids: 2-1224 of letters, digits and `+=,.@:/_-`.
fn check_external_id(id: &str) -> Result<String> {
    let ok = (2..=1224).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@:/_-".contains(c));
    if ok {
        Ok(id.to_string())
    } else {
        Err(usage(
            "invalid --external-id: use 2-1224 of letters, digits and +=,.@:/_-",
        ))
    }
}

#[cfg(test)]
mod tests;
