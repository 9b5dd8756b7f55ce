//! Moves this process into a prepared cgroup, as `plan::cgroup` decided.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use crate::plan::cgroup::{check_joined, parse_mountinfo, CgroupError, CgroupMount, JoinPlan};

/// The cgroup hierarchies mounted in this process's mount namespace.
pub fn mounts() -> std::io::Result<Vec<CgroupMount>> {
    Ok(parse_mountinfo(&std::fs::read_to_string(
        "/proc/self/mountinfo",
    )?))
}

/// Writes this process's pid to each `cgroup.procs` of the plan (which
/// moves all its threads; children started later are born inside), then
/// checks `/proc/self/cgroup`.
pub fn join(plan: &JoinPlan) -> Result<(), CgroupError> {
    let pid = std::process::id().to_string();
    for join in &plan.joins {
        let not_allowed = |e: std::io::Error| CgroupError::NotAllowed {
            name: plan.name.clone(),
            procs: join.procs.clone(),
            reason: e.to_string(),
        };
        // Never created: cgroupfs makes cgroup.procs with its directory.
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&join.procs)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => CgroupError::Missing {
                    name: plan.name.clone(),
                    procs: join.procs.clone(),
                },
                _ => not_allowed(e),
            })?;
        file.write_all(pid.as_bytes()).map_err(not_allowed)?;
    }
    let shown = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    check_joined(plan, &shown)
}
