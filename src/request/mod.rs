//! The frozen request a job is bound to, the job identity derived from it, and the API it is
//! sent to (which fixes the filter dialect and the table format).

mod filter_fields;
pub mod filters;
pub mod narrow;
mod ocsf_fields;
pub mod ocsf_filters;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::encode::asff::ASFF;
use crate::encode::ocsf::OCSF;
use crate::encode::Format;
use crate::error::{Error, Result};

/// Findings per GetFindings page: the service maximum, so the quota buys the most findings.
pub const PAGE_SIZE: u32 = 100;

/// The Security Hub API a job reads (`--api v1` or `--api v2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Api {
    /// `GetFindings`: ASFF findings (Security Hub CSPM).
    #[default]
    #[serde(alias = "v1")]
    GetFindings,
    /// `GetFindingsV2`: OCSF findings (the new Security Hub).
    #[serde(alias = "v2")]
    GetFindingsV2,
}

impl Api {
    /// The table format of this API's findings.
    pub fn format(self) -> &'static dyn Format {
        match self {
            Api::GetFindings => &ASFF,
            Api::GetFindingsV2 => &OCSF,
        }
    }

    /// Checks filters in this API's dialect, before any network call; `allow_unknown` lets
    /// attribute names newer than this build through.
    pub fn validate_filters(self, filters: &Value, allow_unknown: bool) -> Result<()> {
        match self {
            Api::GetFindings => filters::validate(filters, allow_unknown),
            Api::GetFindingsV2 => ocsf_filters::validate(filters, allow_unknown),
        }
    }

    /// True when the filters hold a relative date range (resolved when a job is created).
    pub fn has_relative_range(self, filters: &Value) -> bool {
        match self {
            Api::GetFindings => filters::has_relative_range(filters),
            Api::GetFindingsV2 => ocsf_filters::has_relative_range(filters),
        }
    }

    /// The frozen request's filters over the findings changed after its window's end (or
    /// after `started`, if later) up to `until`, with that instant (see `job::settle`).
    pub fn changed_since_filters(
        self,
        filters: &Value,
        started: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Option<(Value, DateTime<Utc>)> {
        match self {
            Api::GetFindings => filters::changed_since_filters(filters, started, until),
            Api::GetFindingsV2 => ocsf_filters::changed_since_filters(filters, started, until),
        }
    }
}

impl std::str::FromStr for Api {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Api, String> {
        match s.to_ascii_lowercase().as_str() {
            "v1" | "asff" | "cspm" | "getfindings" => Ok(Api::GetFindings),
            "v2" | "ocsf" | "getfindingsv2" => Ok(Api::GetFindingsV2),
            _ => Err(format!(
                "unknown API {s:?}: use v1 (GetFindings, ASFF, Security Hub CSPM) or v2 (GetFindingsV2, OCSF, the new Security Hub)"
            )),
        }
    }
}

impl std::fmt::Display for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Api::GetFindings => f.write_str("GetFindings"),
            Api::GetFindingsV2 => f.write_str("GetFindingsV2"),
        }
    }
}

/// An order on the finding `Id` a chain asks the service for (`SortCriteria`): the two chains of
/// a meeting pair read one query from its two ends (see `job::meeting`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdOrder {
    /// Ascending `Id`.
    Asc,
    /// Descending `Id`.
    Desc,
}

impl IdOrder {
    /// The `SortCriteria` member of a GetFindings request in this order.
    pub fn sort_criteria(self) -> Value {
        let order = match self {
            IdOrder::Asc => "asc",
            IdOrder::Desc => "desc",
        };
        serde_json::json!([{"Field": "Id", "SortOrder": order}])
    }
}

/// What identifies a job: the same identity resumes the same job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobIdentity {
    /// Source API.
    pub api: Api,
    /// AWS Region the findings are read in.
    pub region: String,
    /// Account whose credentials read them.
    pub account_id: String,
    /// Filters exactly as the user gave them (relative date ranges unresolved).
    pub filters_as_given: Value,
    /// Findings per page.
    pub page_size: u32,
    /// Destination URL, normalised.
    #[serde(deserialize_with = "crate::sink::deserialize_normalized_url")]
    pub destination: String,
    /// GetFindingsV2 `Scopes` (a delegated administrator's organizations or units), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Value>,
}

/// The request sent on every page of a job, fixed at job creation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrozenRequest {
    /// What identifies the job.
    #[serde(flatten)]
    pub identity: JobIdentity,
    /// Filters with relative date ranges resolved to absolute timestamps at `frozen_at`.
    pub filters: Value,
    /// When the request was frozen: the moment the export reflects.
    pub frozen_at: DateTime<Utc>,
}

impl FrozenRequest {
    /// The query of `filters` (the request's own, a shard's or the settle check's) against
    /// this request's API and scopes, `page_size` findings a page.
    pub fn query(&self, filters: Value, page_size: u32) -> crate::source::get_findings::Query {
        crate::source::get_findings::Query {
            api: self.identity.api,
            filters,
            scopes: self.identity.scopes.clone(),
            sort: None,
            page_size,
        }
    }
}

impl JobIdentity {
    /// The same identity with the destination stored as `url`.
    pub(crate) fn at(&self, url: &str) -> JobIdentity {
        JobIdentity {
            destination: url.to_string(),
            ..self.clone()
        }
    }

    /// The default job id: account, Region and a short hash of the rest of the identity.
    pub fn default_job_id(&self) -> String {
        let canonical = serde_json::to_vec(self).expect("identity serialises");
        let hash = hex::encode(&Sha256::digest(&canonical)[..5]);
        format!("{}-{}-{hash}", self.account_id, self.region)
    }

    /// Freezes the request as of `now`: relative date ranges resolved, and the `UpdatedAt`
    /// window closed at `now` when the filters leave it open.
    pub fn freeze(self, now: DateTime<Utc>) -> FrozenRequest {
        if self.api == Api::GetFindingsV2 {
            return FrozenRequest {
                filters: ocsf_filters::freeze(&self.filters_as_given, now),
                identity: self,
                frozen_at: now,
            };
        }
        let resolved = filters::freeze(&self.filters_as_given, now);
        let filters = filters::bound_updated_at(&resolved, now).unwrap_or_else(|| {
            tracing::warn!(
                "the filters use all {} attributes Security Hub accepts, so the export's window is not closed at {}: findings updated during the export may be read twice or missed by it (add an UpdatedAt filter to close it)",
                filters::MAX_ATTRIBUTES,
                filters::iso(now)
            );
            resolved
        });
        FrozenRequest {
            identity: self,
            filters,
            frozen_at: now,
        }
    }
}

/// An identity for unit tests: one account and Region, these filters, a local destination.
#[cfg(test)]
pub(crate) fn test_identity(filters: Value) -> JobIdentity {
    JobIdentity {
        api: Api::GetFindings,
        region: "us-east-1".into(),
        account_id: "123456789012".into(),
        filters_as_given: filters,
        page_size: PAGE_SIZE,
        destination: "file:///tmp/lake".into(),
        scopes: None,
    }
}

/// Checks that a job id is safe to use in object keys and SSM parameter names.
pub fn validate_job_id(job_id: &str) -> Result<()> {
    let ok = !job_id.is_empty()
        && job_id.len() <= 128
        && job_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !job_id.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "invalid --job-id {job_id:?}: use 1-128 characters from A-Z a-z 0-9 - _ ."
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use super::test_identity as identity;

    #[test]
    fn same_command_gives_same_job_id_and_different_filters_do_not() {
        let a = identity(json!({"RecordState": [{"Value": "ACTIVE", "Comparison": "EQUALS"}]}));
        let b = a.clone();
        let c = identity(json!({}));
        assert_eq!(a.default_job_id(), b.default_job_id());
        assert_ne!(a.default_job_id(), c.default_job_id());
        assert!(a.default_job_id().starts_with("123456789012-us-east-1-"));
    }

    #[test]
    fn relative_date_range_is_frozen_to_absolute_start_and_end() {
        let now = DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let given = json!({"UpdatedAt": [{"DateRange": {"Value": 30, "Unit": "DAYS"}}]});
        let frozen = identity(given.clone()).freeze(now);
        assert_eq!(
            frozen.filters,
            json!({"UpdatedAt": [{"Start": "2026-10-23T10:00:00.000Z", "End": "2026-11-22T10:00:00.000Z"}]})
        );
        assert_eq!(frozen.identity.filters_as_given, given);
    }

    #[test]
    fn every_frozen_request_closes_its_updated_at_window_at_the_freeze() {
        let now = DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let active = json!({"RecordState": [{"Value": "ACTIVE", "Comparison": "EQUALS"}]});
        let frozen = identity(active.clone()).freeze(now);
        assert_eq!(
            frozen.filters,
            json!({
                "RecordState": [{"Value": "ACTIVE", "Comparison": "EQUALS"}],
                "UpdatedAt": [{"Start": "1970-01-01T00:00:00.000Z", "End": "2026-11-22T10:00:00.000Z"}]
            })
        );
        assert_eq!(
            frozen.identity.filters_as_given, active,
            "the job id is unchanged"
        );
        let own = json!({"UpdatedAt": [{"Start": "2026-01-01T00:00:00Z", "End": "2026-02-01T00:00:00Z"}]});
        assert_eq!(identity(own.clone()).freeze(now).filters, own);
        let full: serde_json::Map<String, Value> = (0..filters::MAX_ATTRIBUTES)
            .map(|i| {
                (
                    format!("Attr{i}"),
                    json!([{"Value": "x", "Comparison": "EQUALS"}]),
                )
            })
            .collect();
        let full = Value::Object(full);
        assert_eq!(identity(full.clone()).freeze(now).filters, full);
    }

    #[test]
    fn job_ids_with_path_characters_are_rejected() {
        assert!(validate_job_id("nightly-2026_11.a").is_ok());
        for bad in ["", "a/b", "../x", ".hidden", "a b"] {
            assert!(validate_job_id(bad).is_err(), "{bad}");
        }
    }
}
