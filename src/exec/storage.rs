//! Makes an app environment's storage directories on the host, as root.
//!
//! Every directory is reached with `openat(O_NOFOLLOW | O_DIRECTORY)` from
//! `/`, one component at a time, and changed through its own descriptor:
//! a symbolic link anywhere on the way (put there by the deploy user, who
//! owns the app environment's directory) is refused, never followed.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use anyhow::{bail, Context, Result};

use crate::plan::storage::{Dir, Request};

/// What was changed, one line per directory, for the report.
pub fn ensure(request: &Request) -> Result<Vec<String>> {
    let env_dir = request.env_dir();
    let mut base = open_dir(None, "/")?;
    for part in env_dir.as_str().trim_start_matches('/').split('/') {
        base = open_dir(Some(&base), part)
            .with_context(|| format!("open {env_dir} (it is made by a deploy)"))?;
    }
    let mut changes = Vec::new();
    for dir in request.dirs() {
        let fd =
            ensure_dir(&base, &dir).with_context(|| format!("ensure {env_dir}/{}", dir.path))?;
        changes.extend(fd.map(|change| format!("{env_dir}/{}: {change}", dir.path)));
    }
    Ok(changes)
}

/// Makes one directory (relative to `base`) and sets its owner and mode;
/// `Some(what changed)` when anything did.
fn ensure_dir(base: &OwnedFd, dir: &Dir) -> Result<Option<String>> {
    let mut parent = base.try_clone()?;
    let parts: Vec<&str> = dir.path.split('/').collect();
    let (last, parents) = parts.split_last().expect("a path has a component");
    for part in parents {
        parent = open_dir(Some(&parent), part)?;
    }
    let name = CString::new(*last)?;
    let mut changed = Vec::new();
    // SAFETY: a valid descriptor and a NUL-terminated name.
    if unsafe { libc::mkdirat(parent.as_raw_fd(), name.as_ptr(), dir.mode) } == 0 {
        changed.push("created".to_string());
    } else {
        let error = std::io::Error::last_os_error();
        if error.raw_os_error() != Some(libc::EEXIST) {
            return Err(error.into());
        }
    }
    let fd = open_dir(Some(&parent), last)?;
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a valid descriptor and a stat buffer of the right size.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut stat) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    if stat.st_uid != dir.uid || stat.st_gid != dir.gid {
        // SAFETY: a valid descriptor.
        if unsafe { libc::fchown(fd.as_raw_fd(), dir.uid, dir.gid) } != 0 {
            return Err(std::io::Error::last_os_error()).context("chown");
        }
        changed.push(format!("owner {}:{}", dir.uid, dir.gid));
    }
    if stat.st_mode & 0o7777 != dir.mode {
        // SAFETY: a valid descriptor.
        if unsafe { libc::fchmod(fd.as_raw_fd(), dir.mode) } != 0 {
            return Err(std::io::Error::last_os_error()).context("chmod");
        }
        changed.push(format!("mode {:o}", dir.mode));
    }
    Ok((!changed.is_empty()).then(|| changed.join(", ")))
}

/// Opens a directory below `parent` (or the absolute `name`) without
/// following a link.
fn open_dir(parent: Option<&OwnedFd>, name: &str) -> Result<OwnedFd> {
    let c_name = CString::new(name)?;
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    let at = parent.map_or(libc::AT_FDCWD, AsRawFd::as_raw_fd);
    // SAFETY: a valid descriptor (or AT_FDCWD) and a NUL-terminated name.
    let fd = unsafe { libc::openat(at, c_name.as_ptr(), flags) };
    if fd < 0 {
        let error = std::io::Error::last_os_error();
        if matches!(
            error.raw_os_error(),
            Some(libc::ELOOP) | Some(libc::ENOTDIR)
        ) {
            bail!("{name} is a symbolic link or not a directory; berth follows no link here");
        }
        return Err(error).with_context(|| format!("open {name}"));
    }
    // SAFETY: openat returned a new descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
