//! `verify --source` against the emulator's own counts (custom insights, and
//! GetFindingStatisticsV2), answered by its own filter code: a complete lake reconciles with
//! zero difference; deleted, updated and hand-removed findings are each told apart; the
//! temporary insight never outlives the count; a role without the count's actions gets one
//! line; an export records its expected total and plans small streams by it.

mod common;

use std::time::Duration;

use common::*;
use sechub_export::emulator::changes::Change;
use sechub_export::emulator::{Emulator, EmulatorConfig, Faults, EMULATOR_ACCOUNT};
use serde_json::Value;

const MEMBER_A: &str = "111111111111";
const MEMBER_B: &str = "222222222222";
const FAST: [&str; 4] = ["--rate", "50", "--burst", "50"];

async fn service(findings: u64, seed: u64) -> Emulator {
    start_emulator(EmulatorConfig {
        rate: 50.0,
        burst: 50,
        ..EmulatorConfig::generated(findings, seed)
    })
    .await
}

/// `verify --source` of `job` in `lake`, with `extra` flags.
fn verify_command(
    emulator: &Emulator,
    lake: &std::path::Path,
    job: &str,
    extra: &[&str],
) -> std::process::Command {
    let mut cmd = command(Some(&emulator.url()));
    cmd.args([
        "verify",
        "--destination",
        lake.to_str().unwrap(),
        "--job-id",
        job,
    ])
    .args(["--progress-parameter", "none", "--source"])
    .args(extra);
    cmd
}

fn verify(emulator: &Emulator, lake: &std::path::Path, job: &str, extra: &[&str]) -> Run {
    run(verify_command(emulator, lake, job, extra))
}

fn checkpoint(lake: &std::path::Path, job: &str) -> Value {
    let text = std::fs::read_to_string(state_file(lake, job, "checkpoint.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// v1 and v2, one stream and an organization of several accounts and Regions: every count
/// agrees with the lake, and no temporary insight is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_complete_export_reconciles_with_zero_difference() {
    let single = service(1_500, 31).await;
    for api in ["v1", "v2"] {
        let dir = tempfile::tempdir().unwrap();
        let lake = dir.path().join("lake");
        let flags = [&FAST[..], &["--api", api, "--total", "insight"]].concat();
        let done = finish(export_command(&single.url(), &lake, "one", &flags))
            .await
            .ok();
        assert!(done.contains("job total 1500 findings"), "{api}: {done}");
        assert_eq!(checkpoint(&lake, "one")["expected_count"], 1500, "{api}");
        let out = verify(&single, &lake, "one", &[]).ok();
        assert!(
            out.contains("Security Hub counts 1500 findings")
                && out.contains("0 missing, 0 updated after the freeze, 0 deleted since"),
            "{api}: {out}"
        );
        assert_eq!(single.insight_count(), 0, "{api}: no insight left");
    }
    let org = start_emulator(EmulatorConfig {
        rate: 50.0,
        burst: 50,
        members: vec![MEMBER_A.into(), MEMBER_B.into()],
        regions: vec!["eu-west-1".into(), "us-east-1".into()],
        ..EmulatorConfig::generated(300, 9)
    })
    .await;
    let listed = format!("{EMULATOR_ACCOUNT},{MEMBER_A},{MEMBER_B}");
    for (api, regions) in [
        ("v1", ["--regions", "eu-west-1,us-east-1"]),
        ("v2", ["--region", "eu-west-1"]),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let lake = dir.path().join("lake");
        let role = ["--role-name", "SecurityHubExportRole"];
        let flags = [
            &FAST[..],
            &["--api", api, "--accounts", &listed, "--total", "insight"],
            &regions,
            &role,
        ]
        .concat();
        finish(export_command(&org.url(), &lake, "org", &flags))
            .await
            .ok();
        let streams = if api == "v1" { 6 } else { 3 };
        let out = verify(&org, &lake, "org", &role).ok();
        let total = 300 * streams;
        assert!(
            out.contains(&format!("Security Hub counts {total} findings for the job's frozen requests, the lake holds {total} distinct: 0 missing")),
            "{api}: {out}"
        );
        assert_eq!(
            out.matches("stream ").count(),
            streams,
            "{api}: a line per stream: {out}"
        );
        assert_eq!(org.insight_count(), 0, "{api}");
    }
}

/// Findings deleted from the service and findings updated after the freeze make the lake hold
/// more, each counted apart and not an error; findings removed from the lake by hand are
/// missing (exit 7), and --list-missing names exactly them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_updated_and_removed_findings_are_each_told_apart() {
    let emulator = service(1_000, 32).await;
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let flags = [&FAST[..], &["--part-rows", "100"]].concat();
    finish(export_command(&emulator.url(), &lake, "told", &flags))
        .await
        .ok();
    // The findings about to change, which a removed part may also hold: the service no longer
    // has them in the frozen window, so they are not missing.
    let before = emulator.findings();
    let changed: Vec<String> = (0..5)
        .chain(100..107)
        .map(|i| {
            let finding: Value = serde_json::from_str(&before[i]).unwrap();
            format!(
                "{} {}",
                finding["Id"].as_str().unwrap(),
                finding["ProductArn"].as_str().unwrap()
            )
        })
        .collect();
    emulator.change(&Change::Delete((0..5).collect()));
    let out = verify(&emulator, &lake, "told", &[]).ok();
    assert!(
        out.contains("0 missing, 0 updated after the freeze, 5 deleted since"),
        "{out}"
    );
    emulator.change(&Change::Update((100..107).collect()));
    let out = verify(&emulator, &lake, "told", &[]).ok();
    assert!(
        out.contains("0 missing, 7 updated after the freeze, 5 deleted since"),
        "{out}"
    );
    assert!(out.contains("not an error"), "{out}");
    // Three parts gone by hand: findings the service still has.
    let parts = part_paths(&lake);
    let mut removed: Vec<String> = Vec::new();
    for part in &parts[5..8] {
        let ids = lake_tool(&["part-ids", part.to_str().unwrap()]);
        removed.extend(
            ids.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string()),
        );
        std::fs::remove_file(part).unwrap();
    }
    let counted = verify(&emulator, &lake, "told", &[]);
    counted.fails(
        7,
        &["are in Security Hub but not in the lake", "missing part"],
    );
    let listed = verify(&emulator, &lake, "told", &["--list-missing"]);
    assert_eq!(listed.code(), 7, "{}", listed.stderr());
    let mut named: Vec<String> = listed
        .stdout()
        .lines()
        .filter_map(|line| line.strip_prefix("missing: "))
        .map(|rest| rest.split(" (account").next().unwrap().to_string())
        .collect();
    named.sort();
    removed.sort();
    // What the lake still holds of the changed findings (a removed part may have held some).
    let kept = |ids: &[String]| ids.iter().filter(|id| !removed.contains(id)).count() as u64;
    let (deleted_kept, updated_kept) = (kept(&changed[..5]), kept(&changed[5..]));
    removed.retain(|id| !changed.contains(id));
    assert!(removed.len() >= 300, "three parts of 100 findings or more");
    let only_named: Vec<_> = named.iter().filter(|n| !removed.contains(n)).collect();
    let only_removed: Vec<_> = removed.iter().filter(|n| !named.contains(n)).collect();
    assert!(
        only_named.is_empty() && only_removed.is_empty(),
        "named but not removed: {only_named:?}; removed but not named: {only_removed:?}"
    );
    // Identities tell the lake's extra findings apart exactly, account by account.
    let (mut updated, mut gone) = (0, 0);
    for line in listed.stdout().lines() {
        let Some((_, rest)) = line.split_once(": ") else {
            continue;
        };
        let marker = " findings of the lake were updated after the freeze, ";
        let Some((u, rest)) = rest.split_once(marker) else {
            continue;
        };
        updated += u.parse::<u64>().unwrap();
        gone += rest.split(' ').next().unwrap().parse::<u64>().unwrap();
    }
    assert_eq!(
        (updated, gone),
        (updated_kept, deleted_kept),
        "{}",
        listed.stdout()
    );
}

/// The lake's part files, in order.
fn part_paths(lake: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut parts: Vec<_> = walk(&lake.join("findings"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    parts.sort();
    parts
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        match path.is_dir() {
            true => found.extend(walk(&path)),
            false => found.push(path),
        }
    }
    found
}

/// The temporary insight is deleted after success, after GetInsightResults fails, and after
/// SIGINT; one left by a killed run is removed by the next `verify --source`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_temporary_insight_never_outlives_its_count() {
    let emulator = service(500, 33).await;
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    finish(export_command(&emulator.url(), &lake, "ins", &FAST))
        .await
        .ok();
    verify(&emulator, &lake, "ins", &[]).ok();
    assert_eq!(emulator.insight_count(), 0, "after success");
    emulator.set_faults(Faults {
        denied_actions: vec!["securityhub:GetInsightResults".into()],
        ..Faults::default()
    });
    verify(&emulator, &lake, "ins", &[]).fails(3, &["securityhub:GetInsightResults"]);
    assert_eq!(
        emulator.insight_count(),
        0,
        "after an error from GetInsightResults"
    );
    // Slow answers, so a signal lands while the insight exists.
    emulator.set_faults(Faults {
        latency_ms: 3_000,
        ..Faults::default()
    });
    for (signal, code) in [("-INT", 130), ("-KILL", -1)] {
        let mut cmd = verify_command(&emulator, &lake, "ins", &[]);
        cmd.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let child = cmd.spawn().unwrap();
        let waited = tokio::time::Instant::now();
        while emulator.insight_count() == 0 {
            assert!(
                waited.elapsed() < Duration::from_secs(30),
                "no insight was created"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let kill = std::process::Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code().unwrap_or(-1),
            code,
            "{signal}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let left = if signal == "-INT" { 0 } else { 1 };
        assert_eq!(emulator.insight_count(), left, "{signal}");
    }
    emulator.set_faults(Faults::default());
    let out = verify(&emulator, &lake, "ins", &[]).ok();
    assert!(out.contains("0 missing"), "{out}");
    assert_eq!(
        emulator.insight_count(),
        0,
        "the killed run's insight is removed"
    );
}

/// A role without securityhub:CreateInsight (v1) or securityhub:GetAdhocInsightResults (v2):
/// `verify --source` exits 3 with one line naming the action; `export` runs without a total
/// and says so once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_without_the_count_actions_is_told_which_and_export_runs_without_a_total() {
    let emulator = service(400, 34).await;
    emulator.set_faults(Faults {
        denied_actions: vec![
            "securityhub:CreateInsight".into(),
            "securityhub:GetAdhocInsightResults".into(),
        ],
        ..Faults::default()
    });
    for (api, action) in [
        ("v1", "securityhub:CreateInsight"),
        ("v2", "securityhub:GetAdhocInsightResults"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let lake = dir.path().join("lake");
        let flags = [&FAST[..], &["--api", api, "--total", "insight"]].concat();
        let out = finish(export_command(&emulator.url(), &lake, "deny", &flags)).await;
        out.ok();
        assert_eq!(
            out.stderr().matches("no expected total").count(),
            1,
            "{api}: {}",
            out.stderr()
        );
        assert!(out.stderr().contains(action), "{api}: {}", out.stderr());
        assert!(
            checkpoint(&lake, "deny").get("expected_count").is_none(),
            "{api}"
        );
        verify(&emulator, &lake, "deny", &[]).fails(3, &[action]);
    }
}

/// With its total counted, a small stream on a slow service is read as one chain with no
/// probe (its three pages and nothing more), and `status` shows done of total.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_counted_small_stream_is_one_chain_without_a_probe() {
    let emulator = start_emulator(EmulatorConfig {
        rate: 20.0,
        burst: 20,
        faults: Faults {
            latency_ms: 80,
            ..Faults::default()
        },
        ..EmulatorConfig::generated(300, 35)
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let flags = ["--rate", "20", "--burst", "20", "--total", "insight"];
    finish(export_command(&emulator.url(), &lake, "small", &flags))
        .await
        .ok();
    let cp = checkpoint(&lake, "small");
    assert_eq!(cp["expected_count"], 300);
    assert!(cp.get("shards").is_none(), "one chain: {cp}");
    // Three data pages and the settle check's one; no probe, no shard's first page.
    assert_eq!(emulator.stats().pages, 4);
    let uncounted = dir.path().join("uncounted");
    let flags = ["--rate", "20", "--burst", "20", "--total", "off"];
    finish(export_command(&emulator.url(), &uncounted, "small", &flags))
        .await
        .ok();
    assert!(
        checkpoint(&uncounted, "small").get("shards").is_some(),
        "uncounted, the slow stream is sharded"
    );
    let pages = emulator.stats().pages - 4;
    assert!(pages > 4, "and reads more pages: {pages}");
    let status = status_of(&emulator.url(), lake.to_str().unwrap(), "small");
    assert!(status.contains("300/300 findings (100.0%)"), "{status}");
}
