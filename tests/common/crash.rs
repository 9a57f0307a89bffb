//! Crash rounds for the reliability suites: a run aborted at a crash point or SIGKILLed at a
//! random moment, against any destination; runs SIGKILLed on a schedule, with the progress
//! between them and the parts they left.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::Rng;
use serde_json::Value;

use super::state_file;

/// The crash points need the `failpoints` feature; without it the suite would test nothing.
pub fn require_failpoints() {
    if !cfg!(feature = "failpoints") {
        panic!("the crash points need --features failpoints (scripts/test.sh passes it)");
    }
}

/// How a crash round ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Crash {
    /// Aborted at this crash point (the abort signal it raises; any other failure panics).
    Aborted(String),
    /// SIGKILLed while running.
    Killed,
    /// Ended on its own before the crash came.
    Survived,
}

/// One round: every fourth a SIGKILL 150-600 ms in, the others an abort at a random crash point
/// of `points` on its 1st to 3rd pass.
pub async fn crash_round(
    mut cmd: Command,
    round: u32,
    rng: &mut SmallRng,
    points: &[&str],
) -> Crash {
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    if round % 4 == 3 {
        let mut child = tokio::process::Command::from(cmd).spawn().unwrap();
        tokio::time::sleep(Duration::from_millis(rng.random_range(150..600))).await;
        let running = child.try_wait().unwrap().is_none();
        if running {
            child.kill().await.unwrap();
        }
        let _ = child.wait().await;
        return if running {
            Crash::Killed
        } else {
            Crash::Survived
        };
    }
    let point = points[rng.random_range(0..points.len())];
    cmd.env(
        "FAILPOINTS",
        format!("{point}={}*off->return", rng.random_range(0..3)),
    );
    let status = tokio::process::Command::from(cmd).status().await.unwrap();
    use std::os::unix::process::ExitStatusExt;
    match status.signal() {
        Some(libc::SIGABRT) => Crash::Aborted(point.to_string()),
        _ if status.success() => Crash::Survived,
        _ => panic!("round {round} failed without its crash point ({point}): {status:?}"),
    }
}

/// Asserts every crash point of `points` aborted a run at least once.
pub fn assert_every_point_fired(points: &[&str], fired: &std::collections::BTreeSet<String>) {
    for point in points {
        assert!(
            fired.contains(*point),
            "crash point {point} never fired: {fired:?}"
        );
    }
}

/// What [`kill_repeatedly`] saw.
#[derive(Debug)]
pub struct Kills {
    /// Runs killed mid-way.
    pub kills: usize,
    /// The job's exported count after each run (its checkpoint; 0 before the first commit).
    pub counts: Vec<u64>,
    /// Runs that left a part on disk beyond the checkpoint's (written, not committed).
    pub strays: usize,
}

impl Kills {
    /// Asserts the runs were killed at least `kills` times and the job moved on between them:
    /// its count never went back and rose over the runs.
    pub fn assert_progress(&self, kills: usize) {
        assert!(
            self.kills >= kills,
            "killed mid-run only {} times: {self:?}",
            self.kills
        );
        assert!(
            self.counts.windows(2).all(|w| w[0] <= w[1]),
            "the count went back: {self:?}"
        );
        assert!(
            self.counts.last() > self.counts.first(),
            "no progress between kills: {self:?}"
        );
    }
}

/// Parquet parts on disk below a local lake (every table).
pub fn part_files(lake: &Path) -> usize {
    fn walk(dir: &Path) -> usize {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return 0;
        };
        entries
            .flatten()
            .map(|e| e.path())
            .map(|p| match p.is_dir() {
                true => walk(&p),
                false => usize::from(p.extension().is_some_and(|x| x == "parquet")),
            })
            .sum()
    }
    ["findings", "findings_ocsf"]
        .iter()
        .map(|table| walk(&lake.join(table)))
        .sum()
}

/// Starts a command from `make` once per delay and SIGKILLs it after that delay (no flush, no
/// checkpoint) if it is still running; after each run reads job `job`'s checkpoint in `lake`.
pub async fn kill_repeatedly(
    make: impl Fn() -> tokio::process::Command,
    delays_ms: &[u64],
    lake: &Path,
    job: &str,
) -> Kills {
    let mut seen = Kills {
        kills: 0,
        counts: Vec::new(),
        strays: 0,
    };
    for delay in delays_ms {
        let mut child = make()
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(*delay)).await;
        if child.try_wait().unwrap().is_none() {
            child.kill().await.unwrap();
            seen.kills += 1;
        }
        let _ = child.wait().await;
        let checkpoint: Option<Value> =
            std::fs::read_to_string(state_file(lake, job, "checkpoint.json"))
                .ok()
                .and_then(|text| serde_json::from_str(&text).ok());
        let (count, parts) = checkpoint.map_or((0, 0), |cp| {
            (
                cp["exported_count"].as_u64().unwrap_or(0),
                cp["parts"].as_array().map_or(0, Vec::len),
            )
        });
        seen.counts.push(count);
        seen.strays += usize::from(part_files(lake) > parts);
    }
    seen
}

/// Asserts a complete local job holds exactly its checkpoint's parts on disk: every part a
/// killed run wrote but did not commit was removed.
pub fn assert_no_stray_parts(lake: &Path, job: &str) {
    let text = std::fs::read_to_string(state_file(lake, job, "checkpoint.json")).unwrap();
    let checkpoint: Value = serde_json::from_str(&text).unwrap();
    let parts = checkpoint["parts"].as_array().unwrap().len();
    assert_eq!(part_files(lake), parts, "stray parts left on disk");
}
