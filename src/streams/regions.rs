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

/// The known Region `region` is a typo of, if any: same number, and its words within two
/// edits (`us-esat-1` is `us-east-1`; an unknown `ap-east-9` is a new Region, not a typo).
pub fn typo_of(region: &str) -> Option<&'static str> {
    if is_known(region) {
        return None;
    }
    let (words, number) = region.rsplit_once('-')?;
    KNOWN_REGIONS.iter().copied().find(|known| {
        known
            .rsplit_once('-')
            .is_some_and(|(known_words, known_number)| {
                known_number == number && strsim::damerau_levenshtein(words, known_words) <= 2
            })
    })
}

/// Refuses a Region that is not shaped like one or is a typo of a known one (before any
/// network call); a well-formed Region this build does not know is used as given.
pub fn check(region: &str, flag: &str) -> Result<(), String> {
    if !is_well_formed(region) {
        return Err(format!(
            "{region:?} in {flag} is not a Region code: use a code such as us-east-1"
        ));
    }
    if let Some(known) = typo_of(region) {
        return Err(format!(
            "unknown Region {region:?} in {flag}: did you mean {known}?"
        ));
    }
    Ok(())
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
    fn a_misspelt_region_is_a_typo_and_a_new_number_is_not() {
        assert_eq!(typo_of("us-esat-1"), Some("us-east-1"));
        assert_eq!(typo_of("eu-wset-1"), Some("eu-west-1"));
        assert_eq!(typo_of("us-east-1"), None);
        assert_eq!(typo_of("ap-east-9"), None);
        assert!(check("us-esat-1", "--region")
            .unwrap_err()
            .contains("did you mean us-east-1?"));
        assert!(check("mars", "--region").is_err());
        assert!(check("ap-east-9", "--region").is_ok());
    }

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
