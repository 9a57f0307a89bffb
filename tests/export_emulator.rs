//! End-to-end exports against the project's emulator: quota, faults, kills, dead cursors,
//! concurrent runs, Ctrl-C and filters; every lake read back with DuckDB and pyarrow.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use sechub_export::emulator::{generate::Generator, Emulator, Faults};

use common::generated_emulator as emulator;

fn export_cmd(
    emulator: &Emulator,
    lake: &Path,
    job: &str,
    extra: &[&str],
) -> tokio::process::Command {
    tokio::process::Command::from(export_command(&emulator.url(), lake, job, extra))
}

/// Starts an export in the background and returns once it has created its checkpoint (the job
/// is running); `lake` and `job` locate the checkpoint.
async fn start_running(
    mut cmd: tokio::process::Command,
    lake: &Path,
    job: &str,
) -> tokio::process::Child {
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let checkpoint = state_file(lake, job, "checkpoint.json");
    while !checkpoint.exists() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_and_a_tight_quota_still_export_every_finding_once_within_the_quota() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let emulator = emulator(3_000, 11, 10.0, 5).await;
    emulator.set_faults(Faults {
        throttle_probability: 0.1,
        error_probability: 0.05,
        drop_probability: 0.05,
        latency_ms: 30,
        ..Faults::default()
    });
    let args = ["--rate", "10", "--burst", "5", "--part-rows", "500"];
    let out = finish(export_cmd(&emulator, &lake, "faults", &args))
        .await
        .ok();
    assert!(out.contains("complete: job faults"), "{out}");

    let stats = emulator.stats();
    assert!(
        stats.throttled_injected > 0 && stats.internal_errors > 0 && stats.dropped > 0,
        "faults fired: {stats:?}"
    );
    assert!(
        stats.peak_demand <= 5.0 + 0.05,
        "the client stayed within rate 10 burst 5: {stats:?}"
    );
    assert_eq!(stats.throttled_quota, 0, "{stats:?}");
    let report = check_lake(&lake, &expected(dir.path(), 3_000, 11), false);
    assert_exactly_once(&report, 3_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_killed_again_and_again_resumes_and_exports_each_finding_once() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let emulator = emulator(4_000, 12, 8.0, 4).await;
    let args = ["--rate", "8", "--burst", "4", "--part-rows", "100"];
    let delays = [700, 450, 900, 600, 1100, 500];
    let make = || export_cmd(&emulator, &lake, "kills", &args);
    let kills = kill_repeatedly(make, &delays, &lake, "kills").await;
    kills.assert_progress(3);
    let out = finish(export_cmd(&emulator, &lake, "kills", &args))
        .await
        .ok();
    assert!(out.contains("complete: job kills"), "{out}");
    assert_no_stray_parts(&lake, "kills");
    let report = check_lake(&lake, &expected(dir.path(), 4_000, 12), false);
    assert_exactly_once(&report, 4_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_cursor_stops_with_advice_and_restart_recovers_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let emulator = emulator(2_000, 13, 10.0, 2).await;
    let args = ["--rate", "10", "--burst", "2", "--part-rows", "100"];
    let first = finish(export_cmd(
        &emulator,
        &lake,
        "cursor",
        &[
            &args[..],
            &["--max-duration", "800ms", "--exit-zero-when-stopped"],
        ]
        .concat(),
    ))
    .await
    .ok();
    assert!(first.contains("resumable"), "{first}");
    let checkpoint = state_file(&lake, "cursor", "checkpoint.json");
    let before = std::fs::read(&checkpoint).unwrap();

    emulator.set_faults(Faults {
        invalid_token_after_pages: Some(0),
        ..Faults::default()
    });
    let dead = finish(export_cmd(&emulator, &lake, "cursor", &args)).await;
    dead.fails(6, &["NextToken was rejected", "--restart"]);
    assert_same_progress(&before, &std::fs::read(&checkpoint).unwrap());

    let restarted = finish(export_cmd(
        &emulator,
        &lake,
        "cursor",
        &[&args[..], &["--restart"]].concat(),
    ))
    .await
    .ok();
    assert!(restarted.contains("complete: job cursor"), "{restarted}");
    let report = check_lake(&lake, &expected(dir.path(), 2_000, 13), false);
    assert_exactly_once(&report, 2_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_of_a_running_job_is_refused_while_the_first_completes() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let emulator = emulator(1_500, 14, 6.0, 1).await;
    let args = ["--rate", "6", "--burst", "1", "--part-rows", "100"];
    let first = start_running(export_cmd(&emulator, &lake, "twice", &args), &lake, "twice").await;
    let second = finish(export_cmd(&emulator, &lake, "twice", &args)).await;
    second.fails(5, &["another run is exporting this job"]);
    let first = Run {
        output: first.wait_with_output().await.unwrap(),
    };
    assert!(first.ok().contains("complete: job twice"));
    let report = check_lake(&lake, &expected(dir.path(), 1_500, 14), false);
    assert_exactly_once(&report, 1_500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_reach_the_service_and_only_matching_findings_are_exported() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let emulator = emulator(2_000, 15, 50.0, 20).await;
    let generator = Generator {
        seed: 15,
        ..Generator::default()
    };
    let wanted: Vec<String> = (0..2_000)
        .map(|i| generator.finding_value(i))
        .filter(|f| {
            f["RecordState"] == "ACTIVE"
                && (f["Severity"]["Label"] == "HIGH" || f["Severity"]["Label"] == "CRITICAL")
        })
        .map(|f| f.to_string())
        .collect();
    let expect = dir.path().join("wanted.ndjson");
    std::fs::write(&expect, wanted.join("\n")).unwrap();
    let filters = r#"{"RecordState":[{"Value":"ACTIVE","Comparison":"EQUALS"}],
        "SeverityLabel":[{"Value":"HIGH","Comparison":"EQUALS"},{"Value":"CRITICAL","Comparison":"EQUALS"}]}"#;
    let args = ["--rate", "50", "--burst", "20", "--filters", filters];
    finish(export_cmd(&emulator, &lake, "filtered", &args))
        .await
        .ok();
    let report = check_lake(&lake, &expect, false);
    assert!(
        wanted.len() > 100 && wanted.len() < 1_000,
        "{}",
        wanted.len()
    );
    assert_exactly_once(&report, wanted.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relative_window_exported_on_an_earlier_day_is_refused_with_advice_and_left_intact() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let emulator = emulator(300, 16, 50.0, 20).await;
    let last_year = r#"{"UpdatedAt":[{"DateRange":{"Value":365,"Unit":"DAYS"}}]}"#;
    let args = ["--rate", "50", "--burst", "20", "--filters", last_year];
    finish(export_cmd(&emulator, &lake, "daily", &args))
        .await
        .ok();
    let again = finish(export_cmd(&emulator, &lake, "daily", &args)).await;
    assert!(
        again.ok().contains("already complete: job daily"),
        "the same day"
    );

    // The job was frozen yesterday (as a scheduled run of yesterday would have left it).
    let path = state_file(&lake, "daily", "checkpoint.json");
    let mut checkpoint: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let yesterday = chrono::Utc::now() - chrono::Duration::days(1);
    checkpoint["request"]["frozen_at"] = yesterday.to_rfc3339().into();
    std::fs::write(&path, serde_json::to_vec(&checkpoint).unwrap()).unwrap();
    let before = tree(&lake);
    let later = finish(export_cmd(&emulator, &lake, "daily", &args)).await;
    let today = chrono::Utc::now().format("%Y%m%d").to_string();
    later.fails(
        9,
        &[
            "job daily: complete since",
            "exports nothing new",
            &format!("--job-id daily-{today}"),
        ],
    );
    assert_eq!(tree(&lake), before, "nothing written");
    let report = check_lake(&lake, &expected(dir.path(), 300, 16), false);
    assert_exactly_once(&report, 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_flushes_what_was_fetched_checkpoints_and_the_same_command_finishes() {
    stop_by_signal(libc::SIGINT, "sigint", "interrupted").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_acts_like_ctrl_c_flush_checkpoint_exit_12_resumable() {
    stop_by_signal(libc::SIGTERM, "sigterm", "terminated by SIGTERM").await;
}

/// Sends `signal` to a running export: the partial part is flushed and checkpointed, the run
/// exits 12 with a `resumable:` line naming `reason`, and the same command finishes exactly once.
async fn stop_by_signal(signal: libc::c_int, job: &str, reason: &str) {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let emulator = emulator(3_000, 15, 10.0, 2).await;
    let args = ["--rate", "10", "--burst", "2", "--part-rows", "1000"];
    let child = start_running(export_cmd(&emulator, &lake, job, &args), &lake, job).await;
    let checkpoint = state_file(&lake, job, "checkpoint.json");
    // Once one full part of 1,000 is committed and pages of the next are in memory (polled,
    // not slept for: a loaded machine only makes it take longer).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let committed = std::fs::read(&checkpoint)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
            .and_then(|cp| cp["exported_count"].as_u64())
            .unwrap_or(0);
        if committed >= 1_000 && emulator.stats().pages >= 13 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no part committed in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let pid = child.id().expect("still running") as i32;
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    let stopped = Run {
        output: child.wait_with_output().await.unwrap(),
    };
    let expected_line = format!("resumable: job {job} stopped ({reason})");
    assert_eq!(
        stopped.code(),
        12,
        "stopped, resumable: {}",
        stopped.stderr()
    );
    assert!(
        stopped.stdout().contains(&expected_line),
        "{}",
        stopped.stderr()
    );
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&checkpoint).unwrap()).unwrap();
    let count = saved["exported_count"].as_u64().unwrap();
    assert!(
        count > 1_000 && count < 3_000 && count % 1_000 != 0,
        "the partial part was flushed, not dropped: {saved}"
    );
    let part_files = tree(&lake)
        .iter()
        .filter(|(name, _)| name.ends_with(".parquet"))
        .count();
    assert_eq!(part_files, saved["parts"].as_array().unwrap().len());

    let out = finish(export_cmd(&emulator, &lake, job, &args)).await.ok();
    assert!(out.contains(&format!("complete: job {job}")), "{out}");
    let report = check_lake(&lake, &expected(dir.path(), 3_000, 15), false);
    assert_exactly_once(&report, 3_000);
}
