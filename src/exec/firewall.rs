//! The host's firewall, for `berth egress apply` (run as root on the host):
//! read it, and commit an `iptables-restore` input. Decisions are in
//! `plan::egress`.

use std::io::Write;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

/// Serializes berth's firewall changes on this host, so that what one run
/// read is still true when it commits. Held until dropped.
pub struct FirewallLock {
    _file: std::fs::File,
}

const LOCK_FILE: &str = "/run/berth-egress.lock";

pub fn lock() -> Result<FirewallLock> {
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::io::AsRawFd;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(LOCK_FILE)
        .with_context(|| format!("open {LOCK_FILE}"))?;
    // SAFETY: flock on a descriptor this function owns; blocks until free.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
        bail!("lock {LOCK_FILE}: {}", std::io::Error::last_os_error());
    }
    Ok(FirewallLock { _file: file })
}

/// The filter table as `iptables -S` prints it.
pub fn list() -> Result<String> {
    let output = Command::new("iptables")
        .args(["-w", "10", "-t", "filter", "-S"])
        .stdin(Stdio::null())
        .output()
        .context("run iptables -S (is iptables installed, and is this root?)")?;
    if !output.status.success() {
        bail!(
            "iptables -S failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Commits `input` with `iptables-restore --noflush`: all of it or none.
pub fn restore(input: &str) -> Result<()> {
    let mut child = Command::new("iptables-restore")
        .args(["-w", "10", "--noflush"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("run iptables-restore")?;
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(input.as_bytes())
        .context("send the rules to iptables-restore")?;
    let output = child.wait_with_output().context("run iptables-restore")?;
    if !output.status.success() {
        bail!(
            "iptables-restore failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}
