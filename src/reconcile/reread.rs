//! Reading one account's findings of a frozen request again (a fresh NextToken chain, at the
//! GetFindings quota), for the identities `verify --source --list-missing` compares with the
//! lake's.

use std::collections::HashMap;
use std::sync::Arc;

use aws_config::SdkConfig;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::lake::Identity;
use crate::error::{Error, Result};
use crate::request::{narrow, ocsf_filters, Api, FrozenRequest};
use crate::source::get_findings::GetFindings;
use crate::source::retry::RetryPolicy;
use crate::source::{Pace, PacedSource};

/// GetFindings' quota, which the re-read keeps to.
const PACE: Pace = Pace {
    rate: 3.0,
    burst: 6,
};

/// `filters` of `api` narrowed to the findings `account` owns (`None`: none can match).
pub fn for_account(api: Api, filters: &Value, account: &str) -> Result<Option<Value>> {
    match api {
        Api::GetFindings => narrow::own_account(filters, account),
        Api::GetFindingsV2 => Ok(Some(ocsf_filters::own_account(filters, account))),
    }
}

/// Every finding `filters` return now, by identity, with when Security Hub received it (ASFF
/// `ProcessedAt`, OCSF `metadata.processed_time_dt`) where the finding says.
pub async fn read(
    config: &SdkConfig,
    request: &FrozenRequest,
    filters: Value,
) -> Result<HashMap<Identity, Option<DateTime<Utc>>>> {
    let api = request.identity.api;
    let source = GetFindings::new(config, request.query(filters, request.identity.page_size));
    let paced = PacedSource::new(Arc::new(source), PACE.limiter(), RetryPolicy::default());
    let mut found = HashMap::new();
    let mut token: Option<String> = None;
    let mut number = 0;
    loop {
        number += 1;
        let page = paced.fetch(token.as_deref(), number).await?;
        for text in page.findings() {
            let finding: Value = serde_json::from_str(text).map_err(|e| {
                Error::Internal(format!("a finding read again does not parse: {e}"))
            })?;
            found.insert(identity(api, &finding), processed_at(api, &finding));
        }
        match page.next_token {
            Some(next) => token = Some(next),
            None => return Ok(found),
        }
    }
}

/// A finding's identity in `api`'s documents.
fn identity(api: Api, finding: &Value) -> Identity {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    match api {
        Api::GetFindings => (text(&finding["Id"]), text(&finding["ProductArn"])),
        Api::GetFindingsV2 => (
            text(&finding["finding_info"]["uid"]),
            text(&finding["metadata"]["product"]["uid"]),
        ),
    }
}

/// When Security Hub received a finding, if the document says.
fn processed_at(api: Api, finding: &Value) -> Option<DateTime<Utc>> {
    let at = match api {
        Api::GetFindings => &finding["ProcessedAt"],
        Api::GetFindingsV2 => &finding["metadata"]["processed_time_dt"],
    };
    DateTime::parse_from_rfc3339(at.as_str()?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn identities_and_arrival_are_read_from_either_format() {
        let asff = json!({"Id": "i", "ProductArn": "p", "ProcessedAt": "2026-12-07T01:00:00.5Z"});
        assert_eq!(identity(Api::GetFindings, &asff), ("i".into(), "p".into()));
        assert!(processed_at(Api::GetFindings, &asff).is_some());
        let ocsf = json!({"finding_info": {"uid": "i"}, "metadata": {"product": {"uid": "p"}}});
        assert_eq!(
            identity(Api::GetFindingsV2, &ocsf),
            ("i".into(), "p".into())
        );
        assert_eq!(processed_at(Api::GetFindingsV2, &ocsf), None);
    }
}
