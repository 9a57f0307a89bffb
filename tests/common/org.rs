//! An organization's expected findings: what each emulator hub (account x Region) holds, and
//! where the rows of a lake came from.

use std::io::Write;
use std::path::{Path, PathBuf};

use sechub_export::emulator::hubs::hub_generator;
use serde_json::Value;

use super::lake_tool;

/// Writes the findings `account` holds in `region` (an emulator hub of `count`) as NDJSON.
pub fn hub_findings(path: &Path, seed: u64, account: &str, region: &str, count: u64) {
    let generator = hub_generator(seed, account, region);
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for index in 0..count {
        writeln!(out, "{}", generator.finding(index)).unwrap();
    }
}

/// The same findings as the OCSF documents GetFindingsV2 serves.
pub fn hub_findings_ocsf(path: &Path, seed: u64, account: &str, region: &str, count: u64) {
    let generator = hub_generator(seed, account, region);
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for index in 0..count {
        let document = sechub_export::emulator::ocsf::from_asff(&generator.finding_value(index));
        writeln!(out, "{document}").unwrap();
    }
}

/// Concatenates NDJSON files into one expectation.
pub fn concat(paths: &[PathBuf], out: &Path) -> PathBuf {
    let text: String = paths
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    std::fs::write(out, text).unwrap();
    out.to_path_buf()
}

/// Rows per `account/region` of the lake under `dir`, and rows whose finding names another
/// account or Region than the stream that fetched it.
pub fn sources(dir: &Path) -> (Value, u64) {
    let report = lake_tool(&["sources", dir.to_str().unwrap()]);
    (
        report["by_source"].clone(),
        report["wrong_source"].as_u64().unwrap(),
    )
}

/// The NDJSON of every hub of `accounts` x `regions` of an organization emulator (seed 9).
pub fn org_expected(dir: &Path, accounts: &[&str], regions: &[&str], per_hub: u64) -> PathBuf {
    let mut files = Vec::new();
    for account in accounts {
        for region in regions {
            let path = dir.join(format!("{account}-{region}.ndjson"));
            hub_findings(&path, 9, account, region, per_hub);
            files.push(path);
        }
    }
    concat(&files, &dir.join("expected.ndjson"))
}
