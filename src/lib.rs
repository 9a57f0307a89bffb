//! sechub-export: bulk-export AWS Security Hub findings into an Athena-ready Parquet lake, at the
//! GetFindings quota, resumably, without losing or duplicating a finding.
//!
//! # Module map
//!
//! Data flows one way through stages with narrow seams:
//!
//! ```text
//! plan (ExportPlan: every offline check)
//!   -> job::fanout (one stream per account and Region; streams resolves them)
//!   -> job (identity, checkpoint, lock, observers, cancel; shards when calls are slow)
//!        -> pipeline: source (PageSource + the one limiter/retry loop)
//!                     -> encode (Format -> Arrow batch -> Parquet part)
//!                     -> sink (ObjectStore: S3, local, memory) -> checkpoint commit
//! feed (a family of scheduled runs, one job per UpdatedAt window) -> plan -> job
//! commands (export, feed, status, verify, athena-ddl, deploy, demo, emulator, generate): thin, over the stages
//! ```
//!
//! - [`plan`] is the validated, serializable export plan, from flags or an event.
//! - [`job`] is one job's run: checkpoint, lock, manifest, pipeline, observers, cancellation;
//!   `job::total` counts a new job's findings with Security Hub (progress, ETA, and a small
//!   stream read as one chain), `job::shards` splits a slow stream into shards on Id prefixes,
//!   and `job::fanout` runs a job over many accounts and Regions as one job per stream.
//! - [`feed`] keeps the lake current: scheduled runs, each a job over the `UpdatedAt` window
//!   since the family's watermark, with periodic snapshots, under one conditional state object
//!   (`feed::map` plans a run's job for a Distributed Map).
//! - [`streams`] chooses those accounts and Regions: the flags, their resolution (members,
//!   enabled Regions) and each account's cross-Region aggregation.
//! - [`source`] has [`source::PageSource`] (one attempt at one page of one API: GetFindings
//!   or GetFindingsV2) and [`source::PacedSource`], the one rate-limited retry loop.
//! - [`encode`] has [`encode::Format`] (ASFF `findings`, OCSF `findings_ocsf`), the
//!   column-driven batch builder and Parquet parts.
//! - [`sink`] has [`sink::ObjectStore`] with S3, local and in-memory stores, the key layout,
//!   and [`sink::open_store`], the one place that decides what a destination is
//!   ([`sink::local_path`] gives every spelling of a folder one path, so one job).
//! - [`request`] holds the API, its filters (the ASFF and the OCSF dialect), the frozen
//!   request and the job identity.
//! - [`source::counts`] asks Security Hub for its own counts (GetFindingStatisticsV2, or a
//!   temporary custom insight), and [`reconcile`] compares them with the lake for
//!   `verify --source` (and `--list-missing`, which reads differing accounts again).
//! - [`athena`] generates the DDL from a format's table.
//! - [`aws`], [`error`] and [`crash`] hold AWS configuration and SDK failures, the one error
//!   enum with its exit codes, and crash points for the reliability suite.
//! - [`lambda`] serves Lambda invocations, each a time-boxed slice of a job.
//! - [`commands`] and [`cli`] are what the binary runs ([`commands::permissions`] derives an
//!   export's least-privilege IAM policy from its flags); the default `emulator` feature adds
//!   the local Security Hub emulator (the `sechub-emulator` crate of this workspace, written
//!   from the API reference and never depending on this crate), the demo and the generator;
//!   the default `deploy` feature adds `deploy` (CloudFormation and Athena).
#![warn(missing_docs, unreachable_pub)]

pub mod athena;
pub mod aws;
pub mod cli;
pub mod commands;
pub mod crash;
/// The local Security Hub emulator: the `sechub-emulator` crate, which shares no code with this
/// one (see its documentation).
#[cfg(feature = "emulator")]
pub use sechub_emulator as emulator;
pub mod encode;
pub mod error;
pub mod feed;
pub mod job;
pub mod lambda;
pub mod plan;
pub mod reconcile;
pub mod request;
pub mod sink;
pub mod source;
pub mod streams;

pub use error::{Error, ExitCode, Result};
