//! What root's last `storage ensure` and `egress apply` set for an app
//! environment, kept beside it (`boot-storage.json`, `boot-egress.json`)
//! so that `berth host boot` can set it again after a reboot: a JSON list
//! of the command's arguments.
//!
//! The app environment's directory belongs to the deploy user, who can
//! replace a record. That gives them nothing: the record is read back
//! through the same argument checks as a call through sudo, which the
//! deploy user may make with any arguments anyway, and it must name its own
//! directory. Written as root without following a link: a new file made
//! with `O_EXCL | O_NOFOLLOW`, then renamed over the old name (a rename
//! replaces a planted link, never writes through it).

use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use anyhow::{bail, Context, Result};

use super::storage::{fstat, open_env_dir};
use crate::config::values::AbsPath;

/// A record is small; a larger file is refused unread.
const MAX_BYTES: u64 = 64 * 1024;

/// Which root command a record replays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Storage,
    Egress,
}

impl Kind {
    pub fn file_name(self) -> &'static str {
        match self {
            Kind::Storage => "boot-storage.json",
            Kind::Egress => "boot-egress.json",
        }
    }
}

/// Writes `args` as the app environment's record of `kind`.
pub fn write(env_dir: &AbsPath, owner: Option<u32>, kind: Kind, args: &[String]) -> Result<()> {
    let dir = open_env_dir(env_dir, owner)?;
    let name = kind.file_name();
    let temp = format!(".{name}.{}", std::process::id());
    let c_temp = CString::new(temp.as_str())?;
    let c_name = CString::new(name)?;
    // SAFETY: valid descriptor, NUL-terminated names.
    unsafe { libc::unlinkat(dir.as_raw_fd(), c_temp.as_ptr(), 0) };
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: valid descriptor, NUL-terminated name.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), c_temp.as_ptr(), flags, 0o644) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("create {env_dir}/{temp}"));
    }
    // SAFETY: openat returned a new descriptor we own.
    let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    let mut text = serde_json::to_string(args)?;
    text.push('\n');
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("write {env_dir}/{temp}"))?;
    // SAFETY: valid descriptor, NUL-terminated names.
    let renamed = unsafe {
        libc::renameat(
            dir.as_raw_fd(),
            c_temp.as_ptr(),
            dir.as_raw_fd(),
            c_name.as_ptr(),
        )
    };
    if renamed != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("rename {env_dir}/{temp} to {name}"));
    }
    Ok(())
}

/// Reads the app environment's record of `kind`, if it has one.
pub fn read(env_dir: &AbsPath, kind: Kind) -> Result<Option<Vec<String>>> {
    let dir = open_env_dir(env_dir, None)?;
    let name = kind.file_name();
    let c_name = CString::new(name)?;
    let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC;
    // SAFETY: valid descriptor, NUL-terminated name.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), c_name.as_ptr(), flags) };
    if fd < 0 {
        let error = std::io::Error::last_os_error();
        return match error.raw_os_error() {
            Some(libc::ENOENT) => Ok(None),
            Some(libc::ELOOP) => {
                bail!("{env_dir}/{name} is a symbolic link; berth follows no link here")
            }
            _ => Err(error).with_context(|| format!("open {env_dir}/{name}")),
        };
    }
    // SAFETY: openat returned a new descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let stat = fstat(&fd)?;
    if stat.st_mode & libc::S_IFMT != libc::S_IFREG {
        bail!("{env_dir}/{name} is not a regular file");
    }
    let mut text = String::new();
    std::fs::File::from(fd)
        .take(MAX_BYTES + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("read {env_dir}/{name}"))?;
    if text.len() as u64 > MAX_BYTES {
        bail!("{env_dir}/{name} is larger than {MAX_BYTES} bytes");
    }
    let args: Vec<String> = serde_json::from_str(&text)
        .with_context(|| format!("{env_dir}/{name} is not a list of arguments"))?;
    Ok(Some(args))
}
