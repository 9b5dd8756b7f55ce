//! Makes an app environment's storage on the host, as root: its file
//! system (an ext4 image, loop-mounted) and the directories in it.
//!
//! Every directory is reached with `openat(O_NOFOLLOW | O_DIRECTORY)` from
//! `/`, one component at a time, and changed through its own descriptor:
//! a symbolic link anywhere on the way (put there by the deploy user, who
//! owns the app environment's directory) is refused, never followed. The
//! image is opened the same way and handed to `mkfs.ext4` and `mount` as
//! `/proc/self/fd/N`, the file berth checked.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use anyhow::{bail, Context, Result};

use crate::config::values::AbsPath;
use crate::plan::storage::{
    image_actions, Dir, ImageAction, ImageState, Request, IMAGE, MOUNT_OPTIONS, MOUNT_POINT,
};

/// Reads the state of the storage's file system.
pub fn observe(request: &Request) -> Result<ImageState> {
    let env = open_env(request)?;
    let len = open_image(&env)?.map(|(_, len)| len);
    Ok(ImageState {
        len,
        mounted: mount_source(&mount_point(request))?.is_some(),
    })
}

/// Makes the storage match the request; what changed, for the report.
pub fn ensure(request: &Request) -> Result<Vec<String>> {
    let env_dir = request.env_dir();
    let base = open_env(request)?;
    let mut changes = Vec::new();
    let dirs = request.dirs();
    // The mount point first: it must exist before anything is mounted on it.
    ensure_dir(&base, &dirs[0]).with_context(|| format!("ensure {env_dir}/{MOUNT_POINT}"))?;
    let (actions, note) = image_actions(request.size, observe(request)?);
    changes.extend(note);
    for action in actions {
        apply_image(request, &base, &action).with_context(|| format!("{action} in {env_dir}"))?;
        changes.push(format!("{env_dir}: {action}"));
    }
    for dir in dirs {
        let fd =
            ensure_dir(&base, &dir).with_context(|| format!("ensure {env_dir}/{}", dir.path))?;
        changes.extend(fd.map(|change| format!("{env_dir}/{}: {change}", dir.path)));
    }
    Ok(changes)
}

fn open_env(request: &Request) -> Result<OwnedFd> {
    open_env_dir(&request.env_dir(), request.owner)
}

/// Opens an app environment's directory from `/`, one component at a time,
/// following no link; with `owner`, it must belong to that user.
pub(crate) fn open_env_dir(env_dir: &AbsPath, owner: Option<u32>) -> Result<OwnedFd> {
    let mut base = open_dir(None, "/")?;
    for part in env_dir.as_str().trim_start_matches('/').split('/') {
        base = open_dir(Some(&base), part)
            .with_context(|| format!("open {env_dir} (it is made by a deploy)"))?;
    }
    if let Some(owner) = owner {
        let found = fstat(&base)?.st_uid;
        if found != owner {
            bail!(
                "{env_dir} belongs to uid {found}, not to uid {owner} who ran berth through sudo; \
                 the root side works only in the calling user's own app directories"
            );
        }
    }
    Ok(base)
}

fn mount_point(request: &Request) -> String {
    format!("{}/{MOUNT_POINT}", request.env_dir())
}

/// The image, opened without following a link and kept open across exec
/// (no `O_CLOEXEC`) so a command can be given `/proc/self/fd/N`; its length.
/// It must be a regular file owned by root.
fn open_image(env: &OwnedFd) -> Result<Option<(OwnedFd, u64)>> {
    let name = CString::new(IMAGE)?;
    // SAFETY: a valid descriptor and a NUL-terminated name.
    let fd = unsafe {
        libc::openat(
            env.as_raw_fd(),
            name.as_ptr(),
            libc::O_RDWR | libc::O_NOFOLLOW,
        )
    };
    if fd < 0 {
        let error = std::io::Error::last_os_error();
        return match error.raw_os_error() {
            Some(libc::ENOENT) => Ok(None),
            Some(libc::ELOOP) => bail!("{IMAGE} is a symbolic link; berth follows no link here"),
            _ => Err(error).with_context(|| format!("open {IMAGE}")),
        };
    }
    // SAFETY: openat returned a new descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let stat = fstat(&fd)?;
    if stat.st_mode & libc::S_IFMT != libc::S_IFREG || stat.st_uid != 0 {
        bail!("{IMAGE} is not a regular file owned by root");
    }
    Ok(Some((fd, stat.st_size as u64)))
}

pub(crate) fn fstat(fd: &OwnedFd) -> Result<libc::stat> {
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a valid descriptor and a stat buffer of the right size.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut stat) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    Ok(stat)
}

/// The device mounted at `path`, from this process's mount table.
fn mount_source(path: &str) -> Result<Option<String>> {
    let table =
        std::fs::read_to_string("/proc/self/mountinfo").context("read /proc/self/mountinfo")?;
    // `id parent major:minor root mount-point options ... - type source super-options`;
    // the last mount at a point is the one in effect.
    Ok(table
        .lines()
        .filter(|line| line.split(' ').nth(4) == Some(path))
        .filter_map(|line| line.split(" - ").nth(1))
        .filter_map(|rest| rest.split(' ').nth(1).map(str::to_string))
        .next_back())
}

fn run(program: &str, args: &[&str]) -> Result<()> {
    let output = std::process::Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("run {program}"))?;
    if !output.status.success() {
        bail!(
            "{program} {} failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

fn apply_image(request: &Request, env: &OwnedFd, action: &ImageAction) -> Result<()> {
    match action {
        ImageAction::Create { len } => {
            let name = CString::new(IMAGE)?;
            let flags =
                libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
            // SAFETY: a valid descriptor and a NUL-terminated name.
            let fd = unsafe { libc::openat(env.as_raw_fd(), name.as_ptr(), flags, 0o600) };
            if fd < 0 {
                return Err(std::io::Error::last_os_error().into());
            }
            // SAFETY: openat returned a new descriptor we own.
            let file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
            // Sparse: blocks are taken as the app writes.
            file.set_len(*len)?;
        }
        ImageAction::Format => {
            let (image, _) = open_image(env)?.context("the image was just created")?;
            let path = format!("/proc/self/fd/{}", image.as_raw_fd());
            run(
                "mkfs.ext4",
                &[
                    "-q",
                    "-F",
                    "-m",
                    "0",
                    "-E",
                    "root_owner=0:0",
                    "-L",
                    "berth-storage",
                    &path,
                ],
            )?;
        }
        ImageAction::Mount => {
            let (image, _) = open_image(env)?.context("the image exists")?;
            let path = format!("/proc/self/fd/{}", image.as_raw_fd());
            run(
                "mount",
                &["-o", MOUNT_OPTIONS, &path, &mount_point(request)],
            )?;
        }
    }
    Ok(())
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
    let stat = fstat(&fd)?;
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
pub(crate) fn open_dir(parent: Option<&OwnedFd>, name: &str) -> Result<OwnedFd> {
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
