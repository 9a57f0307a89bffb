//! Organization scale on paper, measured here (issue 33): the Distributed Map's plan step
//! (role assumption and one cross-Region aggregation probe per account, the stream record and
//! the items file written), its finish step (every stream's checkpoint read) and `status` over
//! 10,000 and 170,000 streams (10,000 accounts x 1 and x 17 Regions). Security Hub and STS on
//! the in-process emulator, S3 on moto (MOTO_URL). Run by `scripts/bench.sh scale`; prints one
//! Markdown row per size.

use std::time::Instant;

use sechub_export::emulator::{Emulator, EmulatorConfig, EMULATOR_ACCOUNT};
use sechub_export::job::fanout::distributed;
use sechub_export::plan::{ExportPlan, ExportRequest};
use sechub_export::sink::layout;

/// The 17 Regions of the organization.
const REGIONS: [&str; 17] = [
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "ca-central-1",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-central-1",
    "eu-north-1",
    "ap-south-1",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "sa-east-1",
    "me-central-1",
];

#[tokio::main]
async fn main() {
    let moto = std::env::var("MOTO_URL").expect("MOTO_URL: run through scripts/bench.sh scale");
    let accounts: usize = std::env::var("SCALE_ACCOUNTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let members: Vec<String> = (1..accounts)
        .map(|n| format!("{:012}", 100_000_000_000u64 + n as u64))
        .collect();
    let emulator = Emulator::start(
        EmulatorConfig {
            members: members.clone(),
            regions: REGIONS.iter().map(|r| r.to_string()).collect(),
            ..EmulatorConfig::generated(0, 1)
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .expect("emulator");
    // The process's AWS environment: Security Hub and STS on the emulator, S3 on moto.
    for (key, value) in [
        ("AWS_ACCESS_KEY_ID", "bench"),
        ("AWS_SECRET_ACCESS_KEY", "bench"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_ENDPOINT_URL_SECURITYHUB", &emulator.url()),
        ("AWS_ENDPOINT_URL_STS", &emulator.url()),
        ("AWS_ENDPOINT_URL_S3", &moto),
        ("AWS_ENDPOINT_URL_SSM", &moto),
    ] {
        // SAFETY: set before any other thread reads the environment (the emulator's reads none).
        unsafe { std::env::set_var(key, value) };
    }
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let s3 = sechub_export::aws::s3_client(&config);
    let _ = s3.create_bucket().bucket("scale").send().await;
    let mut listed = vec![EMULATOR_ACCOUNT.to_string()];
    listed.extend(members);
    println!("| streams | plan step | stream record | items file | finish step (every checkpoint read) | status |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for regions in [1, REGIONS.len()] {
        let job = format!("scale-{regions}");
        let request: ExportRequest = serde_json::from_value(serde_json::json!({
            "destination": "s3://scale/lake",
            "job_id": job,
            "accounts": listed,
            "regions": REGIONS[..regions],
            "role_name": "SecurityHubExportRole",
        }))
        .expect("request");
        let plan = ExportPlan::new(&request).expect("plan");
        let started = Instant::now();
        let planned = distributed::plan(&plan).await.expect("plan step");
        let plan_secs = started.elapsed().as_secs_f64();
        let size = |key: String| {
            let s3 = s3.clone();
            async move {
                let got = s3.head_object().bucket("scale").key(format!("lake/{key}"));
                got.send()
                    .await
                    .expect("head")
                    .content_length()
                    .unwrap_or(0)
            }
        };
        let record = size(layout::streams_key(&job)).await;
        let items = size(layout::stream_items_key(&job)).await;
        let started = Instant::now();
        let finished = distributed::finish(&plan).await.expect("finish step");
        let finish_secs = started.elapsed().as_secs_f64();
        assert!(!finished.complete, "no stream ran");
        let started = Instant::now();
        let status = std::process::Command::new(env!("CARGO_BIN_EXE_sechub-export"))
            .args([
                "status",
                "--destination",
                "s3://scale/lake",
                "--job-id",
                &job,
            ])
            .output()
            .expect("status");
        let status_secs = started.elapsed().as_secs_f64();
        assert!(
            status.status.success(),
            "{}",
            String::from_utf8_lossy(&status.stderr)
        );
        println!(
            "| {} ({accounts} accounts x {regions} Regions) | {plan_secs:.1} s | {:.1} MiB | {:.1} MiB | {finish_secs:.1} s | {status_secs:.1} s |",
            planned.streams,
            record as f64 / 1048576.0,
            items as f64 / 1048576.0,
        );
    }
}
