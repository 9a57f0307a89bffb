//! A property over seeds: a service drawn at random from the freedoms the contract leaves (page
//! order, short pages, shared Ids, throttling and faults, latency that makes the stream slow)
//! and an export crashed at random crash points until it completes. Every case ends with the
//! lake exactly the service's findings by (Id, ProductArn), or a non-zero exit: never exit 0
//! with a wrong lake. `SECHUB_PROPERTY_CASES` sets how many seeds (8 in CI, a few minutes).

mod common;

use std::os::unix::process::ExitStatusExt;

use common::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use sechub_export::emulator::{EmulatorConfig, Faults, SortMode};

/// The crash points a run passes on every part.
const POINTS: [&str; 4] = [
    "part-before-upload",
    "part-after-upload",
    "checkpoint-before-commit",
    "checkpoint-after-commit",
];

/// One drawn case: the service and the export's flags.
#[derive(Debug)]
struct Case {
    findings: u64,
    faults: Faults,
    shared_ids: bool,
    trust: bool,
    max_shards: u32,
    part_rows: u64,
    crashes: Vec<(&'static str, u32)>,
}

fn draw(seed: u64) -> Case {
    let mut rng = SmallRng::seed_from_u64(seed);
    let sort_mode = [
        SortMode::Global,
        SortMode::Page,
        SortMode::Ignore,
        SortMode::Refuse,
        SortMode::Fail,
    ][rng.random_range(0..5)];
    let crashes = (0..rng.random_range(0..4))
        .map(|_| {
            (
                POINTS[rng.random_range(0..POINTS.len())],
                rng.random_range(0..3),
            )
        })
        .collect();
    Case {
        findings: rng.random_range(300..1_500),
        faults: Faults {
            sort_mode,
            short_pages: [0, 0, 1 + rng.random_range(0..100)][rng.random_range(0..3)],
            latency_ms: [0, 40, 90][rng.random_range(0..3)],
            throttle_probability: [0.0, 0.05][rng.random_range(0..2)],
            error_probability: [0.0, 0.03][rng.random_range(0..2)],
            ..Faults::default()
        },
        shared_ids: rng.random_bool(0.5),
        trust: rng.random_bool(0.5),
        max_shards: [1, 2, 16][rng.random_range(0..3)],
        part_rows: [100, 300, 1_000][rng.random_range(0..3)],
        crashes,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_service_the_contract_allows_and_any_crashes_end_exact_or_loud() {
    require_failpoints();
    let cases: u64 = std::env::var("SECHUB_PROPERTY_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(8);
    let mut fired = std::collections::BTreeMap::new();
    for seed in 0..cases {
        let case = draw(seed);
        let dir = tempfile::tempdir().unwrap();
        let lake = dir.path().join("lake");
        let mut config = EmulatorConfig {
            rate: 20.0,
            burst: 20,
            faults: case.faults.clone(),
            ..EmulatorConfig::generated(case.findings, 500 + seed)
        };
        if let sechub_export::emulator::query::Dataset::Generated { generator, .. } =
            &mut config.dataset
        {
            generator.shared_ids = case.shared_ids;
        }
        let emulator = start_emulator(config).await;
        let (max_shards, part_rows) = (case.max_shards.to_string(), case.part_rows.to_string());
        let mut flags = vec!["--rate", "20", "--burst", "20", "--max-shards", &max_shards];
        flags.extend(["--part-rows", &part_rows]);
        if case.trust {
            flags.push("--trust-id-order");
        }
        for &(point, passes) in &case.crashes {
            let mut run = export_command(&emulator.url(), &lake, "prop", &flags);
            run.env("FAILPOINTS", format!("{point}={passes}*off->return"));
            let out = finish(run).await;
            if out.output.status.signal() == Some(libc::SIGABRT) {
                *fired.entry(point).or_insert(0) += 1;
                continue;
            }
            // The job ended before the crash point's pass came: complete, or a loud failure.
            assert!(
                out.code() == 0 || out.stderr().contains("error: "),
                "seed {seed} {case:?}: {}",
                out.stderr()
            );
        }
        let out = finish(export_command(&emulator.url(), &lake, "prop", &flags)).await;
        if out.code() != 0 {
            // Loud is allowed; silent is not: one error line saying what to do.
            assert!(
                out.stderr().lines().any(|l| l.starts_with("error: ")),
                "seed {seed} {case:?}: exit {} without an error line: {}",
                out.code(),
                out.stderr()
            );
            continue;
        }
        let expected = dir.path().join("expected.ndjson");
        let mut generate = command(None);
        generate.args(["generate", "--findings", &case.findings.to_string()]);
        generate.args(["--seed", &(500 + seed).to_string()]);
        if case.shared_ids {
            generate.arg("--shared-ids");
        }
        std::fs::write(&expected, run(generate).ok()).unwrap();
        let report = check_lake(&lake, &expected, true);
        assert_eq!(
            report["rows"], case.findings,
            "seed {seed} {case:?}: {report}"
        );
        assert_eq!(
            report["distinct_ids"], case.findings,
            "seed {seed} {case:?}: {report}"
        );
        assert_eq!(report["missing_count"], 0, "seed {seed} {case:?}: {report}");
        assert_eq!(
            report["duplicated_count"], 0,
            "seed {seed} {case:?}: {report}"
        );
        assert_eq!(
            report["byte_mismatches"], 0,
            "seed {seed} {case:?}: {report}"
        );
    }
    if cases >= 8 {
        assert!(!fired.is_empty(), "no crash point fired over {cases} seeds");
    }
}
