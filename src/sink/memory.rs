//! In-memory object store for unit tests of the pipeline and the job: conditional writes with
//! version ETags, and scripted failures of chosen writes.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;

use super::{CondPut, ObjectMeta, ObjectStore, Precondition};
use crate::error::{Error, Result};

/// Objects in a map; every write gets a new version number as its ETag.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    objects: BTreeMap<String, (Bytes, String)>,
    version: u64,
    /// Writes to fail: (key substring, matching writes to let through first, whether the
    /// failing write lands anyway, its answer lost).
    failures: Vec<(String, usize, bool)>,
    /// Every successful write (its key) and delete (`delete <key>`), in order.
    writes: Vec<String>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes a write to a key containing `needle` fail with a destination error, after
    /// `let_through` such writes have succeeded.
    pub fn fail_write(&self, needle: &str, let_through: usize) {
        self.lock()
            .failures
            .push((needle.to_string(), let_through, false));
    }

    /// Makes a write to a key containing `needle` land but answer with an error (a response lost
    /// on the way back), after `let_through` such writes have succeeded.
    pub fn lose_response(&self, needle: &str, let_through: usize) {
        self.lock()
            .failures
            .push((needle.to_string(), let_through, true));
    }

    /// Keys of every successful write so far, and `delete <key>` for deletes, in order.
    pub fn writes(&self) -> Vec<String> {
        self.lock().writes.clone()
    }

    /// Keys present now, sorted.
    pub fn keys(&self) -> Vec<String> {
        self.lock().objects.keys().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("memory store lock")
    }

    fn write(&self, key: &str, body: Bytes, precondition: Option<Precondition>) -> Result<CondPut> {
        let mut state = self.lock();
        let mut lose_answer = false;
        if let Some(index) = state
            .failures
            .iter()
            .position(|(n, _, _)| key.contains(n.as_str()))
        {
            if state.failures[index].1 == 0 {
                let (_, _, lands) = state.failures.remove(index);
                if !lands {
                    return Err(self.injected(key));
                }
                lose_answer = true;
            } else {
                state.failures[index].1 -= 1;
            }
        }
        let current = state.objects.get(key).map(|(_, etag)| etag.clone());
        let allowed = match (&precondition, &current) {
            (None, _) => true,
            (Some(Precondition::Absent), current) => current.is_none(),
            (Some(Precondition::Matches(expected)), Some(current)) => expected == current,
            (Some(Precondition::Matches(_)), None) => false,
        };
        if !allowed {
            return Ok(CondPut::PreconditionFailed);
        }
        state.version += 1;
        let etag = format!("v{}", state.version);
        state.objects.insert(key.to_string(), (body, etag.clone()));
        state.writes.push(key.to_string());
        if lose_answer {
            return Err(self.injected(key));
        }
        Ok(CondPut::Written(etag))
    }

    fn injected(&self, key: &str) -> Error {
        Error::destination(self.location(key), "injected write failure", None)
    }
}

#[async_trait]
impl ObjectStore for MemoryStore {
    fn location(&self, key: &str) -> String {
        format!("memory:///{key}")
    }

    async fn check(&self) -> Result<()> {
        Ok(())
    }

    async fn put(&self, key: &str, body: Bytes, _content_type: &str) -> Result<()> {
        self.write(key, body, None).map(|_| ())
    }

    async fn put_if(&self, key: &str, body: Bytes, precondition: Precondition) -> Result<CondPut> {
        self.write(key, body, Some(precondition))
    }

    async fn get(&self, key: &str) -> Result<Option<(Bytes, String)>> {
        Ok(self.lock().objects.get(key).cloned())
    }

    async fn get_tail(&self, key: &str, len: u64) -> Result<Bytes> {
        let body = self.lock().objects.get(key).map(|(b, _)| b.clone());
        let body =
            body.ok_or_else(|| Error::destination(self.location(key), "no such object", None))?;
        let start = body.len().saturating_sub(len as usize);
        Ok(body.slice(start..))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        Ok(self
            .lock()
            .objects
            .range(prefix.to_string()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(key, (body, _))| ObjectMeta {
                key: key.clone(),
                size: body.len() as u64,
            })
            .collect())
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let mut state = self.lock();
        state.objects.remove(key);
        state.writes.push(format!("delete {key}"));
        Ok(())
    }

    async fn delete_if(&self, key: &str, etag: &str) -> Result<bool> {
        let mut state = self.lock();
        if state.objects.get(key).map(|(_, e)| e.as_str()) != Some(etag) {
            return Ok(false);
        }
        state.objects.remove(key);
        state.writes.push(format!("delete {key}"));
        Ok(true)
    }
}
