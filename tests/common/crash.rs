//! Crash rounds for the reliability suites: a run aborted at a crash point or SIGKILLed at a
//! random moment, against any destination.

use std::process::{Command, Stdio};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::Rng;

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
