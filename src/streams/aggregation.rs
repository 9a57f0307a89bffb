//! Cross-Region aggregation: in an account's aggregation home Region, GetFindings also returns
//! the findings of its linked Regions, so reading every Region would export those twice.
//!
//! The rule: every stream reads what its Region's GetFindings returns, at that Region's quota,
//! except that an aggregation home Region's stream leaves out (`Region NOT_EQUALS`) the copies
//! of findings generated in the job's other Regions of the same account: those are read from
//! their own Region. Linked Regions outside the job still come through the home Region. Each
//! finding thus lands once, from where it was generated when that Region is in the job. When
//! aggregation cannot be read (no permission), every stream of the account leaves out the
//! job's other Regions, which is exact whatever the aggregation (a Region that is not a home
//! holds only its own findings).

use aws_config::SdkConfig;
use serde::{Deserialize, Serialize};

use super::{Role, Stream};
use crate::aws::{self, Failure};

/// What an account's cross-Region aggregation is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "aggregation", rename_all = "snake_case")]
pub enum Aggregation {
    /// No finding aggregator: each Region holds only its own findings.
    None,
    /// Findings of linked Regions are replicated into `home_region`.
    Home {
        /// The aggregation (home) Region.
        home_region: String,
        /// `ALL_REGIONS`, `ALL_REGIONS_EXCEPT_SPECIFIED`, `SPECIFIED_REGIONS`, `NO_REGIONS`.
        linking_mode: String,
    },
    /// Not readable (the reason): every stream of the account keeps to its own Region.
    Unknown {
        /// Why it could not be read.
        reason: String,
    },
}

/// One account's aggregation, as found when the job was created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountAggregation {
    /// The account.
    pub account_id: String,
    /// What was found.
    #[serde(flatten)]
    pub aggregation: Aggregation,
}

impl Aggregation {
    /// The Regions whose findings the stream of `region` leaves out, when the account has
    /// `regions_in_job` in the job.
    pub fn left_out(&self, region: &str, regions_in_job: &[String]) -> Vec<String> {
        let applies = match self {
            Aggregation::None => false,
            Aggregation::Home { home_region, .. } => home_region == region,
            Aggregation::Unknown { .. } => true,
        };
        if !applies {
            return Vec::new();
        }
        regions_in_job
            .iter()
            .filter(|r| r.as_str() != region)
            .cloned()
            .collect()
    }

    /// What was chosen for the account, and why, in words.
    pub fn describe(&self) -> String {
        match self {
            Aggregation::None => "no cross-Region aggregation: each Region's stream reads it whole".into(),
            Aggregation::Home { home_region, linking_mode } => format!(
                "aggregates into {home_region} ({linking_mode}): the {home_region} stream leaves out (Region NOT_EQUALS) the job's other Regions, read from their own streams"
            ),
            Aggregation::Unknown { reason } => format!(
                "aggregation unknown ({reason}): every stream leaves out the job's other Regions of the account"
            ),
        }
    }
}

/// Reads `stream`'s account aggregation with the account's own credentials, in the stream's
/// Region (ListFindingAggregators), then in the home Region (GetFindingAggregator).
pub async fn detect(
    base: &SdkConfig,
    caller: &str,
    stream: &Stream,
    role: Option<&Role>,
) -> Aggregation {
    let config = match aws::stream_config(base, caller, stream, role).await {
        Ok(config) => config,
        Err(err) => {
            return Aggregation::Unknown {
                reason: crate::error::one_line(&err),
            }
        }
    };
    let client = aws_sdk_securityhub::Client::new(&config);
    let listed = match client.list_finding_aggregators().send().await {
        Ok(listed) => listed,
        Err(err) => {
            return Aggregation::Unknown {
                reason: format!("ListFindingAggregators: {}", Failure::of(&err).summary()),
            }
        }
    };
    let Some(arn) = listed
        .finding_aggregators()
        .iter()
        .find_map(|a| a.finding_aggregator_arn())
    else {
        return Aggregation::None;
    };
    // arn:aws:securityhub:<home>:<account>:finding-aggregator/<id>
    let home_region = arn.split(':').nth(3).unwrap_or_default().to_string();
    let home_client = aws_sdk_securityhub::Client::from_conf(
        aws_sdk_securityhub::config::Builder::from(&config)
            .region(aws_config::Region::new(home_region.clone()))
            .build(),
    );
    match home_client
        .get_finding_aggregator()
        .finding_aggregator_arn(arn)
        .send()
        .await
    {
        Ok(found) => Aggregation::Home {
            home_region: found
                .finding_aggregation_region()
                .unwrap_or(&home_region)
                .to_string(),
            linking_mode: found.region_linking_mode().unwrap_or("unknown").to_string(),
        },
        Err(err) => Aggregation::Home {
            home_region,
            linking_mode: format!("linking unknown: {}", Failure::of(&err).summary()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_home_stream_leaves_out_the_jobs_other_regions() {
        let home = Aggregation::Home {
            home_region: "us-east-1".into(),
            linking_mode: "ALL_REGIONS".into(),
        };
        let job: Vec<String> = ["eu-west-1", "us-east-1"].map(String::from).to_vec();
        assert_eq!(home.left_out("us-east-1", &job), ["eu-west-1"]);
        assert!(home.left_out("eu-west-1", &job).is_empty());
        let alone = ["us-east-1".to_string()];
        assert!(
            home.left_out("us-east-1", &alone).is_empty(),
            "alone, the home Region is read whole"
        );
        assert!(Aggregation::None.left_out("us-east-1", &job).is_empty());
        let unknown = Aggregation::Unknown {
            reason: "denied".into(),
        };
        assert_eq!(unknown.left_out("eu-west-1", &job), ["us-east-1"]);
        assert!(home.describe().contains("NOT_EQUALS"));
    }
}
