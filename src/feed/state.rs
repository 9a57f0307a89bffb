//! A feed family's one state object, `_sechub_export/feeds/<family>/state.json`: what the family
//! is bound to, its watermark, the run in progress and the runs done. Every write is
//! conditional (create-only, then `If-Match` the version read), so two schedulers that fire at
//! once cannot both start a window.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::request::Api;
use crate::sink::{layout, put_if_or_own, CondPut, ObjectStore, Precondition};
use crate::streams::StreamArgs;

/// Format of the state object this build writes.
pub const STATE_VERSION: u32 = 1;
/// Complete runs kept in the state object (older ones keep their checkpoints and manifests).
const RUNS_KEPT: usize = 100;

/// What a family is bound to: the same family keeps one watermark, so the same feed command
/// always continues it and any other request is refused under its name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FamilyIdentity {
    /// Source API.
    pub api: Api,
    /// The caller's account.
    pub account_id: String,
    /// The caller's Region.
    pub region: String,
    /// Accounts and Regions as given (the stream flags).
    pub streams: StreamArgs,
    /// The user's filters as given (each run adds its `UpdatedAt` window).
    pub filters_as_given: Value,
    /// Destination URL, normalised.
    #[serde(deserialize_with = "crate::sink::deserialize_normalized_url")]
    pub destination: String,
}

impl FamilyIdentity {
    /// The identity without what does not change what the family exports (how many streams
    /// run at once): what its name hashes and what a run is compared on.
    fn canonical(&self) -> FamilyIdentity {
        let mut identity = self.clone();
        identity.streams.max_streams = 0;
        identity
    }

    /// The same identity with the destination stored as `url`.
    pub(crate) fn at(&self, url: &str) -> FamilyIdentity {
        FamilyIdentity {
            destination: url.to_string(),
            ..self.clone()
        }
    }

    /// The default family name: account, Region and a short hash of the rest.
    pub fn default_family(&self) -> String {
        let bytes = serde_json::to_vec(&self.canonical()).expect("identity serialises");
        let hash = hex::encode(&Sha256::digest(&bytes)[..5]);
        format!("{}-{}-{hash}", self.account_id, self.region)
    }

    /// The same family: everything but how many streams run at once.
    fn same_as(&self, other: &FamilyIdentity) -> bool {
        self.canonical() == other.canonical()
    }
}

/// A full snapshot or an incremental run (or a run's window read again).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    /// Every finding updated up to the window's end: catches changes that kept `UpdatedAt`.
    Snapshot,
    /// Findings updated in the window (the watermark minus the overlap, to the run's start).
    Incremental,
    /// A run's window read again because findings changed while the run read it.
    Repair,
}

impl std::fmt::Display for RunKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RunKind::Snapshot => "snapshot",
            RunKind::Incremental => "incremental",
            RunKind::Repair => "repair",
        })
    }
}

/// One run of the family: a job of its own over one `UpdatedAt` window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedRun {
    /// The run's job (`feed-<family>-<start>`).
    pub job_id: String,
    /// Snapshot or incremental.
    pub kind: RunKind,
    /// `UpdatedAt` from (inclusive; `None`: open, a snapshot).
    pub window_start: Option<DateTime<Utc>>,
    /// `UpdatedAt` to (inclusive): when the run started.
    pub window_end: DateTime<Utc>,
    /// Findings exported, once complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// When the run's job completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<DateTime<Utc>>,
    /// Times the window was read again because findings changed while it was read.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub repairs: u32,
    /// Whether the last read of the window saw nothing change (`None`: not known).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settled: Option<bool>,
    /// The scheduled invocation that started the run (a Step Functions execution's name; `None`
    /// from the command line): the invocation's later slices finish this run and start no other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_by: Option<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl FeedRun {
    /// The `n`th repair of this run: its window read again as a job of its own.
    pub fn repair(&self, n: u32) -> FeedRun {
        FeedRun {
            job_id: format!("{}-r{n}", self.job_id),
            kind: RunKind::Repair,
            repairs: 0,
            settled: None,
            rows: None,
            completed_at: None,
            ..self.clone()
        }
    }
}

/// The family's state object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedState {
    /// [`STATE_VERSION`] of the build that wrote it.
    pub format_version: u32,
    /// The family's name.
    pub family: String,
    /// What the family is bound to.
    pub identity: FamilyIdentity,
    /// The end of the newest complete run's window: the next incremental run reads from here
    /// (minus the overlap). `None` before the first run completes.
    pub watermark: Option<DateTime<Utc>>,
    /// The end of the newest complete snapshot's window.
    pub last_snapshot: Option<DateTime<Utc>>,
    /// The run started and not yet complete: the next run resumes it before anything else.
    pub current: Option<FeedRun>,
    /// Complete runs, oldest first (the newest [`RUNS_KEPT`]).
    pub runs: Vec<FeedRun>,
}

/// The state object as read, with the version a write must replace.
pub struct Stored {
    /// The state.
    pub state: FeedState,
    /// Its version (`None`: not written yet).
    etag: Option<String>,
}

impl FeedState {
    /// A family with no run yet.
    pub fn new(family: &str, identity: FamilyIdentity) -> FeedState {
        FeedState {
            format_version: STATE_VERSION,
            family: family.to_string(),
            identity,
            watermark: None,
            last_snapshot: None,
            current: None,
            runs: Vec::new(),
        }
    }

    /// Records `run` complete with `rows` (its `repairs` and `settled` set): the watermark
    /// moves to its window's end.
    pub fn complete(&mut self, mut run: FeedRun, rows: u64, now: DateTime<Utc>) {
        if self
            .current
            .as_ref()
            .is_some_and(|c| c.job_id == run.job_id)
        {
            self.current = None;
        }
        if self.runs.iter().any(|r| r.job_id == run.job_id) {
            return;
        }
        // A window whose reads never held still may miss an unchanged finding: the next run
        // reads it again (the same snapshot, or from the same watermark).
        if run.settled != Some(false) {
            self.watermark = self.watermark.max(Some(run.window_end));
            if run.kind == RunKind::Snapshot {
                self.last_snapshot = self.last_snapshot.max(Some(run.window_end));
            }
        }
        run.rows = Some(rows);
        run.completed_at = Some(now);
        self.runs.push(run);
        let excess = self.runs.len().saturating_sub(RUNS_KEPT);
        self.runs.drain(..excess);
    }
}

/// Reads a family's state object and its version, if it has one.
pub async fn read(store: &dyn ObjectStore, family: &str) -> Result<Option<(FeedState, String)>> {
    let key = layout::feed_state_key(family);
    let Some((body, etag)) = store.get(&key).await? else {
        return Ok(None);
    };
    let corrupt = |message: String| Error::CorruptState {
        job_id: format!("feed {family}"),
        location: store.location(&key),
        message,
    };
    let state: FeedState = serde_json::from_slice(&body).map_err(|e| {
        corrupt(format!(
            "not a feed state this build reads ({e}); restore it or use a new --family"
        ))
    })?;
    if state.format_version > STATE_VERSION || state.family != family {
        return Err(corrupt(format!(
            "written by a newer build or for family {:?}; upgrade sechub-export or use a new --family",
            state.family
        )));
    }
    Ok(Some((state, etag)))
}

impl Stored {
    /// The family's state, or a new one when it has none; refused when it was made for another
    /// request.
    pub async fn load(
        store: &dyn ObjectStore,
        family: &str,
        identity: &FamilyIdentity,
    ) -> Result<Stored> {
        let Some((state, etag)) = read(store, family).await? else {
            return Ok(Stored {
                state: FeedState::new(family, identity.clone()),
                etag: None,
            });
        };
        if !state.identity.same_as(identity) {
            return Err(Error::JobConflict {
                job_id: format!("feed {family}"),
                message: "the family was created with another request (accounts, Regions, filters, destination or caller); run it with its original flags, or name a new family with --family".into(),
            });
        }
        Ok(Stored {
            state,
            etag: Some(etag),
        })
    }

    /// Writes `state` over the version read; `false` when another run wrote it since (nothing
    /// written).
    pub async fn save(&mut self, store: &dyn ObjectStore, state: FeedState) -> Result<bool> {
        let key = layout::feed_state_key(&state.family);
        let body = Bytes::from(serde_json::to_vec_pretty(&state).expect("state serialises"));
        let precondition = match &self.etag {
            Some(etag) => Precondition::Matches(etag.clone()),
            None => Precondition::Absent,
        };
        match put_if_or_own(store, &key, body, precondition).await? {
            CondPut::Written(etag) => {
                self.etag = Some(etag);
                self.state = state;
                Ok(true)
            }
            CondPut::PreconditionFailed => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests;
