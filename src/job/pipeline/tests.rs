//! The pipeline against the in-memory store and a scripted page source: parts then checkpoint,
//! a crash between them, a stop at a part boundary, a source failure mid-part; every finding
//! exactly once after the resume.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::*;
use crate::encode::asff::ASFF;
use crate::error::Error;
use crate::request::test_identity;
use crate::sink::memory::MemoryStore;
use crate::sink::ObjectStore;
use crate::source::retry::RetryPolicy;
use crate::source::{Pace, PageSource};

const JOB: &str = "job";
const PAGES: usize = 10;
const PER_PAGE: usize = 10;

/// Serves `PAGES` pages of `PER_PAGE` findings, chained by `t<n>` tokens; can fail or cancel
/// once when asked for a given page index.
#[derive(Default)]
struct Script {
    /// Put before every finding id (one chain's findings apart from another's).
    prefix: String,
    fail_at: Mutex<Option<usize>>,
    cancel_at: Mutex<Option<(usize, Cancel)>>,
}

#[async_trait::async_trait]
impl PageSource for Script {
    async fn attempt(&self, token: Option<&str>, number: u64) -> crate::Result<Page> {
        let index: usize = token.map_or(0, |t| t[1..].parse().unwrap());
        if self
            .fail_at
            .lock()
            .unwrap()
            .take_if(|at| *at == index)
            .is_some()
        {
            return Err(Error::Rejected {
                page: number,
                message: "scripted failure".into(),
            });
        }
        if let Some((_, cancel)) = self
            .cancel_at
            .lock()
            .unwrap()
            .take_if(|(at, _)| *at == index)
        {
            cancel.cancel("scripted stop");
        }
        let findings: Vec<String> = (0..PER_PAGE)
            .map(|j| {
                let prefix = &self.prefix;
                format!(r#"{{"Id":"{prefix}f{index}-{j}","UpdatedAt":"2026-01-01T00:00:00Z"}}"#)
            })
            .collect();
        let next = if index + 1 < PAGES {
            format!(r#","NextToken":"t{}""#, index + 1)
        } else {
            String::new()
        };
        let body = format!(r#"{{"Findings":[{}]{next}}}"#, findings.join(","));
        Ok(Page::parse(number, body, 0).unwrap())
    }
}

struct Fixture {
    store: Arc<MemoryStore>,
    /// The script of chain 0.
    script: Arc<Script>,
    /// Every chain's script.
    scripts: Vec<Arc<Script>>,
}

impl Fixture {
    async fn new() -> Fixture {
        Self::sharded(0).await
    }

    /// A job of `shards` shards (0: unsharded), each chain serving its own findings.
    async fn sharded(shards: usize) -> Fixture {
        let store = Arc::new(MemoryStore::new());
        let identity = test_identity(serde_json::json!({}));
        let now = chrono::Utc::now();
        let mut checkpoint = Checkpoint::new(JOB.into(), identity.freeze(now), now);
        checkpoint.shards = (0..shards)
            .map(|_| super::super::checkpoint::ShardCursor {
                id_filter: Vec::new(),
                ..Default::default()
            })
            .collect();
        let dyn_store: Arc<dyn ObjectStore> = store.clone();
        CheckpointStore::new(dyn_store, JOB)
            .commit(&checkpoint)
            .await
            .unwrap();
        let scripts: Vec<Arc<Script>> = (0..shards.max(1))
            .map(|n| {
                Arc::new(Script {
                    prefix: format!("s{n}-"),
                    ..Script::default()
                })
            })
            .collect();
        Fixture {
            store,
            script: scripts[0].clone(),
            scripts,
        }
    }

    /// One run from the stored checkpoint, parts of `part_rows`, each chain served by its own
    /// script.
    async fn run(&self, part_rows: u64, cancel: &Cancel) -> crate::Result<RunSummary> {
        self.run_chains(part_rows, cancel, |index, start, limiter| Chain {
            index,
            source: PacedSource::new(
                self.scripts[index].clone(),
                limiter.clone(),
                RetryPolicy::default(),
            ),
            start,
            prefetched: Vec::new(),
            id_filter: Vec::new(),
            pairing: None,
        })
        .await
    }

    /// One run from the stored checkpoint with the chains `chain` makes of each open chain
    /// (index, start token) under one limiter.
    async fn run_chains(
        &self,
        part_rows: u64,
        cancel: &Cancel,
        chain: impl Fn(usize, Option<String>, &crate::source::Limiter) -> Chain,
    ) -> crate::Result<RunSummary> {
        let store: Arc<dyn ObjectStore> = self.store.clone();
        let mut checkpoints = CheckpointStore::new(store.clone(), JOB);
        let checkpoint = checkpoints.load().await?.expect("checkpoint exists");
        let lock = JobLock::acquire(store.clone(), JOB).await?;
        let limiter = Pace::new(1e6, 1000).unwrap().limiter();
        let chains = checkpoint
            .open_chains()
            .into_iter()
            .map(|(index, start)| chain(index, start, &limiter))
            .collect();
        let mut target = Target {
            parts: JobParts::new(store, "findings", &checkpoint.export_date, JOB),
            checkpoints,
            lock: &lock,
        };
        let options = PartOptions {
            part_rows,
            compression: Compression::Zstd,
        };
        let mut observers = Observers::new();
        let result = run(
            chains,
            &ASFF,
            &mut target,
            checkpoint,
            options,
            cancel,
            &mut observers,
        )
        .await;
        lock.release().await;
        result
    }

    async fn checkpoint(&self) -> Checkpoint {
        let store: Arc<dyn ObjectStore> = self.store.clone();
        CheckpointStore::new(store, JOB)
            .load()
            .await
            .unwrap()
            .unwrap()
    }

    /// Finding id -> how many rows hold it, over every part in the store.
    async fn ids_in_parts(&self) -> BTreeMap<String, usize> {
        let mut ids = BTreeMap::new();
        for key in self
            .store
            .keys()
            .into_iter()
            .filter(|k| k.ends_with(".parquet"))
        {
            let (body, _): (Bytes, String) = self.store.get(&key).await.unwrap().unwrap();
            let reader = ParquetRecordBatchReaderBuilder::try_new(body)
                .unwrap()
                .build()
                .unwrap();
            for batch in reader {
                let batch = batch.unwrap();
                let column = batch.column_by_name("id").unwrap();
                let column = column
                    .as_any()
                    .downcast_ref::<arrow::array::StringArray>()
                    .unwrap();
                for id in column.iter().flatten() {
                    *ids.entry(id.to_string()).or_default() += 1;
                }
            }
        }
        ids
    }

    async fn assert_each_finding_exactly_once(&self) {
        let all = self.scripts.len() * PAGES * PER_PAGE;
        let ids = self.ids_in_parts().await;
        assert_eq!(ids.len(), all, "missing findings");
        assert!(ids.values().all(|n| *n == 1), "duplicated: {ids:?}");
        let checkpoint = self.checkpoint().await;
        assert_eq!(checkpoint.state, JobState::Complete);
        assert_eq!(checkpoint.exported_count, all as u64);
    }
}

#[tokio::test]
async fn pages_become_parts_of_whole_pages_each_followed_by_its_checkpoint() {
    let fixture = Fixture::new().await;
    let summary = fixture.run(30, &Cancel::new()).await.unwrap();
    assert_eq!(summary.end, RunEnd::Complete);
    assert_eq!((summary.rows_this_run, summary.parts_this_run), (100, 4));
    fixture.assert_each_finding_exactly_once().await;
    let writes: Vec<String> = fixture
        .store
        .writes()
        .into_iter()
        .filter(|k| !k.ends_with("lock.json"))
        .collect();
    let kinds: Vec<&str> = writes
        .iter()
        .map(|k| {
            if k.ends_with(".parquet") {
                "part"
            } else {
                "checkpoint"
            }
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "checkpoint",
            "checkpoint",
            "part",
            "checkpoint",
            "part",
            "checkpoint",
            "part",
            "checkpoint",
            "part",
            "checkpoint"
        ]
    );
    let again = fixture.run(30, &Cancel::new()).await.unwrap();
    assert_eq!(again.end, RunEnd::AlreadyComplete);
}

#[tokio::test]
async fn a_crash_between_part_and_checkpoint_refetches_the_pages_and_overwrites_the_part() {
    let fixture = Fixture::new().await;
    // The run's claim and its first part's commit land; the second part's commit fails.
    fixture.store.fail_write("checkpoint.json", 2);
    let err = fixture.run(30, &Cancel::new()).await.unwrap_err();
    assert!(matches!(err, Error::Destination { .. }), "{err}");
    let checkpoint = fixture.checkpoint().await;
    assert_eq!((checkpoint.exported_count, checkpoint.next_part), (30, 2));
    assert_eq!(checkpoint.next_token.as_deref(), Some("t3"));
    let stray = fixture
        .store
        .keys()
        .iter()
        .filter(|k| k.ends_with("part-000002.parquet"))
        .count();
    assert_eq!(
        stray, 1,
        "the part written before the failed commit is there"
    );
    let summary = fixture.run(30, &Cancel::new()).await.unwrap();
    assert_eq!((summary.end, summary.rows_this_run), (RunEnd::Complete, 70));
    fixture.assert_each_finding_exactly_once().await;
}

#[tokio::test]
async fn a_cancel_stops_at_a_part_boundary_and_the_next_run_completes() {
    let fixture = Fixture::new().await;
    let cancel = Cancel::new();
    *fixture.script.cancel_at.lock().unwrap() = Some((4, cancel.clone()));
    let summary = fixture.run(30, &cancel).await.unwrap();
    assert_eq!(summary.end, RunEnd::Stopped("scripted stop".into()));
    let checkpoint = fixture.checkpoint().await;
    assert_eq!(checkpoint.state, JobState::Running);
    assert_eq!(
        checkpoint.exported_count % PER_PAGE as u64,
        0,
        "whole pages only"
    );
    assert!(checkpoint.exported_count >= 30 && checkpoint.exported_count <= 50);
    let resumed = fixture.run(30, &Cancel::new()).await.unwrap();
    assert_eq!(resumed.end, RunEnd::Complete);
    fixture.assert_each_finding_exactly_once().await;
}

#[tokio::test]
async fn a_source_failure_mid_part_commits_the_pages_before_it_then_reports_the_error() {
    let fixture = Fixture::new().await;
    *fixture.script.fail_at.lock().unwrap() = Some(4);
    let err = fixture.run(30, &Cancel::new()).await.unwrap_err();
    assert!(matches!(err, Error::Rejected { .. }), "{err}");
    let checkpoint = fixture.checkpoint().await;
    assert_eq!(checkpoint.exported_count, 40, "pages 0-3 are durable");
    assert_eq!(checkpoint.parts.len(), 2, "a full part and the partial one");
    assert_eq!(checkpoint.next_token.as_deref(), Some("t4"));
    let resumed = fixture.run(30, &Cancel::new()).await.unwrap();
    assert_eq!(resumed.rows_this_run, 60);
    fixture.assert_each_finding_exactly_once().await;
}

#[tokio::test]
async fn a_run_claims_the_job_before_deleting_strays_so_a_previous_holder_cannot_commit() {
    let fixture = Fixture::new().await;
    let store: Arc<dyn ObjectStore> = fixture.store.clone();
    // A previous holder (frozen, say) loaded the checkpoint and uploaded part 1 uncommitted.
    let mut previous = CheckpointStore::new(store.clone(), JOB);
    let mut stale = previous.load().await.unwrap().unwrap();
    let stray = crate::sink::layout::part_key("findings", &stale.export_date, JOB, 1);
    store
        .put(&stray, Bytes::from_static(b"old"), "x")
        .await
        .unwrap();

    fixture.run(30, &Cancel::new()).await.unwrap();
    let log = fixture.store.writes();
    let uploaded = log.iter().position(|k| *k == stray).unwrap();
    let deleted = log
        .iter()
        .position(|k| *k == format!("delete {stray}"))
        .unwrap();
    assert!(
        log[uploaded..deleted]
            .iter()
            .any(|k| k.ends_with("checkpoint.json")),
        "the claim is committed before the stray part is deleted: {log:?}"
    );
    assert_eq!(fixture.checkpoint().await.owner_generation, 1);

    stale.exported_count = 999;
    let err = previous.commit(&stale).await.unwrap_err();
    assert!(matches!(err, Error::JobConflict { .. }), "{err}");
    fixture.assert_each_finding_exactly_once().await;
}

#[tokio::test]
async fn shards_fill_parts_together_and_a_failing_shard_resumes_where_its_parts_end() {
    let fixture = Fixture::sharded(3).await;
    *fixture.scripts[1].fail_at.lock().unwrap() = Some(6);
    let err = fixture.run(40, &Cancel::new()).await.unwrap_err();
    assert!(matches!(err, Error::Rejected { .. }), "{err}");
    let checkpoint = fixture.checkpoint().await;
    assert_eq!(checkpoint.state, JobState::Running);
    let shard = &checkpoint.shards[1];
    assert!(!shard.done, "the failed shard is not finished");
    let durable = |prefix: &str, ids: &BTreeMap<String, usize>| {
        ids.keys().filter(|id| id.starts_with(prefix)).count()
    };
    let ids = fixture.ids_in_parts().await;
    let resumes_at: usize = shard
        .next_token
        .as_deref()
        .map_or(0, |t| t[1..].parse().unwrap());
    assert_eq!(
        durable("s1-", &ids),
        resumes_at * PER_PAGE,
        "shard 1's durable pages end where its token resumes"
    );
    assert!(resumes_at <= 6);
    let resumed = fixture.run(40, &Cancel::new()).await.unwrap();
    assert_eq!(resumed.end, RunEnd::Complete);
    fixture.assert_each_finding_exactly_once().await;
    assert!(fixture.checkpoint().await.shards.iter().all(|s| s.done));
}

#[tokio::test]
async fn a_shard_page_outside_its_id_filter_is_refused_before_it_is_written() {
    let fixture = Fixture::sharded(2).await;
    // Chain 1 claims Ids starting "s1-" but its service sends "s0-..." ones: the filter was ignored.
    let err = fixture
        .run_chains(1_000, &Cancel::new(), |index, start, limiter| Chain {
            index,
            source: PacedSource::new(
                fixture.scripts[0].clone(),
                limiter.clone(),
                RetryPolicy::default(),
            ),
            start,
            prefetched: Vec::new(),
            id_filter: vec![
                serde_json::json!({"Value": format!("s{index}-"), "Comparison": "PREFIX"}),
            ],
            pairing: None,
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("outside its Id filter"), "{err}");
    let ids = fixture.ids_in_parts().await;
    assert!(
        ids.keys().all(|id| id.starts_with("s0-")),
        "no page of chain 1 was written"
    );
}
