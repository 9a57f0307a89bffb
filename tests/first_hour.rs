//! A new user's first hour: every spelling of one folder is one job, a mistyped folder is
//! refused, a closed pipe is a normal end, command-line errors name what is wrong, progress
//! moves before the first part is written, a stopped run has its own exit code, and `status`
//! answers machines and refuses what is not there.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use common::*;

/// `export` to `destination` under its default job id, everything on `endpoint`.
fn export_default_id(endpoint: &str, destination: &str, extra: &[&str]) -> Run {
    let mut cmd = command(Some(endpoint));
    cmd.args(["export", "--destination", destination, "-q"])
        .args(extra);
    run(cmd)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_spelling_of_one_folder_is_one_job_and_exports_each_finding_once() {
    let emulator = generated_emulator(300, 5, 1000.0, 50).await;
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    let lake = root.join("lake");
    std::os::unix::fs::symlink(&lake, root.join("link")).unwrap();
    let first = export_default_id(&emulator.url(), lake.to_str().unwrap(), &[]).ok();
    assert!(first.contains("complete: job "), "{first}");
    let spellings = [
        format!("{}/", lake.display()),
        format!("{}/./lake/.", root.display()),
        format!("{}/x/../lake", root.display()),
        format!("file://{}/", lake.display()),
        format!("{}/link/", root.display()),
    ];
    for spelling in &spellings {
        let again = export_default_id(&emulator.url(), spelling, &[]).ok();
        assert!(
            again.contains("already complete: job "),
            "{spelling}: {again}"
        );
    }
    let relative = {
        let mut cmd = command(Some(&emulator.url()));
        cmd.current_dir(&root)
            .args(["export", "--destination", "./lake/", "-q"]);
        run(cmd).ok()
    };
    assert!(relative.contains("already complete: job "), "{relative}");
    let report = check_lake(&lake, &expected(dir.path(), 300, 5), true);
    assert_exactly_once(&report, 300);
    let jobs = std::fs::read_dir(lake.join("_sechub_export/jobs"))
        .unwrap()
        .count();
    assert_eq!(jobs, 1, "one job for every spelling");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mistyped_folder_is_refused_and_nothing_is_created() {
    let emulator = generated_emulator(100, 1, 1000.0, 50).await;
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("no/such/dir");
    let out = export_default_id(&emulator.url(), typo.to_str().unwrap(), &[]);
    out.fails(4, &["does not exist", "mkdir -p"]);
    assert!(!dir.path().join("no").exists(), "nothing may be created");
    assert_eq!(
        emulator.stats().pages,
        0,
        "no page is read for a folder that is refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_run_exits_12_resumable_and_exit_zero_when_stopped_keeps_0() {
    let emulator = generated_emulator(2_000, 3, 5.0, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let args = ["--rate", "5", "--burst", "1", "--part-rows", "100"];
    let stopped = run(export_command(
        &emulator.url(),
        &lake,
        "stops",
        &[&args[..], &["--max-duration", "1s"]].concat(),
    ));
    assert_eq!(stopped.code(), 12, "{}", stopped.stderr());
    assert!(stopped
        .stdout()
        .contains("resumable: job stops stopped (--max-duration reached)"));
    assert!(
        stopped
            .stderr()
            .contains("stopped: job stops: stopped before it was complete")
            && stopped.stderr().contains("run the same command again"),
        "{}",
        stopped.stderr()
    );
    let zero = run(export_command(
        &emulator.url(),
        &lake,
        "stops",
        &[
            &args[..],
            &["--max-duration", "1s", "--exit-zero-when-stopped"],
        ]
        .concat(),
    ));
    assert!(zero.ok().contains("resumable: job stops"));
    let status = |json: bool| {
        let mut cmd = command(None);
        cmd.args([
            "status",
            "--destination",
            lake.to_str().unwrap(),
            "--job-id",
            "stops",
        ]);
        if json {
            cmd.arg("--json");
        }
        run(cmd).ok()
    };
    let unfinished: serde_json::Value = serde_json::from_str(&status(true)).unwrap();
    assert_eq!(unfinished["complete"], false, "{unfinished}");
    assert_eq!(unfinished["state"], "resumable");
    let done = run(export_command(
        &emulator.url(),
        &lake,
        "stops",
        &["--rate", "1000", "--burst", "50"],
    ));
    assert!(done.ok().contains("complete: job stops"));
    let complete: serde_json::Value = serde_json::from_str(&status(true)).unwrap();
    assert_eq!(complete["complete"], true, "{complete}");
    assert_eq!(complete["exported_count"], 2_000);
    assert!(status(false).contains("state:        complete"));
    assert_exactly_once(
        &check_lake(&lake, &expected(dir.path(), 2_000, 3), true),
        2_000,
    );

    let restart = run(export_command(
        &emulator.url(),
        &lake,
        "stops",
        &["--restart"],
    ));
    restart.fails(
        2,
        &[
            "--restart: job stops is complete (2000 findings)",
            "new --job-id",
        ],
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&status(true)).unwrap(),
        complete,
        "a refused --restart changes nothing"
    );
}

#[test]
fn status_of_what_is_not_there_fails_and_says_how_to_list() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    std::fs::create_dir(&lake).unwrap();
    let status = |args: &[&str]| {
        let mut cmd = command(None);
        cmd.arg("status").args(args);
        run(cmd)
    };
    status(&["--destination", lake.to_str().unwrap(), "--job-id", "nope"])
        .fails(2, &["no job nope at", "status --destination"]);
    status(&["--destination", lake.to_str().unwrap(), "--family", "nope"])
        .fails(2, &["no feed nope at"]);
    let missing = dir.path().join("missing");
    status(&["--destination", missing.to_str().unwrap()]).fails(4, &["no such folder"]);
    let listed: serde_json::Value =
        serde_json::from_str(&status(&["--destination", lake.to_str().unwrap(), "--json"]).ok())
            .unwrap();
    assert_eq!(listed["jobs"], serde_json::json!([]));
}

/// The writing end of a pipe whose reader is already gone (`| head` that has read enough).
fn closed_pipe() -> Stdio {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    unsafe { libc::close(fds[0]) };
    Stdio::from(unsafe { std::os::fd::OwnedFd::from_raw_fd(fds[1]) })
}

/// Runs the binary with `args` writing into a pipe whose reader is already gone.
fn into_closed_pipe(args: &[&str]) -> Run {
    let mut cmd = command(None);
    cmd.args(args).stdout(closed_pipe()).stderr(Stdio::piped());
    run(cmd)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_pipe_is_a_normal_end_without_a_panic() {
    let emulator = generated_emulator(100, 1, 1000.0, 50).await;
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    run(export_command(&emulator.url(), &lake, "piped", &[])).ok();
    let lake = lake.to_str().unwrap();
    for args in [
        &["status", "--destination", lake][..],
        &["status", "--destination", lake, "--job-id", "piped"],
        &["generate", "--findings", "20000"],
        &["athena-ddl", "--destination", "s3://bucket/prefix"],
    ] {
        let out = into_closed_pipe(args);
        assert_eq!(out.code(), 0, "{args:?}: {}", out.stderr());
        assert!(out.stderr().is_empty(), "{args:?}: {}", out.stderr());
    }
    // An export whose reader left still exports, and exits for the job, not the pipe.
    let mut cmd = export_command(&emulator.url(), &dir.path().join("lake2"), "piped2", &[]);
    let out = run({
        cmd.stdout(closed_pipe());
        cmd
    });
    assert_eq!(out.code(), 0, "{}", out.stderr());
    assert!(!out.stderr().contains("panicked"), "{}", out.stderr());
}

#[test]
fn command_line_errors_name_what_is_missing_or_mistyped() {
    let missing = run({
        let mut cmd = command(None);
        cmd.arg("export");
        cmd
    });
    missing.fails(
        2,
        &[
            "required arguments were not provided",
            "--destination <DESTINATION>",
        ],
    );
    let typo = run({
        let mut cmd = command(None);
        cmd.arg("exprot");
        cmd
    });
    typo.fails(
        2,
        &[
            "unrecognized subcommand 'exprot'",
            "similar subcommand exists: 'export'",
        ],
    );
    let nothing = run(command(None));
    assert_eq!(nothing.code(), 2);
    let help = nothing.stderr();
    assert!(
        help.contains("Usage: sechub-export") && help.contains("export") && help.contains("status"),
        "no subcommand shows the commands: {help}"
    );
}

/// With no terminal, the plain log shows findings read and the live rate before the first
/// part is written (parts of 10,000 at 5 calls/s take 20 s to fill; a line comes every 10 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_moves_with_every_page_before_the_first_part_is_written() {
    let emulator = generated_emulator(12_000, 2, 5.0, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let mut cmd = command(Some(&emulator.url()));
    cmd.args([
        "export",
        "--destination",
        lake.to_str().unwrap(),
        "--job-id",
        "live",
    ])
    .args(["--rate", "5", "--burst", "1", "--part-rows", "10000"])
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    let mut live = None;
    for line in stderr.lines() {
        let line = line.unwrap();
        seen.push(line.clone());
        if line.contains("read ") && line.contains("findings/s") {
            live = Some(line);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{seen:?}");
    }
    let _ = child.kill();
    let _ = child.wait();
    let line = live.unwrap_or_else(|| panic!("no progress line: {seen:?}"));
    let read: u64 = line
        .split("read ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!(read >= 100, "findings read before any part: {line}");
    assert!(
        line.contains("; written 0") && line.contains(" in 0 parts;"),
        "{line}"
    );
    assert!(
        line.contains("throttled") && line.contains("retried"),
        "{line}"
    );
}
