//! The AWS Regions this build knows, and the partition each belongs to (for role ARNs).

/// Every Region of the commercial, GovCloud and China partitions this build knows (Security
/// Hub CSPM is offered in each). `--regions all` probes them; `--regions` refuses others.
pub const KNOWN_REGIONS: &[&str] = &[
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-7",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ca-central-1",
    "ca-west-1",
    "eu-central-1",
    "eu-central-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-south-1",
    "eu-south-2",
    "eu-north-1",
    "il-central-1",
    "me-south-1",
    "me-central-1",
    "mx-central-1",
    "sa-east-1",
    "us-gov-east-1",
    "us-gov-west-1",
    "cn-north-1",
    "cn-northwest-1",
];

/// The partition of a Region: `aws`, `aws-us-gov` or `aws-cn`.
pub fn partition(region: &str) -> &'static str {
    if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else if region.starts_with("cn-") {
        "aws-cn"
    } else {
        "aws"
    }
}

/// True for a Region this build knows.
pub fn is_known(region: &str) -> bool {
    KNOWN_REGIONS.contains(&region)
}

/// The known Regions of `region`'s partition (a role cannot be assumed across partitions).
pub fn in_partition_of(region: &str) -> Vec<String> {
    let wanted = partition(region);
    KNOWN_REGIONS
        .iter()
        .filter(|r| partition(r) == wanted)
        .map(|r| r.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_follow_the_region_prefix() {
        assert_eq!(partition("eu-west-1"), "aws");
        assert_eq!(partition("us-gov-west-1"), "aws-us-gov");
        assert_eq!(partition("cn-north-1"), "aws-cn");
        let commercial = in_partition_of("us-east-1");
        assert!(commercial.contains(&"ap-southeast-2".to_string()));
        assert!(!commercial.iter().any(|r| r.starts_with("cn-")));
        assert_eq!(
            in_partition_of("cn-north-1"),
            ["cn-north-1", "cn-northwest-1"]
        );
        assert!(is_known("il-central-1") && !is_known("us-east-9") && !is_known("useast-1"));
    }
}
