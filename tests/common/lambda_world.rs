//! The AWS deployment's test world: moto for S3 and SSM, the emulator for Security Hub, the
//! function's sandbox command, and the template's state machine run in moto.

use serde_json::Value;

use super::*;
use sechub_export::emulator::{Emulator, EmulatorConfig};

/// The deployment template, from the repository root.
pub const TEMPLATE: &str = "infra/cloudformation/sechub-export.yaml";

/// moto for S3 and SSM, the emulator for Security Hub, and the function's sandbox command.
pub struct World {
    pub dir: tempfile::TempDir,
    pub moto: Moto,
    pub emulator: Emulator,
    pub findings: u64,
    pub seed: u64,
}

impl World {
    pub async fn new(findings: u64, seed: u64, moto: Moto) -> World {
        lake_tool(&["create-bucket", &moto.url, "lake"]);
        let emulator = start_emulator(EmulatorConfig {
            rate: 100.0,
            burst: 50,
            ..EmulatorConfig::generated(findings, seed)
        })
        .await;
        World {
            dir: tempfile::tempdir().unwrap(),
            moto,
            emulator,
            findings,
            seed,
        }
    }

    /// The function's process: Security Hub on the emulator, S3 and SSM on moto, a short lease.
    pub fn sandbox(&self) -> std::process::Command {
        let mut cmd = split_command(&self.emulator.url(), &self.moto.url);
        cmd.env("SECHUB_EXPORT_LEASE_SECS", "4");
        cmd
    }

    pub fn lake(&self, name: &str) -> std::path::PathBuf {
        s3_lake(&self.moto, self.dir.path(), name)
    }

    pub fn assert_landed_once(&self) {
        assert_s3_landed_once(&self.moto, self.dir.path(), self.findings, self.seed);
    }

    pub fn assert_verified(&self, job: &str) {
        let emulator = self.emulator.url();
        assert_s3_verified(&emulator, &self.moto.url, job, self.findings);
    }
}

/// Runs the template's state machine in moto with `input`; `aws_tool.py sfn-run`'s answer.
pub async fn run_state_machine(moto: &Moto, input: Value) -> Value {
    run_state_machine_with(moto, input, &[]).await
}

/// The same, with `aws_tool.py`'s options (`fast-retries`). It waits for the execution on a
/// blocking thread: the test's own workers keep serving the Lambda stand-in meanwhile.
pub async fn run_state_machine_with(moto: &Moto, input: Value, options: &[&str]) -> Value {
    let function = "arn:aws:lambda:us-east-1:123456789012:function:sechub-export";
    let template = repo_file(TEMPLATE).to_str().unwrap().to_string();
    let mut args: Vec<String> = ["sfn-run", &moto.url, &template, function, "s3://lake/sh"]
        .map(str::to_string)
        .to_vec();
    args.extend([input.to_string(), "240".to_string()]);
    args.extend(options.iter().map(|o| o.to_string()));
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        aws_tool(&args)
    })
    .await
    .expect("the state machine's run")
}

/// A timestamp in a result or a state object.
pub fn time(value: &Value) -> chrono::DateTime<chrono::Utc> {
    value
        .as_str()
        .expect("a timestamp")
        .parse()
        .expect("RFC 3339")
}

/// The feed family `family`'s state object in moto's `s3://lake/sh` (downloaded as `name`).
pub fn feed_state(world: &World, family: &str, name: &str) -> Value {
    let lake = world.lake(name);
    let path = lake.join(format!("_sechub_export/feeds/{family}/state.json"));
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}
