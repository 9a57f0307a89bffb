//! Jobs over many accounts and Regions: against moto (roles assumed into other accounts, each
//! with its own data) and against the emulator (a hub and quota per account and Region, missing
//! roles, kills); every lake read back with DuckDB and pyarrow.

mod common;

use std::time::Duration;

use common::org::*;
use common::*;
use sechub_export::emulator::{Emulator, EmulatorConfig, Faults, EMULATOR_ACCOUNT};
use serde_json::Value;

const MEMBER_A: &str = "111111111111";
const MEMBER_B: &str = "222222222222";
const REGIONS: [&str; 2] = ["eu-west-1", "us-east-1"];

fn stream_flags<'a>(accounts: &'a str, regions: &'a str) -> Vec<&'a str> {
    vec![
        "--accounts",
        accounts,
        "--regions",
        regions,
        "--role-name",
        "SecurityHubExportRole",
    ]
}

#[test]
fn a_job_over_three_accounts_and_two_regions_in_moto_lands_every_finding_once_with_its_source() {
    let dir = tempfile::tempdir().unwrap();
    let moto = Moto::start();
    lake_tool(&["create-bucket", &moto.url, "lake"]);
    let mut seeded = Vec::new();
    let mut expected_sources = serde_json::Map::new();
    for (n, account) in [EMULATOR_ACCOUNT, MEMBER_A, MEMBER_B].iter().enumerate() {
        for (m, region) in REGIONS.iter().enumerate() {
            let count = 60 + 70 * (2 * n + m) as u64;
            let generated = dir.path().join(format!("{account}-{region}.ndjson"));
            hub_findings(&generated, 5, account, region, count);
            let imported = dir.path().join(format!("{account}-{region}.seeded.ndjson"));
            let mut args = vec!["seed", &moto.url, generated.to_str().unwrap()];
            args.extend([imported.to_str().unwrap(), "--region", region]);
            if *account != EMULATOR_ACCOUNT {
                args.extend(["--account", account]);
            }
            assert_eq!(lake_tool(&args)["failed"], 0);
            seeded.push(imported);
            expected_sources.insert(format!("{account}/{region}"), count.into());
        }
    }
    let total: u64 = expected_sources.values().map(|v| v.as_u64().unwrap()).sum();
    let expected = concat(&seeded, &dir.path().join("expected.ndjson"));
    let accounts = format!("{MEMBER_B},{EMULATOR_ACCOUNT},{MEMBER_A}");
    let export = |regions: &str| {
        let mut cmd = command(Some(&moto.url));
        cmd.args(["export", "--destination", "s3://lake/sh", "--job-id", "org"])
            .args(stream_flags(&accounts, regions))
            .args(["--external-id", "lake-export", "--part-rows", "100", "-q"]);
        run(cmd)
    };
    let first = export("us-east-1,eu-west-1").ok();
    assert!(first.contains("complete: job org: 6 streams"), "{first}");
    assert!(
        first.contains(&format!("job total {total} findings")),
        "{first}"
    );

    let landed = s3_lake(&moto, dir.path(), "landed");
    assert_exactly_once(&check_lake(&landed, &expected, true), total);
    let (by_source, wrong) = sources(&landed);
    assert_eq!(by_source, Value::Object(expected_sources));
    assert_eq!(
        wrong, 0,
        "every row's source is the account and Region it belongs to"
    );
    let ssm = lake_tool(&[
        "get-parameter",
        &moto.url,
        "/sechub-export/org/exported-count",
    ]);
    assert_eq!(
        ssm["value"],
        total.to_string(),
        "one SSM count: the sum over streams"
    );

    let mut verify = command(Some(&moto.url));
    verify.args([
        "verify",
        "--destination",
        "s3://lake/sh",
        "--job-id",
        "org",
        "--deep",
    ]);
    let verified = run(verify).ok();
    assert!(
        verified.contains(&format!("{total} findings")) && verified.contains("over 6 streams"),
        "{verified}"
    );
    let shown = status_of(&moto.url, "s3://lake/sh", "org");
    assert!(shown.contains("streams:      6 (6 complete)"), "{shown}");
    assert!(
        shown.contains("222222222222/us-east-1      complete"),
        "{shown}"
    );

    // Same command again: nothing fetched; another stream set under the same id: refused.
    let again = export("eu-west-1,us-east-1").ok();
    assert!(again.contains("this run 0 findings"), "{again}");
    let before = s3_lake(&moto, dir.path(), "before");
    export("us-east-1").fails(5, &["job org", "Regions differ", "--job-id"]);
    assert_eq!(tree(&before), tree(&s3_lake(&moto, dir.path(), "after")));
}

/// An emulator with the administrator and two members, each with `per_hub` findings in each of
/// `regions`, every hub at `rate`/`burst`.
async fn org_emulator(per_hub: u64, regions: &[&str], rate: f64, faults: Faults) -> Emulator {
    start_emulator(EmulatorConfig {
        rate,
        burst: rate as u32,
        faults,
        members: vec![MEMBER_A.into(), MEMBER_B.into()],
        regions: regions.iter().map(|r| r.to_string()).collect(),
        ..EmulatorConfig::generated(per_hub, 9)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_role_ends_the_job_partial_and_a_rerun_finishes_only_that_account() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let faults = Faults {
        missing_roles: vec![MEMBER_B.into()],
        ..Faults::default()
    };
    let emulator = org_emulator(300, &REGIONS, 20.0, faults).await;
    let accounts = format!("{EMULATOR_ACCOUNT},{MEMBER_A},{MEMBER_B}");
    let export = || {
        let mut flags = stream_flags(&accounts, "eu-west-1,us-east-1");
        flags.extend(["--part-rows", "100"]);
        tokio::process::Command::from(export_command(&emulator.url(), &lake, "org", &flags))
    };
    let partial = finish(export()).await;
    partial.fails(
        8,
        &[
            "partial: job org: 4 of 6 streams complete (1200 findings), 2 failed",
            "222222222222/eu-west-1, 222222222222/us-east-1: cannot assume arn:aws:iam::222222222222:role/SecurityHubExportRole (403 AccessDenied",
            "re-run the same command",
        ],
    );
    let shown = status_of(&emulator.url(), lake.to_str().unwrap(), "org");
    assert!(shown.contains("streams:      6 (4 complete)"), "{shown}");
    assert!(
        shown.contains("222222222222/us-east-1      not started")
            && shown.contains("last error (SechubExport.AccessDenied)"),
        "{shown}"
    );

    // The role appears: the re-run reads only the two streams of that account (3 pages each,
    // and one call each to check nothing changed while it read).
    emulator.set_faults(Faults::default());
    let requests = emulator.stats().requests;
    let done = finish(export()).await.ok();
    assert!(
        done.contains("complete: job org: 6 streams; this run 600 findings"),
        "{done}"
    );
    assert_eq!(
        emulator.stats().requests - requests,
        8,
        "only the unfinished streams are read"
    );
    let accounts = [EMULATOR_ACCOUNT, MEMBER_A, MEMBER_B];
    let expected = org_expected(dir.path(), &accounts, &REGIONS, 300);
    assert_exactly_once(&check_lake(&lake, &expected, true), 1800);
    assert_eq!(sources(&lake).1, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkills_during_a_sixteen_stream_job_lose_and_duplicate_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let regions = ["eu-west-1", "us-east-1", "us-west-2", "ap-southeast-2"];
    let emulator = org_emulator(1000, &regions, 5.0, Faults::default()).await;
    let accounts = ["333333333333", EMULATOR_ACCOUNT, MEMBER_A, MEMBER_B];
    // 333333333333 is unknown to the emulator: its streams fail until the end; the rest survive kills.
    let account_list = accounts.join(",");
    let region_list = regions.join(",");
    let export = || {
        let mut flags = stream_flags(&account_list, &region_list);
        flags.extend(["--part-rows", "100", "--max-streams", "4"]);
        tokio::process::Command::from(export_command(&emulator.url(), &lake, "big", &flags))
    };
    let mut kills = 0;
    for delay_ms in [900, 1300, 700] {
        let mut child = export()
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        if child.try_wait().unwrap().is_none() {
            child.kill().await.unwrap();
            kills += 1;
        }
        let _ = child.wait().await;
    }
    assert!(kills >= 2, "the job outlived most kills ({kills})");
    let last = finish(export()).await;
    last.fails(
        8,
        &[
            "12 of 16 streams complete (12000 findings), 4 failed",
            "333333333333/us-west-2",
        ],
    );
    let expected = org_expected(dir.path(), &accounts[1..], &regions, 1000);
    assert_exactly_once(&check_lake(&lake, &expected, false), 12000);
    assert_eq!(sources(&lake).1, 0);
    let mut verify = command(Some(&emulator.url()));
    verify.args([
        "verify",
        "--destination",
        lake.to_str().unwrap(),
        "--job-id",
        "big",
        "--deep",
    ]);
    let out = run(verify);
    out.fails(7, &["stream 333333333333/ap-southeast-2 has not started"]);
    println!(
        "streams: 16-stream job survived {kills} SIGKILLs: 12000 findings, lost 0, duplicated 0"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn organization_and_all_regions_resolve_to_the_members_and_the_enabled_regions() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let emulator = org_emulator(150, &REGIONS, 20.0, Faults::default()).await;
    let flags = stream_flags("organization", "all");
    let done = finish(tokio::process::Command::from(export_command(
        &emulator.url(),
        &lake,
        "everything",
        &flags,
    )))
    .await
    .ok();
    assert!(
        done.contains("complete: job everything: 6 streams"),
        "{done}"
    );
    let accounts = [EMULATOR_ACCOUNT, MEMBER_A, MEMBER_B];
    let expected = org_expected(dir.path(), &accounts, &REGIONS, 150);
    assert_exactly_once(&check_lake(&lake, &expected, false), 900);
    let shown = status_of(&emulator.url(), lake.to_str().unwrap(), "everything");
    assert!(
        shown.contains("accounts organization / Regions all"),
        "{shown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aggregation_home_region_is_not_exported_twice() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    // Both accounts aggregate eu-west-1 and ap-southeast-2 into us-east-1; the job reads
    // us-east-1 and eu-west-1 only.
    let hub_regions = ["us-east-1", "eu-west-1", "ap-southeast-2"];
    let emulator = start_emulator(EmulatorConfig {
        rate: 20.0,
        burst: 20,
        members: vec![MEMBER_A.into()],
        regions: hub_regions.iter().map(|r| r.to_string()).collect(),
        aggregation_home: Some("us-east-1".into()),
        ..EmulatorConfig::generated(200, 9)
    })
    .await;
    let accounts = format!("{EMULATOR_ACCOUNT},{MEMBER_A}");
    let flags = stream_flags(&accounts, "us-east-1,eu-west-1");
    let cmd = export_command(&emulator.url(), &lake, "aggregated", &flags);
    let done = finish(tokio::process::Command::from(cmd)).await.ok();
    // Each account: its own 200 in us-east-1 and in eu-west-1, and ap-southeast-2's 200
    // through the home Region (not in the job); eu-west-1's copies in us-east-1 left out.
    assert!(done.contains("job total 1200 findings"), "{done}");
    let expected = org_expected(dir.path(), &[EMULATOR_ACCOUNT, MEMBER_A], &hub_regions, 200);
    assert_exactly_once(&check_lake(&lake, &expected, true), 1200);
    let (by_source, through_home) = sources(&lake);
    assert_eq!(
        by_source[&format!("{MEMBER_A}/us-east-1")],
        400,
        "{by_source}"
    );
    assert_eq!(
        through_home, 400,
        "ap-southeast-2's findings came through us-east-1"
    );
    let shown = status_of(&emulator.url(), lake.to_str().unwrap(), "aggregated");
    // One chain or a meeting pair: the probe times a first call on a new connection, which a
    // loaded machine can make look slow; either reads every finding once (checked above).
    let home = shown
        .lines()
        .find(|line| line.trim_start().starts_with("111111111111/us-east-1"))
        .unwrap_or_default();
    assert!(
        shown.contains("aggregation:  111111111111: aggregates into us-east-1 (ALL_REGIONS)")
            && home.contains("complete            400 findings      1 parts")
            && home.ends_with("leaves out eu-west-1"),
        "{shown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relative_window_over_many_streams_done_on_an_earlier_day_is_refused_intact() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let emulator = org_emulator(100, &REGIONS, 20.0, Faults::default()).await;
    let accounts = format!("{EMULATOR_ACCOUNT},{MEMBER_A}");
    let last_year = r#"{"UpdatedAt":[{"DateRange":{"Value":365,"Unit":"DAYS"}}]}"#;
    let export = || {
        let mut flags = stream_flags(&accounts, "eu-west-1,us-east-1");
        flags.extend(["--filters", last_year]);
        tokio::process::Command::from(export_command(&emulator.url(), &lake, "yearly", &flags))
    };
    assert!(finish(export())
        .await
        .ok()
        .contains("complete: job yearly: 4 streams"));
    assert!(finish(export())
        .await
        .ok()
        .contains("complete: job yearly: 4 streams; this run 0 findings"));
    // Every stream was frozen yesterday, as a scheduled run of yesterday would have left them.
    let yesterday = (chrono::Utc::now() - chrono::Duration::days(1)).to_rfc3339();
    for entry in std::fs::read_dir(lake.join("_sechub_export/jobs"))
        .unwrap()
        .flatten()
    {
        let path = entry.path().join("checkpoint.json");
        if let Ok(bytes) = std::fs::read(&path) {
            let mut checkpoint: Value = serde_json::from_slice(&bytes).unwrap();
            checkpoint["request"]["frozen_at"] = yesterday.clone().into();
            std::fs::write(&path, serde_json::to_vec(&checkpoint).unwrap()).unwrap();
        }
    }
    let before = tree(&lake);
    finish(export()).await.fails(
        9,
        &[
            "job yearly: complete since",
            "exports nothing new",
            "--job-id yearly-",
        ],
    );
    assert_eq!(tree(&lake), before, "nothing written");
}
