//! The AWS Regions this build knows, and the partition each belongs to (for role ARNs).

/// Every Region of the commercial, GovCloud and China partitions this build knows (Security
/// Hub CSPM is offered in each). `--regions all` probes them; `--regions` takes any
/// well-formed code (a Region newer than this build), with a warning for one not listed.
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
    "ap-southeast-6",
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

/// True for a string shaped like a Region code: lower-case words joined by `-`, the first of
/// two to four letters, ending in a number (`us-east-1`, `us-gov-west-1`, `ap-southeast-6`).
pub fn is_well_formed(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    let Some((number, words)) = parts.split_last() else {
        return false;
    };
    words.len() >= 2
        && (2..=4).contains(&words[0].len())
        && words
            .iter()
            .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase()))
        && (1..=2).contains(&number.len())
        && number.bytes().all(|b| b.is_ascii_digit())
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
        assert!(is_known("ap-southeast-6"));
        for code in [
            "us-east-9",
            "us-gov-west-1",
            "ap-southeast-6",
            "eusc-de-east-1",
        ] {
            assert!(is_well_formed(code), "{code}");
        }
        for code in [
            "mars-1",
            "useast-1",
            "us-east",
            "US-EAST-1",
            "us-east-1a",
            "us--east-1",
            "",
        ] {
            assert!(!is_well_formed(code), "{code}");
        }
    }
}
