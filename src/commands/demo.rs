//! `demo`: an in-process emulator feeds the real export job into a local lake, then the lake is
//! read back and summarised.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;

use arrow::array::{Array, StringArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;

use crate::aws::AwsSettings;
use crate::emulator::{Emulator, EmulatorConfig};
use crate::encode::Compression;
use crate::error::{Error, Result};
use crate::job::observer::{Observers, TerminalProgress};
use crate::job::{self, Cancel, RunSummary};
use crate::plan::{ExportPlan, ExportRequest};
use crate::request::Api;
use crate::sink::layout;
use crate::sink::local::LocalStore;
use crate::sink::ObjectStore;
use crate::streams::StreamArgs;

/// The demo's job id (`--api v1`).
pub const DEMO_JOB: &str = "demo";
/// The demo's job id with `--api v2`, so both demos can share one lake.
pub const DEMO_JOB_OCSF: &str = "demo-ocsf";

/// The job id of the demo of `api`.
fn demo_job(api: Api) -> &'static str {
    match api {
        Api::GetFindings => DEMO_JOB,
        Api::GetFindingsV2 => DEMO_JOB_OCSF,
    }
}

/// The table folder of `api`'s findings.
fn table_dir(api: Api) -> &'static str {
    api.format().table().dir
}

/// The severity column of `api`'s table.
fn severity_column(api: Api) -> &'static str {
    match api {
        Api::GetFindings => "severity_label",
        Api::GetFindingsV2 => "severity",
    }
}

/// Demo settings (the `demo` flags).
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Findings the emulator holds.
    #[arg(long, default_value_t = 20_000)]
    pub findings: u64,
    /// Quota of the emulator and rate of the export (use 3 to watch the real pace).
    #[arg(long, default_value_t = 50.0)]
    pub rate: f64,
    /// Burst of the emulator's quota and of the export (the service allows 6).
    #[arg(long, default_value_t = 100)]
    pub burst: u32,
    /// Folder of the demo lake.
    #[arg(long, default_value = "sechub-demo-lake")]
    pub destination: std::path::PathBuf,
    /// Seed of the generated findings.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The API exported: v1 (GetFindings, ASFF, table findings) or v2 (GetFindingsV2, OCSF,
    /// table findings_ocsf).
    #[arg(long, default_value = "v1")]
    pub api: Api,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Runs the demo and returns the summary text.
pub async fn demo(args: DemoArgs) -> Result<String> {
    let config = EmulatorConfig {
        rate: args.rate,
        burst: args.burst,
        ..EmulatorConfig::generated(args.findings, args.seed)
    };
    let emulator = Emulator::start(config, SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .map_err(|e| Error::Internal(format!("cannot start the emulator on 127.0.0.1: {e}")))?;
    let root = std::path::absolute(&args.destination)
        .map_err(|e| Error::Usage(format!("invalid demo folder: {e}")))?;
    let api = args.api;
    reset_demo_job(&root, api).await?;
    let request = ExportRequest {
        destination: root.display().to_string(),
        aws: AwsSettings {
            region: Some("us-east-1".into()),
            profile: None,
            endpoint_url: Some(emulator.url()),
            demo_credentials: true,
        },
        streams: StreamArgs::default(),
        api,
        filters: None,
        scopes: None,
        allow_unknown_filters: false,
        job_id: Some(demo_job(api).into()),
        rate: args.rate,
        burst: args.burst,
        max_shards: crate::job::shards::MAX_SHARDS,
        trust_id_order: false,
        progress_parameter: Some("none".into()),
        part_rows: (args.findings / 4).clamp(100, 50_000),
        compression: Compression::Zstd,
        max_duration: None,
        restart: false,
        // The emulator is the demo's own: counting with a temporary insight shows the ETA.
        total: crate::plan::TotalMode::Insight,
    };
    let mut plan = ExportPlan::new(&request)?;
    plan.aws.demo_credentials = true;
    eprintln!(
        "demo: emulator at {} serving {} findings at {} requests/s (burst {}); exporting to {}",
        emulator.url(),
        args.findings,
        args.rate,
        args.burst,
        root.display()
    );
    let cancel = Cancel::new();
    let ctrl_c = super::cancel_on_signals(&cancel);
    let mut observers = Observers::new();
    observers.push(TerminalProgress::new(args.quiet));
    let summary = job::run(&plan, observers, &cancel).await;
    ctrl_c.abort();
    let summary = summary?;
    let stats = emulator.stats();
    emulator.stop().await;
    let lake = read_lake(&root, api)?;
    Ok(report(
        api,
        &summary,
        &lake,
        &root,
        (stats.throttled_quota, stats.requests),
    ))
}

/// Removes the previous demo job's parts and state, and nothing else.
async fn reset_demo_job(root: &Path, api: Api) -> Result<()> {
    let store = LocalStore::new(root);
    let job = demo_job(api);
    for object in store.list(&format!("{}/", table_dir(api))).await? {
        if layout::part_number(&object.key, job).is_some() {
            store.delete(&object.key).await?;
        }
    }
    store.delete(&layout::checkpoint_key(job)).await?;
    store.delete(&layout::manifest_key(job)).await
}

/// What the demo lake holds, read back from the Parquet files.
#[derive(Debug, Default)]
pub struct LakeSummary {
    /// Rows in every part.
    pub rows: u64,
    /// Part files.
    pub files: u64,
    /// Their bytes.
    pub parquet_bytes: u64,
    /// Bytes of the raw finding JSON they hold.
    pub json_bytes: u64,
    /// Rows per severity label.
    pub by_severity: BTreeMap<String, u64>,
    /// Rows per product name.
    pub by_product: BTreeMap<String, u64>,
}

/// Reads every demo part with the Parquet reader and tallies it.
pub fn read_lake(root: &Path, api: Api) -> Result<LakeSummary> {
    let mut summary = LakeSummary::default();
    let mut files = Vec::new();
    collect_parts(&root.join(table_dir(api)), demo_job(api), &mut files).map_err(|e| {
        Error::destination(
            root.display(),
            "cannot read the lake back",
            Some(Box::new(e) as _),
        )
    })?;
    for path in files {
        tally_part(&path, api, &mut summary)?;
    }
    Ok(summary)
}

/// Adds one part's rows to the summary.
fn tally_part(path: &Path, api: Api, summary: &mut LakeSummary) -> Result<()> {
    let read_error = |e: parquet::errors::ParquetError| {
        Error::destination(path.display(), "unreadable Parquet", Some(Box::new(e) as _))
    };
    summary.files += 1;
    summary.parquet_bytes += std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let file = std::fs::File::open(path)
        .map_err(|e| Error::destination(path.display(), "cannot open", Some(Box::new(e) as _)))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(read_error)?;
    let wanted = [severity_column(api), "product_name", "finding_json"];
    let columns = &api.format().table().columns;
    let indexes = wanted.map(|name| columns.iter().position(|c| c.name == name).expect("known"));
    let mask = ProjectionMask::roots(builder.parquet_schema(), indexes);
    for batch in builder.with_projection(mask).build().map_err(read_error)? {
        let batch = batch.map_err(|e| Error::Internal(e.to_string()))?;
        let column = |name: &str| {
            batch
                .column_by_name(name)
                .and_then(|c| c.as_any().downcast_ref::<StringArray>().cloned())
        };
        let (Some(severity), Some(product), Some(json)) = (
            column(severity_column(api)),
            column("product_name"),
            column("finding_json"),
        ) else {
            return Err(Error::Internal(
                "unexpected column types in the demo lake".into(),
            ));
        };
        summary.rows += batch.num_rows() as u64;
        let label = |array: &StringArray, i: usize| {
            if array.is_null(i) {
                "(none)"
            } else {
                array.value(i)
            }
            .to_string()
        };
        for i in 0..batch.num_rows() {
            *summary.by_severity.entry(label(&severity, i)).or_default() += 1;
            *summary.by_product.entry(label(&product, i)).or_default() += 1;
            summary.json_bytes += json.value(i).len() as u64;
        }
    }
    Ok(())
}

fn collect_parts(dir: &Path, job: &str, out: &mut Vec<std::path::PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_parts(&path, job, out)?;
        } else if layout::part_number(&path.to_string_lossy(), job).is_some() {
            out.push(path);
        }
    }
    out.sort();
    Ok(())
}

fn report(
    api: Api,
    run: &RunSummary,
    lake: &LakeSummary,
    root: &Path,
    (throttled, requests): (u64, u64),
) -> String {
    let mut text = String::new();
    let ratio = 100.0 * lake.parquet_bytes as f64 / lake.json_bytes.max(1) as f64;
    let _ = writeln!(text, "\n{}", run.line());
    let _ = writeln!(text, "\nLanded in {}:", root.join(table_dir(api)).display());
    let _ = writeln!(text, "  rows            {}", lake.rows);
    let _ = writeln!(text, "  parts           {}", lake.files);
    let _ = writeln!(
        text,
        "  parquet bytes   {} ({ratio:.1}% of the {} bytes of raw finding JSON, ZSTD)",
        lake.parquet_bytes, lake.json_bytes
    );
    let _ = writeln!(
        text,
        "  requests        {requests} {api} calls, {throttled} throttled by the quota"
    );
    let _ = writeln!(text, "\nBy severity:");
    for (label, count) in &lake.by_severity {
        let _ = writeln!(text, "  {label:<15} {count}");
    }
    let _ = writeln!(text, "\nBy product:");
    for (name, count) in &lake.by_product {
        let _ = writeln!(text, "  {name:<20} {count}");
    }
    let glob = root.join(table_dir(api)).join("*/*.parquet");
    let query = format!(
        "SELECT {}, count(*) FROM read_parquet('{}', hive_partitioning=true) GROUP BY 1 ORDER BY 2 DESC",
        severity_column(api),
        glob.display()
    );
    let _ = writeln!(
        text,
        "\nQuery it with the DuckDB CLI (https://duckdb.org/docs/installation):"
    );
    let _ = writeln!(text, "  duckdb -c \"{query}\"");
    let _ = writeln!(
        text,
        "or with Python (python3 -m pip install duckdb):\n  python3 -c \"import duckdb; duckdb.sql(\\\"{query}\\\").show()\""
    );
    let _ = writeln!(
        text,
        "\nExport from a real account (credentials from the standard AWS chain):"
    );
    let _ = writeln!(
        text,
        "  sechub-export export --region us-east-1 --destination s3://YOUR-BUCKET/securityhub{}",
        match api {
            Api::GetFindings => "",
            Api::GetFindingsV2 => " --api v2",
        }
    );
    text
}
