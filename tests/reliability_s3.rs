//! The reliability suite on an S3 destination (moto behind the fault proxy): crashes and
//! SIGKILLs, a run frozen across a takeover, 409 conflicts, lost answers, a bucket in another
//! Region, a second host. Each test prints a `reliability:` line for scripts/reliability.sh.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use rand::SeedableRng;
use sechub_export::emulator::{Emulator, EmulatorConfig};
use serde_json::json;

/// A short lease, so a takeover after a SIGKILL or a freeze takes seconds, not a minute.
const LEASE_SECS: u64 = 4;

/// An S3 job's world: moto behind the fault proxy, the emulator serving generated findings.
struct S3World {
    dir: tempfile::TempDir,
    moto: Moto,
    proxy: FaultProxy,
    emulator: Emulator,
    findings: u64,
    seed: u64,
    rate: String,
    burst: String,
}

impl S3World {
    async fn new(findings: u64, seed: u64, rate: f64, burst: u32) -> S3World {
        let (moto, proxy) = moto_with_proxy("lake");
        let emulator = start_emulator(EmulatorConfig {
            rate,
            burst,
            ..EmulatorConfig::generated(findings, seed)
        })
        .await;
        S3World {
            dir: tempfile::tempdir().unwrap(),
            moto,
            proxy,
            emulator,
            findings,
            seed,
            rate: rate.to_string(),
            burst: burst.to_string(),
        }
    }

    /// `export` of `job` to s3://lake/sh through the proxy, at the emulator's quota.
    fn export(&self, job: &str, extra: &[&str]) -> Command {
        let mut cmd = split_command(&self.emulator.url(), &self.proxy.url);
        cmd.args([
            "export",
            "--destination",
            "s3://lake/sh",
            "--job-id",
            job,
            "-q",
        ]);
        cmd.args(["--rate", &self.rate, "--burst", &self.burst]);
        cmd.args(extra);
        cmd
    }

    /// Every finding the emulator served is in the lake exactly once.
    fn assert_landed_once(&self) {
        assert_s3_landed_once(&self.moto, self.dir.path(), self.findings, self.seed);
    }

    /// The job ended well: its lease released, every finding in the lake once, `verify --deep`
    /// passing.
    fn assert_finished(&self, job: &str) {
        assert!(!self.lease_exists(job), "the last run released the lease");
        self.assert_landed_once();
        let emulator = self.emulator.url();
        assert_s3_verified(&emulator, &self.proxy.url, job, self.findings);
    }

    /// Whether the job's lease object exists (a run holds it or died holding it).
    fn lease_exists(&self, job: &str) -> bool {
        let key = format!("sh/_sechub_export/jobs/{job}/lock.json");
        lake_tool(&["exists", &self.moto.url, "lake", &key])["exists"] == true
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_write_conflicts_are_retried_not_taken_for_a_second_writer() {
    let world = S3World::new(2_000, 34, 100.0, 50).await;
    // Half the checkpoint, lease and manifest writes answered 409 ConditionalRequestConflict.
    world.proxy.set(json!({"s3_probability": 0.5, "s3_error": "409", "s3_only": ["conditional_put"], "seed": 5}));
    let done = finish(world.export("c409", &["--part-rows", "300"]))
        .await
        .ok();
    assert!(done.contains("complete: job c409"), "{done}");
    let stats = world.proxy.set(json!({}));
    assert!(
        stats["s3_faulted_ops"]["conditional_put"].as_u64().unwrap() >= 3,
        "conflicts were injected: {stats}"
    );
    world.assert_landed_once();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_in_another_region_than_region_is_found_and_used() {
    let world = S3World::new(500, 35, 100.0, 50).await;
    // The bucket lives in eu-west-1; the export runs with AWS_REGION=us-east-1.
    world
        .proxy
        .set(json!({"bucket_regions": {"lake": "eu-west-1"}}));
    let export = world.export("away", &["--progress-parameter", "none"]);
    let done = finish(export).await.ok();
    assert!(done.contains("complete: job away: 500 findings"), "{done}");
    let stats = world.proxy.set(json!({}));
    assert_eq!(
        stats["redirects"], 1,
        "one 301, then every call in eu-west-1: {stats}"
    );
    world.assert_landed_once();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_host_is_refused_an_s3_job_another_host_is_running() {
    let world = S3World::new(1_200, 36, 6.0, 1).await;
    let export = |host: &str| {
        let mut cmd = world.export("hosts", &["--part-rows", "200"]);
        cmd.env("SECHUB_EXPORT_HOST_ID", host);
        tokio::process::Command::from(cmd)
    };
    let mut first = export("host-a");
    let first = first
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The first run holds the lease once its claim of the job landed.
    while world.proxy.set(json!({}))["s3_ops"]["conditional_put"]
        .as_u64()
        .unwrap_or(0)
        < 3
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let second = finish(export("host-b")).await;
    second.fails(5, &["another run is exporting this job", "host host-a"]);
    let first = Run {
        output: first.wait_with_output().await.unwrap(),
    };
    assert!(first.ok().contains("complete: job hosts"));
    world.assert_landed_once();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_that_landed_but_lost_their_answer_are_recognised_not_failed_or_duplicated() {
    let world = S3World::new(2_000, 37, 100.0, 50).await;
    // A third of part uploads and of lease, checkpoint and manifest writes land unanswered
    // (with this seed the first one is the lease: a run must not refuse its own lease).
    world.proxy.set(
        json!({"lost_probability": 0.35, "lost_only": ["put", "conditional_put"], "seed": 22}),
    );
    let done = finish(world.export("lost", &["--part-rows", "100"]))
        .await
        .ok();
    assert!(done.contains("complete: job lost: 2000 findings"), "{done}");
    let stats = world.proxy.set(json!({}));
    for op in ["put", "conditional_put"] {
        assert!(
            stats["lost_ops"][op].as_u64().unwrap_or(0) >= 1,
            "{op} answers were lost: {stats}"
        );
    }
    world.assert_landed_once();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashes_and_kills_on_s3_lose_and_duplicate_nothing_and_a_dead_lease_is_taken_over() {
    require_failpoints();
    let world = S3World::new(10_000, 39, 40.0, 10).await;
    let points = [
        "part-before-upload",
        "part-after-upload",
        "checkpoint-before-commit",
        "checkpoint-after-commit",
    ];
    let export = |host: u32| {
        let mut cmd = world.export("crash", &["--part-rows", "200"]);
        cmd.env("SECHUB_EXPORT_HOST_ID", format!("host-{host}"))
            .env("SECHUB_EXPORT_LEASE_SECS", LEASE_SECS.to_string());
        cmd
    };
    let mut rng = rand::rngs::SmallRng::seed_from_u64(39);
    let (mut aborted, mut killed, mut waited_out) = (0, 0, 0);
    let mut fired = std::collections::BTreeSet::new();
    // Aborts hand the job to a run on the same host, which takes a dead pid's lease at once;
    // after a SIGKILL the next run is on another host, which must wait the lease out.
    let mut host = 0;
    for round in 0..20 {
        match crash_round(export(host), round, &mut rng, &points).await {
            Crash::Aborted(point) => {
                aborted += 1;
                fired.insert(point);
            }
            Crash::Killed => {
                killed += 1;
                host += 1;
                if world.lease_exists("crash") {
                    let early = finish(export(host)).await;
                    // On a loaded machine the lease may expire while this run starts: then it
                    // takes the job over at once, which is the takeover this waits for.
                    if early.code() != 0 {
                        early.fails(5, &["another run is exporting this job"]);
                        tokio::time::sleep(Duration::from_millis(LEASE_SECS * 1000 + 300)).await;
                    }
                    waited_out += 1;
                }
            }
            Crash::Survived => {}
        }
    }
    let done = finish(export(host)).await.ok();
    assert!(done.contains("complete: job crash"), "{done}");
    assert!(
        aborted + killed >= 14,
        "crashes: {aborted} aborts, {killed} kills"
    );
    assert_every_point_fired(&points, &fired);
    assert!(
        waited_out >= 1,
        "a killed run's lease was taken over by another host"
    );
    world.assert_finished("crash");
    println!("reliability: crash anywhere on S3: {aborted} crash-point aborts + {killed} SIGKILLs survived, {waited_out} leases of killed runs taken over by another host after expiry; 10000 findings, lost 0, duplicated 0, verify --deep passed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_frozen_across_a_takeover_cannot_commit_when_it_wakes() {
    require_failpoints();
    let world = S3World::new(1_500, 38, 2.0, 1).await;
    let export = |host: &str, failpoints: Option<&str>| {
        let mut cmd = world.export("frozen", &["--part-rows", "300"]);
        cmd.env("SECHUB_EXPORT_HOST_ID", host)
            .env("SECHUB_EXPORT_LEASE_SECS", LEASE_SECS.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(failpoints) = failpoints {
            cmd.env("FAILPOINTS", failpoints);
        }
        tokio::process::Command::from(cmd)
    };
    let ops = |op: &str| {
        world.proxy.set(json!({}))["s3_ops"][op]
            .as_u64()
            .unwrap_or(0)
    };
    // Host A uploads its first part, checks its lease, and is frozen just before it commits
    // the checkpoint that lists the part: the one moment only fencing protects.
    let first = export("host-a", Some("checkpoint-before-commit=1*sleep(3000)"))
        .spawn()
        .unwrap();
    let frozen = first.id().unwrap() as libc::pid_t;
    while ops("put") < 1 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // SAFETY: signalling our own child process.
    assert_eq!(unsafe { libc::kill(frozen, libc::SIGSTOP) }, 0);
    tokio::time::sleep(Duration::from_millis(LEASE_SECS * 1000 + 500)).await;
    // Host B takes the expired lease, claims the job and deletes A's uncommitted part...
    let mut second = export("host-b", None).spawn().unwrap();
    while ops("delete") < 1 {
        if second.try_wait().unwrap().is_some() {
            let out = second.wait_with_output().await.unwrap();
            panic!(
                "B ended before deleting the stray part: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // ...and A wakes before B commits anything: A's commit must fail, not list a deleted part.
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(frozen, libc::SIGCONT) }, 0);
    let first = Run {
        output: first.wait_with_output().await.unwrap(),
    };
    first.fails(5, &["changed by another run"]);
    assert!(
        world.lease_exists("frozen"),
        "the woken run left its successor's lease in place"
    );
    let second = Run {
        output: second.wait_with_output().await.unwrap(),
    };
    assert!(second.ok().contains("complete: job frozen: 1500 findings"));
    world.assert_finished("frozen");
    println!("reliability: frozen across a takeover (S3): the woken run's checkpoint commit was refused (exit 5), its successor completed; 1500 findings, lost 0, duplicated 0, verify --deep passed");
}
