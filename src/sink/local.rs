//! Local-folder object store: atomic writes (temp file, fsync, rename), content-hash ETags.

use std::io::Write;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;

use super::{content_etag, CondPut, ObjectMeta, ObjectStore, Precondition};
use crate::error::{Error, Result};

/// Objects are files below `root`; keys use `/` separators.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    /// A store of the files below `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalStore { root: root.into() }
    }

    fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    fn io_error(&self, key: &str, action: &str, err: std::io::Error) -> Error {
        Error::destination(
            self.location(key),
            format!("cannot {action}; check the folder exists and is writable"),
            Some(Box::new(err) as _),
        )
    }
}

/// Writes `body` to `path` atomically: temp file in the same folder, fsync, rename, fsync folder.
/// With `exclusive`, the final step is a hard link that fails if the file exists.
fn write_atomic(path: &Path, body: &[u8], exclusive: bool) -> std::io::Result<bool> {
    let dir = path.parent().expect("object paths have a parent");
    std::fs::create_dir_all(dir)?;
    let temp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(body)?;
        file.sync_all()?;
    }
    crate::crash::crash_point("local-write-before-rename");
    let placed = if exclusive {
        let linked = std::fs::hard_link(&temp, path);
        std::fs::remove_file(&temp)?;
        match linked {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
            Err(e) => return Err(e),
        }
    } else {
        std::fs::rename(&temp, path)?;
        true
    };
    std::fs::File::open(dir)?.sync_all()?;
    Ok(placed)
}

fn list_into(root: &Path, dir: &Path, out: &mut Vec<ObjectMeta>) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue; // temp files
        }
        let meta = entry.metadata()?;
        if meta.is_dir() {
            list_into(root, &path, out)?;
        } else {
            let key = path.strip_prefix(root).expect("below root");
            let key = key
                .to_string_lossy()
                .replace(std::path::MAIN_SEPARATOR, "/");
            out.push(ObjectMeta {
                key,
                size: meta.len(),
            });
        }
    }
    Ok(())
}

#[async_trait]
impl ObjectStore for LocalStore {
    fn location(&self, key: &str) -> String {
        format!("file://{}", self.path(key).display())
    }

    fn local_root(&self) -> Option<&Path> {
        Some(&self.root)
    }

    async fn check(&self) -> Result<()> {
        let root = self.root.clone();
        if let Some(parent) = root.parent().filter(|parent| !parent.is_dir()) {
            return Err(Error::Destination {
                location: format!("file://{}", root.display()),
                message: format!(
                    "the folder {} does not exist, so this looks like a mistyped path: fix --destination, or create the folder first (mkdir -p {})",
                    parent.display(),
                    root.display()
                ),
                source: None,
            });
        }
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir(&root).or_else(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists if root.is_dir() => Ok(()),
                _ => Err(e),
            })
        })
        .await
        .expect("blocking task")
        .map_err(|e| self.io_error("", "create the destination folder", e))
    }

    async fn put(&self, key: &str, body: Bytes, _content_type: &str) -> Result<()> {
        let path = self.path(key);
        tokio::task::spawn_blocking(move || write_atomic(&path, &body, false))
            .await
            .expect("blocking task")
            .map(|_| ())
            .map_err(|e| self.io_error(key, "write", e))
    }

    async fn put_if(&self, key: &str, body: Bytes, precondition: Precondition) -> Result<CondPut> {
        let etag = content_etag(&body);
        match precondition {
            Precondition::Absent => {
                let path = self.path(key);
                let placed = tokio::task::spawn_blocking(move || write_atomic(&path, &body, true))
                    .await
                    .expect("blocking task")
                    .map_err(|e| self.io_error(key, "write", e))?;
                Ok(if placed {
                    CondPut::Written(etag)
                } else {
                    CondPut::PreconditionFailed
                })
            }
            Precondition::Matches(expected) => {
                // Compare-then-rename: atomic against other writers only under the job lock,
                // which local jobs always hold (see checkpoint::lock).
                match self.get(key).await? {
                    Some((_, current)) if current == expected => {
                        self.put(key, body, "application/json").await?;
                        Ok(CondPut::Written(etag))
                    }
                    _ => Ok(CondPut::PreconditionFailed),
                }
            }
        }
    }

    async fn get(&self, key: &str) -> Result<Option<(Bytes, String)>> {
        match tokio::fs::read(self.path(key)).await {
            Ok(body) => {
                let etag = content_etag(&body);
                Ok(Some((body.into(), etag)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io_error(key, "read", e)),
        }
    }

    async fn get_tail(&self, key: &str, len: u64) -> Result<Bytes> {
        use std::io::{Read, Seek, SeekFrom};
        let path = self.path(key);
        let read = move || -> std::io::Result<Vec<u8>> {
            let mut file = std::fs::File::open(path)?;
            let size = file.metadata()?.len();
            file.seek(SeekFrom::Start(size.saturating_sub(len)))?;
            let mut buf = Vec::new();
            file.read_to_end(&mut buf)?;
            Ok(buf)
        };
        tokio::task::spawn_blocking(read)
            .await
            .expect("blocking task")
            .map(Bytes::from)
            .map_err(|e| self.io_error(key, "read", e))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let root = self.root.clone();
        let start = self.path(prefix.rsplit_once('/').map_or("", |(dir, _)| dir));
        let prefix_owned = prefix.to_string();
        let mut out = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            list_into(&root, &start, &mut out).map(|_| out)
        })
        .await
        .expect("blocking task")
        .map_err(|e| self.io_error(prefix, "list", e))?;
        out.retain(|o| o.key.starts_with(&prefix_owned));
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        match tokio::fs::remove_file(self.path(key)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.io_error(key, "delete", e)),
        }
    }

    async fn delete_if(&self, key: &str, etag: &str) -> Result<bool> {
        // Compare-then-remove, like `put_if`: atomic only under the job lock.
        match self.get(key).await? {
            Some((_, current)) if current == etag => self.delete(key).await.map(|()| true),
            _ => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn conditional_writes_refuse_a_stale_etag_and_an_existing_object() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        let first = store
            .put_if("a/cp.json", Bytes::from_static(b"1"), Precondition::Absent)
            .await
            .unwrap();
        let CondPut::Written(etag) = first else {
            panic!("first create must succeed")
        };
        let again = store
            .put_if("a/cp.json", Bytes::from_static(b"x"), Precondition::Absent)
            .await
            .unwrap();
        assert_eq!(again, CondPut::PreconditionFailed);
        let updated = store
            .put_if(
                "a/cp.json",
                Bytes::from_static(b"2"),
                Precondition::Matches(etag.clone()),
            )
            .await
            .unwrap();
        assert!(matches!(updated, CondPut::Written(_)));
        let stale = store
            .put_if(
                "a/cp.json",
                Bytes::from_static(b"3"),
                Precondition::Matches(etag),
            )
            .await
            .unwrap();
        assert_eq!(stale, CondPut::PreconditionFailed);
        assert_eq!(
            store.get("a/cp.json").await.unwrap().unwrap().0.as_ref(),
            b"2"
        );
    }

    #[tokio::test]
    async fn list_returns_sorted_keys_below_a_prefix_and_skips_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        for key in [
            "f/d=1/j-part-000002.parquet",
            "f/d=1/j-part-000001.parquet",
            "g/x",
        ] {
            store
                .put(key, Bytes::from_static(b"abc"), "x")
                .await
                .unwrap();
        }
        std::fs::write(dir.path().join("f/d=1/.tmp"), b"").unwrap();
        let keys: Vec<String> = store
            .list("f/")
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .collect();
        assert_eq!(
            keys,
            ["f/d=1/j-part-000001.parquet", "f/d=1/j-part-000002.parquet"]
        );
        assert_eq!(store.get_tail("g/x", 2).await.unwrap().as_ref(), b"bc");
    }
}
