//! The parts of one job in one table: written under deterministic keys with their SHA-256, and
//! the ones beyond a checkpoint removed before a resumed run writes them again.

use std::sync::Arc;

use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::{layout, ObjectStore, PARQUET_CONTENT_TYPE};
use crate::error::Result;

/// A part that is durable in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenPart {
    /// Its key below the destination.
    pub key: String,
    /// Its size.
    pub bytes: u64,
    /// SHA-256 of its bytes, hex.
    pub sha256: String,
}

/// Where one job's parts go: `<table>/export_date=<date>/<job>-part-NNNNNN.parquet`.
pub struct JobParts {
    store: Arc<dyn ObjectStore>,
    table_dir: &'static str,
    export_date: String,
    job_id: String,
}

impl JobParts {
    /// The parts of `job_id` in partition `export_date` of the table in `table_dir`.
    pub fn new(
        store: Arc<dyn ObjectStore>,
        table_dir: &'static str,
        export_date: &str,
        job_id: &str,
    ) -> Self {
        JobParts {
            store,
            table_dir,
            export_date: export_date.to_string(),
            job_id: job_id.to_string(),
        }
    }

    /// Writes part `number` durably under its deterministic key (replacing a stray copy).
    pub async fn write(&self, number: u64, body: Vec<u8>) -> Result<WrittenPart> {
        let key = layout::part_key(self.table_dir, &self.export_date, &self.job_id, number);
        let written = WrittenPart {
            sha256: hex::encode(Sha256::digest(&body)),
            bytes: body.len() as u64,
            key,
        };
        self.store
            .put(&written.key, Bytes::from(body), PARQUET_CONTENT_TYPE)
            .await?;
        Ok(written)
    }

    /// Deletes this job's parts numbered `first` and up: written by a run that died before its
    /// checkpoint covered them. The resumed run writes them again from the checkpoint's token.
    pub async fn remove_from(&self, first: u64) -> Result<()> {
        let prefix = layout::partition_prefix(self.table_dir, &self.export_date);
        for object in self.store.list(&prefix).await? {
            if layout::part_number(&object.key, &self.job_id).is_some_and(|n| n >= first) {
                tracing::info!(
                    "removing {} (written after the last checkpoint; it is fetched again)",
                    object.key
                );
                self.store.delete(&object.key).await?;
            }
        }
        Ok(())
    }
}
