//! Reads the local code checkout: how much a release would put on a host.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::plan::code::CodeSize;

/// The entry name rsync excludes at every depth (`--exclude=.git`).
const EXCLUDED: &str = ".git";

/// Counts the bytes and files of `dir` as the sync would copy them: `.git`
/// left out wherever it is, symbolic links neither counted nor followed
/// (`--no-links`), each hard link counted as the copy the host gets.
pub fn measure(dir: &Path) -> Result<CodeSize> {
    let mut size = CodeSize::default();
    let mut pending: Vec<PathBuf> = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        let meta =
            std::fs::symlink_metadata(&path).with_context(|| format!("read {}", path.display()))?;
        let kind = meta.file_type();
        if kind.is_symlink() {
            continue;
        }
        size.files += 1;
        if kind.is_file() {
            size.bytes += meta.len();
        } else if kind.is_dir() {
            let entries =
                std::fs::read_dir(&path).with_context(|| format!("list {}", path.display()))?;
            for entry in entries {
                let entry = entry.with_context(|| format!("list {}", path.display()))?;
                if entry.file_name() != EXCLUDED {
                    pending.push(entry.path());
                }
            }
        }
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_what_the_sync_copies_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("public/img")).unwrap();
        std::fs::write(root.join("public/index.php"), [b'x'; 1000]).unwrap();
        std::fs::write(root.join("public/img/a.png"), [b'y'; 24]).unwrap();
        // Left out: .git as a directory at the top and as a file (a
        // submodule's gitlink) below; links, whatever they point at.
        std::fs::create_dir_all(root.join(".git/objects")).unwrap();
        std::fs::write(root.join(".git/objects/big"), [0u8; 5000]).unwrap();
        std::fs::write(root.join("public/.git"), b"gitdir: ../.git/modules/x").unwrap();
        std::os::unix::fs::symlink("/etc", root.join("public/etc")).unwrap();
        std::os::unix::fs::symlink("index.php", root.join("public/again.php")).unwrap();
        // A hard link is copied as a file of its own.
        std::fs::hard_link(root.join("public/index.php"), root.join("copy.php")).unwrap();
        assert_eq!(
            measure(root).unwrap(),
            CodeSize {
                bytes: 2024,
                // root, public, img, index.php, a.png, copy.php
                files: 6,
            }
        );
    }

    #[test]
    fn a_checkout_that_cannot_be_read_is_an_error_naming_it() {
        let error = measure(Path::new("/nonexistent/berth-code")).unwrap_err();
        assert_eq!(format!("{error}"), "read /nonexistent/berth-code");
    }
}
