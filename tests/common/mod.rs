//! Shared harness of the integration tests: the built binary, a moto server per test, the
//! Python readers (DuckDB, pyarrow) installed by scripts/setup-test-env.sh.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod crash;
pub mod lambda_host;
pub mod lambda_world;
pub mod org;
#[allow(unused_imports)]
pub use crash::*;

pub const BIN: &str = env!("CARGO_BIN_EXE_sechub-export");

/// The venv's Python. Missing is a failure, never a skip: run scripts/test.sh.
pub fn python() -> PathBuf {
    match std::env::var_os("SECHUB_TEST_PYTHON") {
        Some(path) => PathBuf::from(path),
        None => panic!("SECHUB_TEST_PYTHON is not set: run the suite with scripts/test.sh, which installs moto, DuckDB and pyarrow"),
    }
}

/// A file of this repository, found through the directory cargo runs the test from. Read at run
/// time, not baked in at compile time: a target directory cached outside the clone may hold
/// binaries built from another checkout of the same sources.
pub fn repo_file(relative: &str) -> PathBuf {
    let root = std::env::var_os("CARGO_MANIFEST_DIR")
        .expect("CARGO_MANIFEST_DIR is set by cargo test: run the suite with scripts/test.sh");
    Path::new(&root).join(relative)
}

/// Runs one of the Python tools in tests/py (`lake_tool.py`, `aws_tool.py`) and parses its JSON
/// answer.
pub fn py_tool(script: &str, args: &[&str]) -> Value {
    let out = Command::new(python())
        .arg(repo_file(&format!("tests/py/{script}")))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {script}: {e}"));
    assert!(
        out.status.success(),
        "{script} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{script} output not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Runs tests/py/lake_tool.py (the lake read back with DuckDB and pyarrow, S3 and SSM helpers).
pub fn lake_tool(args: &[&str]) -> Value {
    py_tool("lake_tool.py", args)
}

/// Runs tests/py/aws_tool.py (moto's Step Functions, EventBridge and CloudFormation).
pub fn aws_tool(args: &[&str]) -> Value {
    py_tool("aws_tool.py", args)
}

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A moto server of its own for one test.
pub struct Moto {
    child: Child,
    pub url: String,
}

impl Moto {
    pub fn start() -> Moto {
        Moto::start_with_env(&[])
    }

    /// A moto server with extra environment (e.g. `MOTO_PORT`: where its Step Functions
    /// interpreter sends Lambda invocations).
    pub fn start_with_env(env: &[(&str, &str)]) -> Moto {
        let moto = python().with_file_name("moto_server");
        assert!(
            moto.exists(),
            "moto_server missing at {}: run scripts/setup-test-env.sh",
            moto.display()
        );
        let port = free_port();
        // moto's server through tests/py/moto_server.py, which fills one gap of its Step
        // Functions interpreter (the states:startExecution integration's casing).
        let child = Command::new(python())
            .arg(repo_file("tests/py/moto_server.py"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "moto_server did not start on {url}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto { child, url }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A command for the binary with a clean, test-only AWS environment.
pub fn command(endpoint: Option<&str>) -> Command {
    with_test_aws(Command::new(BIN), endpoint)
}

/// `cmd` with a clean, test-only AWS environment (every AWS call to `endpoint` when given).
pub fn with_test_aws(mut cmd: Command, endpoint: Option<&str>) -> Command {
    for (key, _) in std::env::vars() {
        if key.starts_with("AWS_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("RUST_LOG", "sechub_export=info,warn")
        .stdin(Stdio::null());
    if let Some(url) = endpoint {
        cmd.env("AWS_ENDPOINT_URL", url);
    }
    cmd
}

/// `export` of one job to a folder, everything on `endpoint` (the emulator).
pub fn export_command(endpoint: &str, lake: &Path, job: &str, extra: &[&str]) -> Command {
    let mut cmd = command(Some(endpoint));
    let lake = lake.to_str().unwrap();
    cmd.args(["export", "--destination", lake, "--job-id", job, "-q"])
        .args(extra);
    cmd
}

/// The emulator serving `findings` generated findings of `seed` at `rate`/s, burst `burst`.
pub async fn generated_emulator(
    findings: u64,
    seed: u64,
    rate: f64,
    burst: u32,
) -> sechub_export::emulator::Emulator {
    start_emulator(sechub_export::emulator::EmulatorConfig {
        rate,
        burst,
        ..sechub_export::emulator::EmulatorConfig::generated(findings, seed)
    })
    .await
}

/// The project's emulator on a free loopback port, on a runtime of its own: a test that blocks
/// its own workers (waiting on a Python reader, a state machine) never holds up the service.
pub async fn start_emulator(
    config: sechub_export::emulator::EmulatorConfig,
) -> sechub_export::emulator::Emulator {
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let (started, emulator) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("the emulator's runtime");
        runtime.block_on(async move {
            let emulator = sechub_export::emulator::Emulator::start(config, loopback)
                .await
                .expect("emulator starts");
            // The runtime serves until the test process ends; dropping the emulator stops it.
            if started.send(emulator).is_ok() {
                std::future::pending::<()>().await;
            }
        });
    });
    emulator.recv().expect("the emulator started")
}

/// Output of a finished run, with text accessors.
pub struct Run {
    pub output: Output,
}

impl Run {
    pub fn code(&self) -> i32 {
        self.output.status.code().unwrap_or(-1)
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
    /// Asserts the run failed with `code`, its error is one line, and names every needle.
    pub fn fails(&self, code: i32, needles: &[&str]) {
        let stderr = self.stderr();
        assert_eq!(self.code(), code, "stderr: {stderr}");
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("error: "))
            .collect();
        assert_eq!(errors.len(), 1, "one error line expected: {stderr}");
        for needle in needles {
            assert!(errors[0].contains(needle), "{needle:?} not in: {stderr}");
        }
    }

    /// Asserts success and returns stdout.
    pub fn ok(&self) -> String {
        assert_eq!(
            self.code(),
            0,
            "exit {}\nstdout: {}\nstderr: {}",
            self.code(),
            self.stdout(),
            self.stderr()
        );
        self.stdout()
    }
}

/// `status` of `job` at `destination` (AWS calls to `endpoint`), asserted to succeed.
pub fn status_of(endpoint: &str, destination: &str, job: &str) -> String {
    let mut status = command(Some(endpoint));
    status.args(["status", "--destination", destination, "--job-id", job]);
    run(status).ok()
}

/// Runs the binary to completion.
pub fn run(mut cmd: Command) -> Run {
    Run {
        output: cmd.output().expect("run sechub-export"),
    }
}

/// Runs the binary to completion without blocking the test's runtime.
pub async fn finish(cmd: impl Into<tokio::process::Command>) -> Run {
    Run {
        output: cmd.into().output().await.expect("run sechub-export"),
    }
}

/// A job's state file (`checkpoint.json`, `manifest.json`) below a lake folder.
pub fn state_file(lake: &Path, job: &str, name: &str) -> PathBuf {
    lake.join("_sechub_export/jobs").join(job).join(name)
}

/// The emulator's `count` findings of `seed` as NDJSON in `dir` (what a lake must hold).
pub fn expected(dir: &Path, count: u64, seed: u64) -> PathBuf {
    let path = dir.join("expected.ndjson");
    generate(count, seed, &path);
    path
}

/// A moto server seeded (BatchImportFindings) with `count` generated findings of `seed`, and
/// the NDJSON of what it holds.
pub fn seeded_moto(dir: &Path, count: u64, seed: u64) -> (Moto, PathBuf) {
    let moto = Moto::start();
    let generated = dir.join("generated.ndjson");
    generate(count, seed, &generated);
    let ndjson = dir.join("seeded.ndjson");
    let seeded = lake_tool(&[
        "seed",
        &moto.url,
        generated.to_str().unwrap(),
        ndjson.to_str().unwrap(),
    ]);
    assert_eq!(seeded["failed"], 0, "{seeded}");
    (moto, ndjson)
}

/// Reads `lake` as Athena would with the generated DDL (written into `dir`): its schema
/// against every file, then `queries` (name -> SQL) and the `latest` view in DuckDB.
pub fn ddl_check(dir: &Path, lake: &Path, queries: &Value) -> Value {
    let ddl = dir.join("findings.sql");
    let mut cmd = command(None);
    cmd.args(["athena-ddl", "--destination", "s3://bucket/sh", "--output"])
        .arg(&ddl);
    run(cmd).ok();
    let path = dir.join("queries.json");
    std::fs::write(&path, queries.to_string()).unwrap();
    lake_tool(&[
        "ddl-check",
        lake.to_str().unwrap(),
        ddl.to_str().unwrap(),
        path.to_str().unwrap(),
    ])
}

/// Asserts two checkpoint files record the same progress (what is exported and where to go on):
/// a run that failed may have claimed the job (a new owner generation), never advanced it.
pub fn assert_same_progress(before: &[u8], after: &[u8]) {
    let before: Value = serde_json::from_slice(before).unwrap();
    let after: Value = serde_json::from_slice(after).unwrap();
    for field in [
        "state",
        "exported_count",
        "next_token",
        "next_part",
        "parts",
    ] {
        assert_eq!(
            before[field], after[field],
            "the checkpoint did not advance past unwritten data ({field})"
        );
    }
}

/// Reads the lake under `dir` back with DuckDB and pyarrow and compares it with the NDJSON
/// findings in `expect`; `exact` also compares every `finding_json` byte for byte.
pub fn check_lake(dir: &Path, expect: &Path, exact: bool) -> Value {
    let mut args = vec![
        "check",
        dir.to_str().unwrap(),
        "--expect",
        expect.to_str().unwrap(),
    ];
    if exact {
        args.push("--exact");
    }
    lake_tool(&args)
}

/// Writes `count` generated findings of `seed` as NDJSON (the same the emulator serves).
pub fn generate(count: u64, seed: u64, path: &Path) {
    generate_for("v1", count, seed, path)
}

/// As [`generate`], for `api` (`v2`: the OCSF documents GetFindingsV2 serves).
pub fn generate_for(api: &str, count: u64, seed: u64, path: &Path) {
    let out = Command::new(BIN)
        .args(["generate", "--api", api, "--findings", &count.to_string()])
        .args(["--seed", &seed.to_string()])
        .output()
        .expect("generate");
    assert!(out.status.success());
    std::fs::write(path, out.stdout).unwrap();
}

/// Asserts a lake check found exactly the expected findings once each, intact.
pub fn assert_exactly_once(report: &Value, expected: u64) {
    assert_eq!(report["rows"], expected, "{report}");
    assert_eq!(report["duckdb_rows"], expected, "{report}");
    assert_eq!(report["distinct_ids"], expected, "{report}");
    assert_eq!(report["duplicated_count"], 0, "{report}");
    assert_eq!(report["missing_count"], 0, "{report}");
    assert_eq!(report["unexpected_count"], 0, "{report}");
    assert_eq!(report["json_mismatches"], 0, "{report}");
    assert_eq!(report["timestamp_mismatches"], 0, "{report}");
}

/// Every file below `dir`, relative, sorted (to prove nothing was written or changed).
pub fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).unwrap().display().to_string();
                if !rel.ends_with("lock.json") {
                    out.push((rel, std::fs::read(&path).unwrap_or_default()));
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// tests/py/fault_proxy.py in front of moto: injects S3 and SSM faults, counts S3 operations.
pub struct FaultProxy {
    child: Child,
    pub url: String,
}

impl FaultProxy {
    pub fn start(upstream: &str) -> FaultProxy {
        let port = free_port();
        let script = repo_file("tests/py/fault_proxy.py");
        let child = Command::new(python())
            .arg(script)
            .arg(port.to_string())
            .arg(upstream)
            .spawn()
            .unwrap();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            std::thread::sleep(Duration::from_millis(50));
        }
        FaultProxy {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Sets the faults (JSON, see fault_proxy.py) and returns the stats so far.
    pub fn set(&self, faults: Value) -> Value {
        let out = Command::new(python())
            .args(["-c", "import sys,urllib.request as u;u.urlopen(u.Request(sys.argv[1]+'/__faults',data=sys.argv[2].encode(),method='POST'));print(u.urlopen(sys.argv[1]+'/__stats').read().decode())"])
            .arg(&self.url)
            .arg(faults.to_string())
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A moto server with an empty bucket, and the fault proxy in front of it.
pub fn moto_with_proxy(bucket: &str) -> (Moto, FaultProxy) {
    let moto = Moto::start();
    lake_tool(&["create-bucket", &moto.url, bucket]);
    let proxy = FaultProxy::start(&moto.url);
    (moto, proxy)
}

/// Security Hub and STS on the emulator at `emulator`; S3 and SSM on `aws` (moto or the proxy).
pub fn split_command(emulator: &str, aws: &str) -> Command {
    let mut cmd = command(None);
    cmd.env("AWS_ENDPOINT_URL_SECURITYHUB", emulator)
        .env("AWS_ENDPOINT_URL_STS", emulator)
        .env("AWS_ENDPOINT_URL_S3", aws)
        .env("AWS_ENDPOINT_URL_SSM", aws);
    cmd
}

/// Downloads everything under `s3://lake/sh/` from moto into `dir/name`.
pub fn s3_lake(moto: &Moto, dir: &Path, name: &str) -> PathBuf {
    let landed = dir.join(name);
    lake_tool(&[
        "download",
        &moto.url,
        "lake",
        "sh/",
        landed.to_str().unwrap(),
    ]);
    landed
}

/// The `findings` generated with `seed` are all in moto's `s3://lake/sh`, each exactly once
/// (downloaded under `dir`).
pub fn assert_s3_landed_once(moto: &Moto, dir: &Path, findings: u64, seed: u64) {
    let landed = s3_lake(moto, dir, "landed");
    let expected = dir.join("expected.ndjson");
    generate(findings, seed, &expected);
    assert_exactly_once(&check_lake(&landed, &expected, false), findings);
}

/// `verify --deep` of `job` at `s3://lake/sh` passes (Security Hub on `emulator`, S3 and SSM on
/// `aws`): every committed part is there, whole, and nothing else.
pub fn assert_s3_verified(emulator: &str, aws: &str, job: &str, findings: u64) {
    let mut verify = split_command(emulator, aws);
    verify.args([
        "verify",
        "--destination",
        "s3://lake/sh",
        "--job-id",
        job,
        "--deep",
    ]);
    let out = run(verify).ok();
    let expected = format!("verified: job {job}: {findings} findings");
    assert!(out.contains(&expected), "{out}");
}
