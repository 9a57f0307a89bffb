//! sechub-export: bulk-export AWS Security Hub findings into an Athena-ready Parquet lake, at the
//! GetFindings quota, resumably, without losing or duplicating a finding.

pub mod athena;
pub mod aws;
pub mod checkpoint;
pub mod cli;
pub mod demo;
pub mod emulator;
pub mod encode;
pub mod error;
pub mod export;
pub mod layout;
pub mod page;
pub mod pipeline;
pub mod progress;
pub mod request;
pub mod retry;
pub mod sink;
pub mod source;
pub mod status;
pub mod verify;

pub use error::{Error, ExitCode, Result};
