//! Exports against services that keep the documented GetFindings contract but use the freedoms
//! it leaves: pages in the service's own order (or each page sorted on its own), a sort refused
//! or failed, short pages that still carry a NextToken, a service that stops sorting mid-read.
//! Each export ends with exactly the service's findings by (Id, ProductArn), or fails loudly.

mod common;

use std::time::Duration;

use common::org::*;
use common::*;
use sechub_export::emulator::{EmulatorConfig, Faults, SortMode, EMULATOR_ACCOUNT};
use serde_json::Value;

const FINDINGS: u64 = 3_000;

/// A service at 20 requests/s answering in a mean of 80 ms: one chain cannot keep up, so the
/// slow-stream readings (shards, and with --trust-id-order the meeting pair) run.
async fn slow_service(seed: u64, faults: Faults) -> sechub_export::emulator::Emulator {
    start_emulator(EmulatorConfig {
        rate: 20.0,
        burst: 20,
        faults: Faults {
            latency_ms: 80,
            ..faults
        },
        ..EmulatorConfig::generated(FINDINGS, seed)
    })
    .await
}

fn checkpoint(lake: &std::path::Path, job: &str) -> Value {
    let text = std::fs::read_to_string(state_file(lake, job, "checkpoint.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

const FLAGS: [&str; 6] = ["--rate", "20", "--burst", "20", "--part-rows", "500"];

/// A stream read by a trusted meeting pair (at most two chains), a part per page.
const TRUSTED_PAIR: [&str; 9] = [
    "--rate",
    "20",
    "--burst",
    "20",
    "--part-rows",
    "100",
    "--max-shards",
    "2",
    "--trust-id-order",
];

/// Every way the contract lets a service order its pages, with and without trusting the order:
/// each export exits 0 with every finding once. Before the order was checked, a service sorting
/// each page of its own order made a trusted two-ended reading stop with 100 of 3,000 findings,
/// and one failing sorted requests ended the job after its whole retry budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_order_the_contract_allows_lands_each_finding_once() {
    let modes = [
        (SortMode::Global, 0),
        (SortMode::Page, 0),
        (SortMode::Page, 37),
        (SortMode::Ignore, 0),
        (SortMode::Refuse, 0),
        (SortMode::Fail, 0),
    ];
    for (seed, (sort_mode, short_pages)) in (40u64..).zip(modes) {
        for trust in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let lake = dir.path().join("lake");
            let faults = Faults {
                sort_mode,
                short_pages,
                ..Faults::default()
            };
            let emulator = slow_service(seed, faults).await;
            let mut flags = FLAGS.to_vec();
            if trust {
                flags.push("--trust-id-order");
            }
            let case = format!("{sort_mode:?}, pages of {short_pages}, trust {trust}");
            let out = finish(export_command(&emulator.url(), &lake, "order", &flags)).await;
            let done = out.ok();
            assert!(
                done.contains(&format!("job total {FINDINGS} findings")),
                "{case}: {done}"
            );
            let expected = dir.path().join("expected.ndjson");
            generate(FINDINGS, seed, &expected);
            let report = check_lake(&lake, &expected, true);
            assert_exactly_once(&report, FINDINGS);
            if !trust {
                let cp = checkpoint(&lake, "order");
                let sorted = cp["shards"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|s| s.get("sort").is_some()))
                    || cp.get("sort").is_some();
                assert!(!sorted, "{case}: no sort asked without trust: {cp}");
            }
        }
    }
}

/// GetFindingsV2 through the same freedoms: pages of its own order sorted one by one, short
/// pages that still carry a NextToken, a slow service: every OCSF document once, byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_findings_v2_under_short_pages_in_the_services_own_order_lands_each_document_once() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let faults = Faults {
        sort_mode: SortMode::Page,
        short_pages: 37,
        ..Faults::default()
    };
    let emulator = slow_service(46, faults).await;
    let mut flags = FLAGS.to_vec();
    flags.extend(["--api", "v2"]);
    let done = finish(export_command(&emulator.url(), &lake, "v2", &flags))
        .await
        .ok();
    assert!(
        done.contains(&format!("job total {FINDINGS} findings")),
        "{done}"
    );
    let expected = dir.path().join("expected.ndjson");
    generate_for("v2", FINDINGS, 46, &expected);
    let report = lake_tool(&[
        "check-ocsf",
        lake.to_str().unwrap(),
        "--expect",
        expected.to_str().unwrap(),
    ]);
    assert_eq!(report["rows"], FINDINGS, "{report}");
    assert_eq!(report["distinct_ids"], FINDINGS, "{report}");
    assert_eq!(report["missing_count"], 0, "{report}");
    assert_eq!(report["byte_mismatches"], 0, "{report}");
}

/// A service that sorts globally while the pair starts, then sorts each page of its own order:
/// the first page that breaks a chain's order drops the pair's parts and the stream is read
/// again without relying on any order (one chain here), which lands every finding once and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pair_whose_service_stops_sorting_is_read_again_without_order_and_lands_each_finding_once(
) {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let emulator = slow_service(47, Faults::default()).await;
    let flags = TRUSTED_PAIR;
    let export = export_command(&emulator.url(), &lake, "broken", &flags);
    let child = tokio::spawn(finish(export));
    // Once the pair has read a few pages each, the service stops sorting across pages.
    while emulator.stats().pages < 8 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    emulator.set_faults(Faults {
        latency_ms: 80,
        sort_mode: SortMode::Page,
        ..Faults::default()
    });
    let out = child.await.unwrap();
    let done = out.ok();
    assert!(
        done.contains(&format!("job total {FINDINGS} findings")) && done.contains("fallback"),
        "{done}"
    );
    assert!(
        out.stderr().contains("broke the Id order"),
        "{}",
        out.stderr()
    );
    let cp = checkpoint(&lake, "broken");
    assert!(cp["order_fallback"].is_string(), "{cp}");
    assert!(cp["shards"].as_array().is_none_or(Vec::is_empty), "{cp}");
    let expected = dir.path().join("expected.ndjson");
    generate(FINDINGS, 47, &expected);
    assert_exactly_once(&check_lake(&lake, &expected, true), FINDINGS);
    let parts = std::fs::read_dir(lake.join("findings"))
        .unwrap()
        .flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap())
        .count();
    assert_eq!(
        parts as u64,
        FINDINGS / 100,
        "the pair's parts were replaced"
    );
    let shown = status_of(&emulator.url(), lake.to_str().unwrap(), "broken");
    assert!(
        shown.contains("without relying on the service's order"),
        "{shown}"
    );
}

const MEMBER_A: &str = "111111111111";
const MEMBER_B: &str = "222222222222";

/// An administrator sees its members' findings in each Region (the user guide's administrator
/// view, on in the emulator by default). A job over the administrator and its members, listed
/// or as `organization`, and through either API, reads each account's own findings once:
/// before each stream was restricted to its account, the administrator's stream read every
/// member's findings again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_and_its_members_land_each_finding_once() {
    const PER_HUB: u64 = 400;
    // A service using the contract's freedoms too: each page sorted in its own order, short
    // pages, calls slow enough for shards (and, trusted, the pair's probe).
    let emulator = start_emulator(EmulatorConfig {
        rate: 20.0,
        burst: 20,
        faults: Faults {
            sort_mode: SortMode::Page,
            short_pages: 50,
            latency_ms: 80,
            ..Faults::default()
        },
        members: vec![MEMBER_A.into(), MEMBER_B.into()],
        regions: vec!["eu-west-1".into()],
        ..EmulatorConfig::generated(PER_HUB, 9)
    })
    .await;
    let listed = format!("{EMULATOR_ACCOUNT},{MEMBER_A},{MEMBER_B}");
    let accounts = [EMULATOR_ACCOUNT, MEMBER_A, MEMBER_B];
    for (api, selection) in [
        ("v1", listed.as_str()),
        ("v1", "organization"),
        ("v2", listed.as_str()),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let lake = dir.path().join("lake");
        // A v2 job reads one Region: the one the client is in.
        let region_flag = if api == "v2" { "--region" } else { "--regions" };
        let flags = [
            "--api",
            api,
            "--accounts",
            selection,
            region_flag,
            "eu-west-1",
            "--role-name",
            "SecurityHubExportRole",
            "--rate",
            "20",
            "--burst",
            "20",
            "--trust-id-order",
        ];
        let case = format!("{api} {selection}");
        let out = finish(export_command(&emulator.url(), &lake, "org", &flags)).await;
        let total = PER_HUB * 3;
        let done = out.ok();
        assert!(
            done.contains(&format!("job total {total} findings")),
            "{case}: {done}"
        );
        if api == "v1" {
            let expected = org_expected(dir.path(), &accounts, &["eu-west-1"], PER_HUB);
            assert_exactly_once(&check_lake(&lake, &expected, true), total);
            assert_eq!(sources(&lake).1, 0, "{case}: rows name their own account");
        } else {
            let mut files = Vec::new();
            for account in accounts {
                let path = dir.path().join(format!("{account}.ocsf.ndjson"));
                hub_findings_ocsf(&path, 9, account, "eu-west-1", PER_HUB);
                files.push(path);
            }
            let expected = concat(&files, &dir.path().join("expected.ndjson"));
            let report = lake_tool(&[
                "check-ocsf",
                lake.to_str().unwrap(),
                "--expect",
                expected.to_str().unwrap(),
            ]);
            assert_eq!(report["rows"], total, "{case}: {report}");
            assert_eq!(report["distinct_ids"], total, "{case}: {report}");
            assert_eq!(report["duplicated_count"], 0, "{case}: {report}");
            assert_eq!(report["missing_count"], 0, "{case}: {report}");
            assert_eq!(report["byte_mismatches"], 0, "{case}: {report}");
        }
    }
}

/// Findings updated while a trusted pair reads, 300 of them around the middle of the Id order
/// where the two chains meet (more than the 200 a chain keeps of its partner): they leave the
/// frozen window, and the pair still meets, every unchanged finding once and nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn findings_leaving_the_window_where_a_pair_meets_neither_hide_the_meeting_nor_double() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let emulator = slow_service(48, Faults::default()).await;
    let expected = dir.path().join("expected.ndjson");
    generate(FINDINGS, 48, &expected);
    let text = std::fs::read_to_string(&expected).unwrap();
    let mut by_id: Vec<(String, u64)> = text
        .lines()
        .enumerate()
        .map(|(index, line)| {
            let finding: Value = serde_json::from_str(line).unwrap();
            (finding["Id"].as_str().unwrap().to_string(), index as u64)
        })
        .collect();
    by_id.sort();
    let middle: Vec<u64> = by_id[1_350..1_650].iter().map(|(_, i)| *i).collect();
    emulator.change_after_pages(
        8,
        sechub_export::emulator::changes::Change::Update(middle.clone()),
    );
    let flags = TRUSTED_PAIR;
    // Findings changed while it read: every page read, but not proven exact, so exit 10.
    let out = finish(export_command(&emulator.url(), &lake, "leave", &flags)).await;
    assert!(
        out.stdout().contains("complete: job leave"),
        "{}",
        out.stdout()
    );
    out.fails(10, &["job leave", "not proven exact", "new --job-id"]);
    let unchanged: String = text
        .lines()
        .enumerate()
        .filter(|(index, _)| !middle.contains(&(*index as u64)))
        .map(|(_, line)| format!("{line}\n"))
        .collect();
    let unchanged_file = dir.path().join("unchanged.ndjson");
    std::fs::write(&unchanged_file, unchanged).unwrap();
    let report = check_lake(&lake, &unchanged_file, false);
    assert_eq!(report["duplicated_count"], 0, "{report}");
    assert_eq!(
        report["missing_count"], 0,
        "every unchanged finding: {report}"
    );
    let rows = report["rows"].as_u64().unwrap();
    assert!(
        (FINDINGS - 300..=FINDINGS).contains(&rows),
        "the changed ones at most once each: {report}"
    );
}
