use super::*;

fn spec(accounts: &[&str], regions: &[&str], role: Option<&str>) -> Result<StreamSpec> {
    StreamSpec::new(&StreamArgs {
        accounts: accounts.iter().map(|s| s.to_string()).collect(),
        regions: regions.iter().map(|s| s.to_string()).collect(),
        role_name: role.map(str::to_string),
        external_id: None,
        max_streams: DEFAULT_MAX_STREAMS,
    })
}

fn message(result: Result<StreamSpec>) -> String {
    result.unwrap_err().to_string()
}

#[test]
fn no_stream_flags_is_the_single_stream_of_the_caller() {
    let single = spec(&[], &[], None).unwrap();
    assert!(single.is_single());
    assert_eq!(single.to_args(), StreamArgs::default());
    assert!(!spec(&[], &["eu-west-1"], None).unwrap().is_single());
}

#[test]
fn accounts_and_regions_are_checked_sorted_and_deduplicated() {
    let s = spec(
        &["222222222222", "111111111111", "222222222222"],
        &["eu-west-1", "us-east-1"],
        Some("SecurityHubExportRole"),
    )
    .unwrap();
    assert_eq!(
        s.accounts,
        Accounts::Listed(vec!["111111111111".into(), "222222222222".into()])
    );
    assert_eq!(
        s.regions,
        Regions::Listed(vec!["eu-west-1".into(), "us-east-1".into()])
    );
    assert_eq!(StreamSpec::new(&s.to_args()).unwrap(), s);
    let org = spec(&["organization"], &["all"], Some("R")).unwrap();
    assert_eq!(
        (org.accounts, org.regions),
        (Accounts::Organization, Regions::All)
    );
}

#[test]
fn bad_stream_flags_say_what_to_do() {
    for (result, needle) in [
        (
            spec(&["12345"], &[], Some("R")),
            "invalid account id \"12345\"",
        ),
        (spec(&["1234567890ab"], &[], Some("R")), "12-digit"),
        (
            spec(&["organization", "111111111111"], &[], Some("R")),
            "cannot be combined",
        ),
        (
            spec(&[], &["us_east_1"], None),
            "\"us_east_1\" in --regions is not a Region code",
        ),
        (spec(&[], &["all", "eu-west-1"], None), "cannot be combined"),
        (
            spec(&[], &["us-east-1", "cn-north-1"], None),
            "mixes partitions",
        ),
        (spec(&[], &[], Some("R")), "--role-name needs --accounts"),
        (
            spec(&["111111111111"], &[], None),
            "--accounts needs --role-name",
        ),
        (
            spec(&["111111111111"], &[], Some("arn:aws:iam::1:role/R")),
            "invalid --role-name",
        ),
    ] {
        let text = message(result);
        assert!(text.contains(needle), "{text}");
    }
    let mut args = spec(&["111111111111"], &[], Some("R")).unwrap().to_args();
    args.max_streams = 0;
    assert!(message(StreamSpec::new(&args)).contains("--max-streams"));
    args.max_streams = 4;
    args.external_id = Some("x".into());
    assert!(message(StreamSpec::new(&args)).contains("--external-id"));
    args.role_name = None;
    assert!(message(StreamSpec::new(&args)).contains("--external-id needs --role-name"));
}

#[test]
fn stream_job_ids_extend_the_job_id() {
    let stream = Stream::new("111111111111", "eu-west-1");
    assert_eq!(stream.job_id("nightly"), "nightly.111111111111.eu-west-1");
    assert_eq!(stream.label(), "111111111111/eu-west-1");
    crate::request::validate_job_id(&stream.job_id(&"j".repeat(MAX_FANOUT_JOB_ID))).unwrap();
}
