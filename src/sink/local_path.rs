//! One spelling for a local destination: every way of writing one folder (a trailing slash,
//! `./`, `..`, an absolute path, `file://`, a symlink) gives the same path, and so the same job.

use std::path::{Component, Path, PathBuf};

/// The folder `text` names, absolute, without `.`/`..` components or a trailing slash, and with
/// the symlinks of its existing part resolved. `None` when it cannot be made absolute.
pub fn normalize(text: &str) -> Option<PathBuf> {
    let absolute = std::path::absolute(text).ok()?;
    let lexical = lexically_clean(&absolute);
    Some(resolve_existing(&lexical))
}

/// The path the destination was stored as before 2026-12-07 (the text made absolute as
/// given, trailing slash and `./` kept): the default job id of a job started then.
pub fn legacy(text: &str) -> Option<PathBuf> {
    match text.strip_prefix("file://") {
        Some(path) => Some(PathBuf::from(path)),
        None => std::path::absolute(text).ok(),
    }
}

/// Removes `.` and resolves `..` by the components alone (`/a/b/../c/.` is `/a/c`).
fn lexically_clean(path: &Path) -> PathBuf {
    let mut clean = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                clean.pop();
            }
            other => clean.push(other),
        }
    }
    clean
}

/// Resolves the symlinks of the longest existing ancestor of `path` and keeps the rest.
fn resolve_existing(path: &Path) -> PathBuf {
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = std::fs::canonicalize(&existing) {
            return rest.iter().rev().fold(real, |acc, part| acc.join(part));
        }
        match (
            existing.file_name().map(ToOwned::to_owned),
            existing.parent(),
        ) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent.to_path_buf();
            }
            _ => return path.to_path_buf(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_one_folder_is_one_path() {
        let dir = tempfile::tempdir().unwrap();
        let real = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir(real.join("lake")).unwrap();
        std::os::unix::fs::symlink(real.join("lake"), real.join("link")).unwrap();
        let want = real.join("lake");
        for spelling in [
            format!("{}/lake", real.display()),
            format!("{}/lake/", real.display()),
            format!("{}/./lake/.", real.display()),
            format!("{}/x/../lake", real.display()),
            format!("{}/link", real.display()),
            format!("{}/link/", real.display()),
        ] {
            assert_eq!(normalize(&spelling).unwrap(), want, "{spelling}");
        }
        assert_eq!(
            normalize(&format!("{}/link/new/", real.display())).unwrap(),
            want.join("new"),
            "a folder still to be made under a symlink"
        );
    }

    #[test]
    fn legacy_keeps_the_spelling() {
        assert_eq!(
            legacy("file:///tmp/lake/").unwrap(),
            Path::new("/tmp/lake/")
        );
        assert!(legacy("./lake/")
            .unwrap()
            .to_string_lossy()
            .ends_with("lake/"));
    }
}
