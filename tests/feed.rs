//! The continuous feed end to end: a snapshot, then incremental windows from the watermark, a
//! run killed mid-way resumed first by the next, two runs started at once, and moto (which
//! ignores filters) read back through the latest view.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::*;
use serde_json::Value;

use common::generated_emulator as emulator;

/// `feed` of family `fam` to a folder, everything on `endpoint`.
fn feed_cmd(endpoint: &str, lake: &Path, extra: &[&str]) -> tokio::process::Command {
    let mut cmd = command(Some(endpoint));
    cmd.args([
        "feed",
        "--destination",
        lake.to_str().unwrap(),
        "--family",
        "fam",
        "-q",
    ])
    .args(extra);
    tokio::process::Command::from(cmd)
}

fn family_status(endpoint: &str, lake: &Path) -> String {
    let mut cmd = command(Some(endpoint));
    cmd.args([
        "status",
        "--destination",
        lake.to_str().unwrap(),
        "--family",
        "fam",
    ]);
    run(cmd).ok()
}

fn feed_state(lake: &Path) -> Value {
    let path = lake.join("_sechub_export/feeds/fam/state.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The checkpoint of the family's first run, once it exists.
async fn first_run_checkpoint(lake: &Path) -> PathBuf {
    loop {
        let jobs = lake.join("_sechub_export/jobs");
        if let Ok(entries) = std::fs::read_dir(&jobs) {
            for entry in entries.flatten() {
                let checkpoint = entry.path().join("checkpoint.json");
                if checkpoint.exists() {
                    return checkpoint;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A feed run in the background, its output kept.
fn spawn_feed(endpoint: &str, lake: &Path, extra: &[&str]) -> tokio::process::Child {
    feed_cmd(endpoint, lake, extra)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_then_an_incremental_window_from_the_watermark_and_status_shows_them() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let emulator = emulator(600, 31, 50.0, 20).await;
    let args = ["--rate", "50", "--burst", "20"];
    let first = finish(feed_cmd(&emulator.url(), &lake, &args)).await.ok();
    assert!(
        first.contains("feed fam: snapshot run feed-fam-"),
        "{first}"
    );
    assert!(first.contains("job total 600 findings"), "{first}");
    let state = feed_state(&lake);
    let watermark = state["watermark"].as_str().unwrap().to_string();
    assert_eq!(state["last_snapshot"], state["watermark"]);
    assert_eq!(state["current"], Value::Null);

    let second = finish(feed_cmd(&emulator.url(), &lake, &args)).await.ok();
    assert!(
        second.contains("feed fam: incremental run feed-fam-"),
        "{second}"
    );
    let state = feed_state(&lake);
    let runs = state["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    let window_start: chrono::DateTime<chrono::Utc> =
        runs[1]["window_start"].as_str().unwrap().parse().unwrap();
    let previous_end: chrono::DateTime<chrono::Utc> = watermark.parse().unwrap();
    assert_eq!(
        previous_end - window_start,
        chrono::Duration::days(1),
        "the default overlap"
    );
    assert_eq!(runs[1]["rows"], 0, "nothing was updated since the snapshot");
    // The window reached the service: the incremental job's frozen request holds it.
    let job = runs[1]["job_id"].as_str().unwrap();
    let checkpoint: Value =
        serde_json::from_slice(&std::fs::read(state_file(&lake, job, "checkpoint.json")).unwrap())
            .unwrap();
    let time = |value: &Value| {
        value
            .as_str()
            .unwrap()
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap()
    };
    let window = &checkpoint["request"]["filters"]["UpdatedAt"][0];
    assert_eq!(time(&window["End"]), time(&runs[1]["window_end"]));
    assert_eq!(time(&window["Start"]), window_start);

    let status = family_status(&emulator.url(), &lake);
    for needle in [
        "feed:          fam",
        "runs:          2 complete, 600 findings",
        "in progress:   none",
        "snapshot",
        "incremental",
    ] {
        assert!(status.contains(needle), "{needle}: {status}");
    }
    let report = check_lake(&lake, &expected(dir.path(), 600, 31), false);
    assert_exactly_once(&report, 600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_mid_way_is_resumed_first_and_the_watermark_never_skips() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let emulator = emulator(1_200, 32, 6.0, 1).await;
    let args = ["--rate", "6", "--burst", "1", "--part-rows", "100"];
    let mut child = spawn_feed(&emulator.url(), &lake, &args);
    let checkpoint = first_run_checkpoint(&lake).await;
    let exported = |path: &Path| {
        std::fs::read(path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
            .and_then(|cp| cp["exported_count"].as_u64())
            .unwrap_or(0)
    };
    while exported(&checkpoint) < 200 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().await.unwrap(); // SIGKILL: no flush, no state update
    let killed = feed_state(&lake);
    assert_eq!(
        killed["watermark"],
        Value::Null,
        "an unfinished run moves nothing"
    );
    let run = killed["current"]["job_id"].as_str().unwrap().to_string();

    let next = finish(feed_cmd(&emulator.url(), &lake, &args)).await.ok();
    assert!(
        next.contains(&format!("feed fam: resumed snapshot run {run}")),
        "{next}"
    );
    assert!(
        next.contains("feed fam: incremental run"),
        "then a new window: {next}"
    );
    let state = feed_state(&lake);
    let runs = state["runs"].as_array().unwrap();
    assert_eq!(runs[0]["job_id"], run.as_str());
    assert_eq!(runs[0]["rows"], 1_200);
    let incremental_start = runs[1]["window_start"].as_str().unwrap();
    let snapshot_end: chrono::DateTime<chrono::Utc> =
        runs[0]["window_end"].as_str().unwrap().parse().unwrap();
    let start: chrono::DateTime<chrono::Utc> = incremental_start.parse().unwrap();
    assert!(
        start < snapshot_end,
        "the next window overlaps the resumed run's"
    );
    let report = check_lake(&lake, &expected(dir.path(), 1_200, 32), false);
    assert_exactly_once(&report, 1_200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_runs_started_at_once_one_exports_and_the_other_exits_busy() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let emulator = emulator(3_000, 33, 6.0, 1).await;
    let args = ["--rate", "6", "--burst", "1", "--part-rows", "100"];
    let (a, b) = (
        spawn_feed(&emulator.url(), &lake, &args),
        spawn_feed(&emulator.url(), &lake, &args),
    );
    let (a, b) = tokio::join!(a.wait_with_output(), b.wait_with_output());
    let mut runs = [Run { output: a.unwrap() }, Run { output: b.unwrap() }];
    runs.sort_by_key(Run::code);
    let [exported, busy] = runs;
    assert!(exported.ok().contains("job total 3000 findings"));
    busy.fails(5, &["fam", "another run"]);
    // One snapshot window holds every finding. (When the busy run's state read came first and
    // its lock attempt last, the exporting run resumed the other's window and went on to an
    // empty incremental one.)
    let state = feed_state(&lake);
    let runs = state["runs"].as_array().unwrap();
    assert_eq!(runs[0]["kind"], "snapshot");
    assert_eq!(runs[0]["rows"], 3_000);
    assert!(runs[1..].iter().all(|r| r["rows"] == 0), "{state}");
    let report = check_lake(&lake, &expected(dir.path(), 3_000, 33), false);
    assert_exactly_once(&report, 3_000);
}

#[test]
fn feed_flags_it_sets_itself_are_refused_before_any_call() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let cases: [(&[&str], &str); 4] = [
        (&["--job-id", "x"], "name the family with --family"),
        (
            &[
                "--filters",
                r#"{"UpdatedAt":[{"DateRange":{"Value":1,"Unit":"DAYS"}}]}"#,
            ],
            "feed sets UpdatedAt itself",
        ),
        (&["--family", "a.b"], "invalid --family"),
        (
            &["--snapshot-every", "0s"],
            "--snapshot-every must be positive",
        ),
    ];
    for (extra, needle) in cases {
        let mut cmd = command(Some("http://127.0.0.1:9"));
        cmd.args(["feed", "--destination", lake.to_str().unwrap()])
            .args(extra);
        run(cmd).fails(2, &[needle]);
    }
    assert!(!lake.exists(), "nothing written");
}

#[test]
fn against_moto_which_ignores_filters_the_latest_view_keeps_one_row_per_finding() {
    let dir = tempfile::tempdir().unwrap();
    let (moto, seeded) = seeded_moto(dir.path(), 300, 34);
    let lake = dir.path().join("lake");
    let seeded_text = std::fs::read_to_string(&seeded).unwrap();
    let mut findings: Vec<Value> = seeded_text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    for kind in ["snapshot", "incremental"] {
        let mut cmd = command(Some(&moto.url));
        cmd.args(["feed", "--destination", lake.to_str().unwrap()])
            .args(["--family", "fam", "-q"]);
        let out = run(cmd).ok();
        assert!(out.contains(&format!("feed fam: {kind} run")), "{out}");
        if kind == "snapshot" {
            // Between the runs one finding changes in the service (moto replaces it in place):
            // the latest view must show its new content, not just count rows.
            let changed = &mut findings[7];
            changed["Title"] = Value::from("Changed between the feed's runs");
            changed["UpdatedAt"] = Value::from(Utc::now().to_rfc3339());
            let file = dir.path().join("changed.ndjson");
            std::fs::write(&file, format!("{changed}\n")).unwrap();
            let imported = dir.path().join("changed.seeded.ndjson");
            let args = [
                "seed",
                &moto.url,
                file.to_str().unwrap(),
                imported.to_str().unwrap(),
            ];
            assert_eq!(lake_tool(&args)["failed"], 0);
        }
    }
    // The generated findings carry fixed dates: those updated more than 90 days before the
    // newest run's window end are past Security Hub's retention, gone from the latest view.
    let newest_run: DateTime<Utc> = feed_state(&lake)["watermark"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let retained: Vec<&Value> = findings
        .iter()
        .filter(|finding| {
            let updated: DateTime<Utc> = finding["UpdatedAt"].as_str().unwrap().parse().unwrap();
            updated >= newest_run - chrono::Duration::days(90)
        })
        .collect();
    let report = ddl_check(dir.path(), &lake, &serde_json::json!({}));
    assert_eq!(
        report["table_rows"], 600,
        "moto served everything to both runs: {report}"
    );
    assert_eq!(report["runs"], 2, "{report}");
    assert_eq!(report["archive_rows"], 300, "one row per finding: {report}");
    let latest = latest(dir.path(), &lake);
    assert_eq!(latest.len(), retained.len(), "{report}");
    for finding in retained {
        let id = finding["Id"].as_str().unwrap();
        let shown: Value = serde_json::from_str(&latest[id]).unwrap();
        assert_eq!(
            &shown, finding,
            "the latest row of {id} is its newest content"
        );
    }
}

/// The lake's `latest` view as (Id, finding JSON), read by DuckDB with the generated DDL.
fn latest(dir: &Path, lake: &Path) -> std::collections::BTreeMap<String, String> {
    let query =
        serde_json::json!({"latest": "select id, finding_json from securityhub.findings_latest"});
    let report = ddl_check(dir, lake, &query);
    report["results"]["latest"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row[0].as_str().unwrap().to_string(),
                row[1].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// An emulator whose findings were last updated 7 to 99 days ago (some past the 90 days
/// Security Hub keeps them), as a live hub's are.
async fn live_emulator(findings: u64, seed: u64) -> sechub_export::emulator::Emulator {
    use sechub_export::emulator::{generate::Generator, query::Dataset, EmulatorConfig};
    let generator = Generator {
        seed,
        base_time: Utc::now() - chrono::Duration::days(10),
        ..Generator::default()
    };
    start_emulator(EmulatorConfig {
        dataset: Dataset::Generated {
            generator,
            count: findings,
        },
        rate: 50.0,
        burst: 20,
        ..EmulatorConfig::generated(findings, seed)
    })
    .await
}

/// What the latest view must hold: `(Id, JSON)` of each finding the lake should show, given
/// the text each index should show (`None`: not shown), minus those 90 days older than the
/// family's watermark (past Security Hub's retention).
fn shown(lake: &Path, texts: &[Option<String>]) -> std::collections::BTreeMap<String, String> {
    let watermark: DateTime<Utc> = feed_state(lake)["watermark"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    texts
        .iter()
        .flatten()
        .filter_map(|text| {
            let finding: Value = serde_json::from_str(text).unwrap();
            let updated: DateTime<Utc> = finding["UpdatedAt"].as_str().unwrap().parse().unwrap();
            let id = finding["Id"].as_str().unwrap().to_string();
            (updated >= watermark - chrono::Duration::days(90)).then(|| (id, text.clone()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_runs_with_changes_between_and_during_them_leave_the_latest_view_equal_to_the_service()
{
    use sechub_export::emulator::changes::Change;
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let emulator = live_emulator(400, 35).await;
    let url = emulator.url();
    let as_shown = |texts: Vec<String>| -> Vec<Option<String>> {
        texts
            .into_iter()
            .map(|t| (!t.is_empty()).then_some(t))
            .collect()
    };

    // Run 1, a snapshot of 4 pages: after its second page, 5 findings of its first page are
    // updated and leave its window, and the offset cursor skips the 5 findings behind them.
    emulator.change_after_pages(2, Change::Update((0..5).collect()));
    let first = finish(feed_cmd(&url, &lake, &[])).await.ok();
    assert!(first.contains("read again as"), "{first}");
    let run = &feed_state(&lake)["runs"][0];
    let job = run["job_id"].as_str().unwrap();
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(state_file(&lake, job, "manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["settled"], false, "{manifest}");
    // 400 in its window when it began; 5 read before they left it, 5 unchanged ones skipped.
    assert_eq!(manifest["rows"], 395, "{manifest}");
    assert_eq!(
        (run["repairs"].clone(), run["settled"].clone()),
        (1.into(), true.into())
    );

    // Between runs: deleted, workflow-only, created; during run 2: updated after its page.
    let before = emulator.findings();
    emulator.change(&Change::Delete((10..15).collect()));
    emulator.change(&Change::Resolve((20..25).collect()));
    emulator.change(&Change::Add(7));
    emulator.change(&Change::Archive((30..33).collect()));
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let pages_so_far = emulator.stats().pages;
    emulator.change_after_pages(pages_so_far + 1, Change::Update((50..53).collect()));
    let during = emulator.findings();
    let second = finish(feed_cmd(&url, &lake, &[])).await.ok();
    assert!(second.contains("feed fam: incremental run"), "{second}");
    assert!(second.contains("read again as"), "{second}");
    let status = family_status(&url, &lake);
    assert!(status.contains("(read again 1 time(s)"), "{status}");
    let mut want = as_shown(during.clone());
    for index in (10..15).chain(20..25) {
        // Deleted: shown until a snapshot without it is judged. Workflow-only: kept UpdatedAt.
        want[index] = Some(before[index].clone());
    }
    assert_eq!(latest(dir.path(), &lake), shown(&lake, &want));

    // Run 3, a snapshot: reads the workflow-only and mid-run-2 changes; not judged yet (no
    // later run), so the deleted findings stay.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let snapshot = ["--snapshot-every", "1s"];
    let third = finish(feed_cmd(&url, &lake, &snapshot)).await.ok();
    assert!(third.contains("feed fam: snapshot run"), "{third}");
    let now = emulator.findings();
    let mut want = as_shown(now.clone());
    for index in 10..15 {
        want[index] = Some(before[index].clone());
    }
    assert_eq!(latest(dir.path(), &lake), shown(&lake, &want));

    // Run 4: the snapshot is judged, and the deleted findings leave the latest view.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let fourth = finish(feed_cmd(&url, &lake, &[])).await.ok();
    assert!(fourth.contains("feed fam: incremental run"), "{fourth}");
    let want = shown(&lake, &as_shown(emulator.findings()));
    let seen = latest(dir.path(), &lake);
    assert_eq!(seen, want);
    assert!(
        seen.len() > 300 && seen.len() < 402,
        "some past retention: {}",
        seen.len()
    );
    let report = ddl_check(dir.path(), &lake, &serde_json::json!({}));
    assert_eq!(
        report["archive_rows"], 407,
        "every finding ever exported: {report}"
    );
    assert_eq!(
        report["schema_mismatches"],
        serde_json::json!([]),
        "{report}"
    );
}
