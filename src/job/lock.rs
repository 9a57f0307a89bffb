//! One run per job: an OS file lock for local destinations (released when the process dies), a
//! heartbeat lease object written with S3 conditional writes for S3 destinations.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::sink::layout;
use crate::sink::{put_if_or_own, CondPut, ObjectStore, Precondition};

/// How long an S3 lease lives without a heartbeat before another run may take it over.
const DEFAULT_LEASE: Duration = Duration::from_secs(60);

/// The lease length: 60 s, or `SECHUB_EXPORT_LEASE_SECS` (at least 4; tests shorten it so a
/// takeover does not take a minute). Every run of a job must use the same length.
pub fn lease_length() -> Duration {
    static LEASE: OnceLock<Duration> = OnceLock::new();
    *LEASE.get_or_init(|| {
        std::env::var("SECHUB_EXPORT_LEASE_SECS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(DEFAULT_LEASE, |secs| Duration::from_secs(secs.max(4)))
    })
}

/// How often a lease is renewed: four times per lease length.
fn heartbeat_interval() -> Duration {
    lease_length() / 4
}

/// The content of an S3 lease object.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Lease {
    host: String,
    pid: u32,
    /// A random id of the process: a later process on the same host with a recycled pid (a
    /// Lambda sandbox after a timeout) tells a dead predecessor's lease from its own.
    #[serde(default)]
    process: String,
    heartbeat_at_ms: i64,
}

impl Lease {
    /// Whether `self`, the stored lease, can be taken over by `me`.
    fn is_stale_for(&self, me: &Lease) -> bool {
        let expired = now_ms() - self.heartbeat_at_ms > lease_length().as_millis() as i64;
        let same_host = self.host == me.host;
        let dead_pid = same_host && self.pid != me.pid && !process_alive(self.pid);
        let recycled_pid = same_host && self.pid == me.pid && self.process != me.process;
        expired || dead_pid || recycled_pid
    }
}

/// Held while a run writes a job; dropped or released at the end.
pub struct JobLock {
    held: Held,
}

enum Held {
    /// Kept open: closing the file (or the process dying) releases the flock.
    File(#[allow(dead_code)] std::fs::File),
    Lease {
        store: Arc<dyn ObjectStore>,
        key: String,
        /// The ETag of the lease as this run last wrote it.
        etag: Arc<Mutex<String>>,
        lost: Arc<AtomicBool>,
        last_beat_ms: Arc<AtomicI64>,
        task: tokio::task::JoinHandle<()>,
    },
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// This host's name in leases; `SECHUB_EXPORT_HOST_ID` overrides it (tests simulate two hosts).
fn host_name() -> String {
    if let Ok(id) = std::env::var("SECHUB_EXPORT_HOST_ID") {
        return id;
    }
    let mut buf = [0u8; 256];
    // SAFETY: buf is valid for its length; gethostname NUL-terminates on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// This process's random id, the same for every lease it takes.
fn process_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| hex::encode(rand::random::<[u8; 8]>()))
}

fn process_alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks for existence and permission.
    let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

fn busy(job_id: &str, detail: String) -> Error {
    Error::JobBusy {
        job_id: job_id.to_string(),
        message: format!("another run is exporting this job ({detail}); wait for it to finish, then re-run this command to resume"),
    }
}

impl JobLock {
    /// Takes the job's lock or fails with a clear error, before anything is written: a file
    /// lock in a store on this machine, a lease object in any other.
    pub async fn acquire(store: Arc<dyn ObjectStore>, job_id: &str) -> Result<JobLock> {
        match store.local_root() {
            Some(root) => Self::acquire_file(root, job_id),
            None => Self::acquire_lease(store, job_id).await,
        }
    }

    fn acquire_file(root: &std::path::Path, job_id: &str) -> Result<JobLock> {
        use std::os::fd::AsRawFd;
        let path = root.join(layout::lock_key(job_id));
        let io = |e: std::io::Error| {
            Error::destination(
                path.display(),
                "cannot create the job lock file; check the folder is writable",
                Some(Box::new(e) as _),
            )
        };
        std::fs::create_dir_all(path.parent().expect("lock has a folder")).map_err(io)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io)?;
        // SAFETY: a valid open descriptor; the lock is released when the file closes or the process dies.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            return Err(busy(job_id, format!("lock held on {}", path.display())));
        }
        Ok(JobLock {
            held: Held::File(file),
        })
    }

    async fn acquire_lease(store: Arc<dyn ObjectStore>, job_id: &str) -> Result<JobLock> {
        let key = layout::lock_key(job_id);
        let me = Lease {
            host: host_name(),
            pid: std::process::id(),
            process: process_id().to_string(),
            heartbeat_at_ms: now_ms(),
        };
        let body = || Bytes::from(serde_json::to_vec(&me).expect("lease serialises"));
        let mut outcome = put_if_or_own(store.as_ref(), &key, body(), Precondition::Absent).await?;
        if outcome == CondPut::PreconditionFailed {
            let Some((current, etag)) = store.get(&key).await? else {
                return Err(busy(job_id, "its lock changed while we looked".into()));
            };
            let holder: Option<Lease> = serde_json::from_slice(&current).ok();
            if let Some(h) = holder.filter(|h| !h.is_stale_for(&me)) {
                let age = (now_ms() - h.heartbeat_at_ms) / 1000;
                return Err(busy(job_id, format!("host {} pid {}, heartbeat {age}s ago; a dead run's lease expires after {}s", h.host, h.pid, lease_length().as_secs())));
            }
            outcome =
                put_if_or_own(store.as_ref(), &key, body(), Precondition::Matches(etag)).await?;
        }
        let CondPut::Written(etag) = outcome else {
            return Err(busy(job_id, "it took the lock at the same moment".into()));
        };
        let lost = Arc::new(AtomicBool::new(false));
        let last_beat_ms = Arc::new(AtomicI64::new(now_ms()));
        let etag = Arc::new(Mutex::new(etag));
        let task = tokio::spawn(heartbeat(
            store.clone(),
            key.clone(),
            me,
            etag.clone(),
            lost.clone(),
            last_beat_ms.clone(),
        ));
        Ok(JobLock {
            held: Held::Lease {
                store,
                key,
                etag,
                lost,
                last_beat_ms,
                task,
            },
        })
    }

    /// Fails when the lease was lost or has not been renewed recently: the run must stop
    /// before writing anything else.
    pub fn ensure_held(&self, job_id: &str) -> Result<()> {
        if let Held::Lease {
            lost, last_beat_ms, ..
        } = &self.held
        {
            let silent_ms = now_ms() - last_beat_ms.load(Ordering::Relaxed);
            let limit_ms = lease_length().as_millis() as i64 * 2 / 3;
            if lost.load(Ordering::Relaxed) || silent_ms > limit_ms {
                return Err(busy(job_id, "this run lost its lease to it".into()));
            }
        }
        Ok(())
    }

    /// Releases the lock: deletes the S3 lease object only while it is still the version this
    /// run wrote, so a run that was overtaken never removes its successor's lease.
    pub async fn release(self) {
        if let Held::Lease {
            store,
            key,
            etag,
            task,
            ..
        } = self.held
        {
            task.abort();
            let _ = task.await;
            let etag = etag.lock().expect("lease etag").clone();
            match store.delete_if(&key, &etag).await {
                Ok(true) => {}
                // A renewal cut short by the abort may have landed all the same: a lease that
                // is still this process's is deleted at the ETag it now has.
                Ok(false) => {
                    if let Ok(Some((body, current))) = store.get(&key).await {
                        let ours = serde_json::from_slice::<Lease>(&body)
                            .is_ok_and(|lease| lease.process == process_id());
                        if ours {
                            let _ = store.delete_if(&key, &current).await;
                        }
                    }
                }
                Err(err) => tracing::warn!(
                    "could not release the lease; it expires after {}s: {}",
                    lease_length().as_secs(),
                    crate::error::one_line(&err)
                ),
            }
        }
    }
}

/// Renews the lease every [`heartbeat_interval`]. A renewal whose answer was lost may still have landed:
/// when the next write then fails its precondition, the stored lease is read back, and if it is
/// one this run wrote, its ETag is adopted instead of giving the lease up.
async fn heartbeat(
    store: Arc<dyn ObjectStore>,
    key: String,
    mut lease: Lease,
    etag: Arc<Mutex<String>>,
    lost: Arc<AtomicBool>,
    last_beat_ms: Arc<AtomicI64>,
) {
    // Renewals whose outcome is unknown: their body and heartbeat time.
    let mut unconfirmed: Vec<(Bytes, i64)> = Vec::new();
    loop {
        tokio::time::sleep(heartbeat_interval()).await;
        lease.heartbeat_at_ms = now_ms();
        let body = Bytes::from(serde_json::to_vec(&lease).expect("lease serialises"));
        unconfirmed.push((body.clone(), lease.heartbeat_at_ms));
        let current = etag.lock().expect("lease etag").clone();
        let outcome = store
            .put_if(&key, body, Precondition::Matches(current))
            .await;
        match outcome {
            Ok(CondPut::Written(new_etag)) => {
                *etag.lock().expect("lease etag") = new_etag;
                last_beat_ms.store(lease.heartbeat_at_ms, Ordering::Relaxed);
                unconfirmed.clear();
            }
            Ok(CondPut::PreconditionFailed) => match store.get(&key).await {
                Ok(Some((stored, stored_etag))) => {
                    let Some((_, beat_ms)) = unconfirmed.iter().find(|(b, _)| *b == stored) else {
                        lost.store(true, Ordering::Relaxed);
                        return;
                    };
                    *etag.lock().expect("lease etag") = stored_etag;
                    last_beat_ms.store(*beat_ms, Ordering::Relaxed);
                    unconfirmed.clear();
                }
                Ok(None) => {
                    lost.store(true, Ordering::Relaxed);
                    return;
                }
                Err(err) => tracing::warn!(
                    "lease check failed, retrying: {}",
                    crate::error::one_line(&err)
                ),
            },
            Err(err) => tracing::warn!(
                "lease heartbeat failed, retrying: {}",
                crate::error::one_line(&err)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::local::LocalStore;

    #[tokio::test]
    async fn a_second_local_run_of_a_job_is_refused_until_the_first_releases() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(dir.path()));
        let first = JobLock::acquire(store.clone(), "j").await.unwrap();
        let err = JobLock::acquire(store.clone(), "j")
            .await
            .err()
            .expect("second run refused");
        assert!(matches!(err, Error::JobBusy { .. }), "{err}");
        first.release().await;
        assert!(JobLock::acquire(store, "j").await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_renewal_that_landed_but_lost_its_answer_keeps_the_lease() {
        let memory = Arc::new(crate::sink::memory::MemoryStore::new());
        let store: Arc<dyn ObjectStore> = memory.clone();
        let lock = JobLock::acquire_lease(store.clone(), "j").await.unwrap();
        memory.lose_response("lock.json", 0);
        // The first renewal lands but its answer is lost; the second finds the lease it wrote
        // and adopts its ETag; the third renews over it.
        tokio::time::sleep(heartbeat_interval() * 3 + Duration::from_secs(1)).await;
        assert!(lock.ensure_held("j").is_ok(), "the lease was kept");
        let renewals = memory
            .writes()
            .iter()
            .filter(|k| k.ends_with("lock.json"))
            .count();
        assert_eq!(renewals, 3, "acquire, the lost renewal and the third one");
        lock.release().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_lease_overwritten_by_another_run_is_lost() {
        let store: Arc<dyn ObjectStore> = Arc::new(crate::sink::memory::MemoryStore::new());
        let lock = JobLock::acquire_lease(store.clone(), "j").await.unwrap();
        store
            .put(&layout::lock_key("j"), Bytes::from_static(b"{}"), "x")
            .await
            .unwrap();
        tokio::time::sleep(heartbeat_interval() + Duration::from_secs(1)).await;
        assert!(lock.ensure_held("j").is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_lease_deleted_by_someone_else_is_lost() {
        let store: Arc<dyn ObjectStore> = Arc::new(crate::sink::memory::MemoryStore::new());
        let lock = JobLock::acquire_lease(store.clone(), "j").await.unwrap();
        store.delete(&layout::lock_key("j")).await.unwrap();
        tokio::time::sleep(heartbeat_interval() + Duration::from_secs(1)).await;
        assert!(lock.ensure_held("j").is_err());
    }

    /// Writes job `j`'s lease as another process of this host (`pid`, `process`) left it, fresh.
    async fn plant_lease(store: &dyn ObjectStore, pid: u32, process: &str) {
        let lease = Lease {
            host: host_name(),
            pid,
            process: process.into(),
            heartbeat_at_ms: now_ms(),
        };
        let body = Bytes::from(serde_json::to_vec(&lease).unwrap());
        store
            .put_if(&layout::lock_key("j"), body, Precondition::Absent)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_lease_left_by_a_dead_process_on_this_host_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(dir.path()));
        plant_lease(store.as_ref(), 999_999_999, "dead").await;
        let lock = JobLock::acquire_lease(store.clone(), "j").await.unwrap();
        assert!(lock.ensure_held("j").is_ok());
        let live = JobLock::acquire_lease(store.clone(), "j")
            .await
            .err()
            .expect("live lease refuses");
        assert!(live.to_string().contains("another run"), "{live}");
        lock.release().await;
        assert!(store.get(&layout::lock_key("j")).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_lease_left_under_this_very_pid_by_an_earlier_process_is_taken_over() {
        // A Lambda sandbox restarted after a timeout: same host, the pid recycled.
        let store: Arc<dyn ObjectStore> = Arc::new(crate::sink::memory::MemoryStore::new());
        plant_lease(store.as_ref(), std::process::id(), "earlier").await;
        let lock = JobLock::acquire_lease(store.clone(), "j").await.unwrap();
        assert!(lock.ensure_held("j").is_ok());
        lock.release().await;
    }

    #[tokio::test(start_paused = true)]
    async fn an_overtaken_run_releasing_leaves_its_successors_lease_in_place() {
        let store: Arc<dyn ObjectStore> = Arc::new(crate::sink::memory::MemoryStore::new());
        let key = layout::lock_key("j");
        let overtaken = JobLock::acquire_lease(store.clone(), "j").await.unwrap();
        let successor = Bytes::from_static(b"{\"host\":\"other\",\"pid\":1,\"heartbeat_at_ms\":0}");
        store.put(&key, successor.clone(), "x").await.unwrap();
        overtaken.release().await;
        let (left, _) = store
            .get(&key)
            .await
            .unwrap()
            .expect("successor's lease kept");
        assert_eq!(left, successor);
    }
}
