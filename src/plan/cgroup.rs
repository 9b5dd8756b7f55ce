//! Where `berth serve-logs --cgroup NAME` moves itself: the `cgroup.procs`
//! files of the prepared cgroup NAME in every hierarchy that holds one of
//! the controllers that limit it (cpu, memory, pids), decided from the
//! host's `/proc/self/mountinfo`; and whether `/proc/self/cgroup` shows
//! the move took.

use std::fmt;

use crate::config::values::CgroupPath;

/// The controllers whose limits bound a logs request.
pub const CONTROLLERS: [&str; 3] = ["cpu", "memory", "pids"];

/// A mounted cgroup hierarchy, from one line of `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupMount {
    /// The hierarchy's directory this mount shows (`/` for the whole).
    pub root: String,
    pub mount_point: String,
    /// v1: the controllers bound to the hierarchy; v2: `None`.
    pub controllers: Option<Vec<String>>,
}

/// The cgroup mounts of a `/proc/self/mountinfo` text. Lines that are not
/// cgroup mounts, or that berth cannot read, are left out.
pub fn parse_mountinfo(text: &str) -> Vec<CgroupMount> {
    text.lines()
        .filter_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            let fields: Vec<&str> = before.split(' ').collect();
            let (root, mount_point) = (fields.get(3)?, fields.get(4)?);
            let mut after = after.split(' ');
            let fs_type = after.next()?;
            let _source = after.next()?;
            let options = after.next()?;
            if root.contains('\\') || mount_point.contains('\\') {
                return None; // an escaped space or newline: not berth's
            }
            let controllers = match fs_type {
                "cgroup2" => None,
                "cgroup" => Some(
                    options
                        .split(',')
                        .filter(|o| CONTROLLERS.contains(o) || KNOWN_V1.contains(o))
                        .map(str::to_string)
                        .collect(),
                ),
                _ => return None,
            };
            Some(CgroupMount {
                root: root.to_string(),
                mount_point: mount_point.to_string(),
                controllers,
            })
        })
        .collect()
}

/// v1 controllers besides `CONTROLLERS`, so a hierarchy's list (as
/// `/proc/self/cgroup` shows it) is complete.
const KNOWN_V1: [&str; 10] = [
    "cpuacct",
    "cpuset",
    "blkio",
    "devices",
    "freezer",
    "net_cls",
    "net_prio",
    "perf_event",
    "hugetlb",
    "rdma",
];

/// One write of the process's pid, and what `/proc/self/cgroup` must show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Join {
    /// `<mount point>/<NAME>/cgroup.procs`.
    pub procs: String,
    /// v1: the limiting controllers of this hierarchy; v2: empty.
    pub controllers: Vec<String>,
    /// The cgroup's path as `/proc/self/cgroup` shows it.
    pub expect: String,
}

/// Every write that moves serve-logs into its cgroup, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinPlan {
    pub name: CgroupPath,
    pub joins: Vec<Join>,
}

impl fmt::Display for JoinPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for join in &self.joins {
            let what = if join.controllers.is_empty() {
                "v2".to_string()
            } else {
                join.controllers.join(",")
            };
            writeln!(
                f,
                "join {} ({what}): write the pid to {}",
                join.expect, join.procs
            )?;
        }
        Ok(())
    }
}

/// Why serve-logs cannot run in its cgroup.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CgroupError {
    #[error(
        "no cgroup hierarchy on this host has the {0} controller, so cgroup {1} cannot limit it"
    )]
    NoController(&'static str, CgroupPath),
    #[error("cgroup {name} does not exist: no {procs}")]
    Missing { name: CgroupPath, procs: String },
    #[error("cannot move into cgroup {name}: writing {procs} failed: {reason}")]
    NotAllowed {
        name: CgroupPath,
        procs: String,
        reason: String,
    },
    #[error("after joining cgroup {name}, /proc/self/cgroup shows {shown} for {hierarchy}, not {expect}")]
    NotJoined {
        name: CgroupPath,
        hierarchy: String,
        shown: String,
        expect: String,
    },
}

impl CgroupError {
    pub fn hint(&self) -> &'static str {
        match self {
            CgroupError::NoController(..) => {
                "mount the cpu, memory and pids controllers (cgroup v1 or v2), or remove --cgroup from the key's forced command"
            }
            CgroupError::Missing { .. } | CgroupError::NotAllowed { .. } | CgroupError::NotJoined { .. } => {
                "prepare the cgroup with its limits and make its cgroup.procs writable by this user (docs/logs.md, \"The logs key's cgroup\"), or remove --cgroup from the key's forced command"
            }
        }
    }
}

/// Plans the move into `name`: in each v1 hierarchy holding a limiting
/// controller, and in the v2 hierarchy for the controllers no v1
/// hierarchy holds (a hybrid host mounts both).
pub fn plan_join(mounts: &[CgroupMount], name: &CgroupPath) -> Result<JoinPlan, CgroupError> {
    let mut joins: Vec<Join> = Vec::new();
    let v2 = mounts.iter().find(|m| m.controllers.is_none());
    let mut on_v2 = false;
    for controller in CONTROLLERS {
        let v1 = mounts.iter().find(|m| {
            m.controllers
                .as_ref()
                .is_some_and(|c| c.iter().any(|c| c == controller))
        });
        match (v1, v2) {
            (Some(mount), _) => {
                if let Some(join) = joins
                    .iter_mut()
                    .find(|j| j.procs == procs_file(mount, name))
                {
                    join.controllers.push(controller.to_string());
                } else {
                    joins.push(Join {
                        procs: procs_file(mount, name),
                        controllers: vec![controller.to_string()],
                        expect: expected_path(mount, name),
                    });
                }
            }
            (None, Some(_)) => on_v2 = true,
            (None, None) => return Err(CgroupError::NoController(controller, name.clone())),
        }
    }
    if let (true, Some(mount)) = (on_v2, v2) {
        joins.push(Join {
            procs: procs_file(mount, name),
            controllers: Vec::new(),
            expect: expected_path(mount, name),
        });
    }
    Ok(JoinPlan {
        name: name.clone(),
        joins,
    })
}

fn procs_file(mount: &CgroupMount, name: &CgroupPath) -> String {
    format!(
        "{}/{name}/cgroup.procs",
        mount.mount_point.trim_end_matches('/')
    )
}

fn expected_path(mount: &CgroupMount, name: &CgroupPath) -> String {
    format!("{}/{name}", mount.root.trim_end_matches('/'))
}

/// Checks `/proc/self/cgroup` (`id:controllers:path` lines) against the
/// plan: every hierarchy joined shows the cgroup's path.
pub fn check_joined(plan: &JoinPlan, proc_self_cgroup: &str) -> Result<(), CgroupError> {
    for join in &plan.joins {
        let line = proc_self_cgroup.lines().find_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_id, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            let listed: Vec<&str> = controllers.split(',').collect();
            let matches = if join.controllers.is_empty() {
                controllers.is_empty()
            } else {
                join.controllers
                    .iter()
                    .all(|c| listed.contains(&c.as_str()))
            };
            matches.then_some(path)
        });
        let hierarchy = if join.controllers.is_empty() {
            "the v2 hierarchy".to_string()
        } else {
            join.controllers.join(",")
        };
        if line != Some(join.expect.as_str()) {
            return Err(CgroupError::NotJoined {
                name: plan.name.clone(),
                hierarchy,
                shown: line.unwrap_or("nothing").to_string(),
                expect: join.expect.clone(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This machine's kind: v1 controllers each on its own hierarchy, and
    /// an empty v2 hierarchy beside them (hybrid).
    const HYBRID: &str = "\
30 25 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw
34 30 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,cpu,cpuacct
35 30 0:31 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,memory
36 30 0:32 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup rw,pids
37 30 0:33 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,name=systemd
40 22 0:40 / /proc rw,nosuid,nodev,noexec,relatime shared:13 - proc proc rw
";
    const V2: &str = "\
29 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

    fn name(text: &str) -> CgroupPath {
        text.parse().unwrap()
    }

    #[test]
    fn on_v1_the_pid_goes_into_each_limiting_hierarchy_once() {
        let plan = plan_join(&parse_mountinfo(HYBRID), &name("berth/logs")).unwrap();
        assert_eq!(
            plan.to_string(),
            "\
join /berth/logs (cpu): write the pid to /sys/fs/cgroup/cpu,cpuacct/berth/logs/cgroup.procs
join /berth/logs (memory): write the pid to /sys/fs/cgroup/memory/berth/logs/cgroup.procs
join /berth/logs (pids): write the pid to /sys/fs/cgroup/pids/berth/logs/cgroup.procs
"
        );
        let proc_self = "\
12:pids:/berth/logs
9:name=systemd:/user.slice
4:memory:/berth/logs
2:cpu,cpuacct:/berth/logs
0::/
";
        assert_eq!(check_joined(&plan, proc_self), Ok(()));
        let still_outside = proc_self.replace("4:memory:/berth/logs", "4:memory:/process_api/x");
        assert_eq!(
            check_joined(&plan, &still_outside).unwrap_err().to_string(),
            "after joining cgroup berth/logs, /proc/self/cgroup shows /process_api/x for memory, not /berth/logs"
        );
    }

    #[test]
    fn on_v2_the_pid_goes_into_the_one_hierarchy() {
        let plan = plan_join(&parse_mountinfo(V2), &name("berth.slice/berth-logs.slice")).unwrap();
        assert_eq!(
            plan.to_string(),
            "join /berth.slice/berth-logs.slice (v2): write the pid to /sys/fs/cgroup/berth.slice/berth-logs.slice/cgroup.procs\n"
        );
        assert_eq!(
            check_joined(&plan, "0::/berth.slice/berth-logs.slice\n"),
            Ok(())
        );
        assert_eq!(
            check_joined(&plan, "0::/user.slice/user-1000.slice/session-4.scope\n")
                .unwrap_err()
                .to_string(),
            "after joining cgroup berth.slice/berth-logs.slice, /proc/self/cgroup shows /user.slice/user-1000.slice/session-4.scope for the v2 hierarchy, not /berth.slice/berth-logs.slice"
        );
    }

    #[test]
    fn a_controller_not_on_v1_is_joined_through_v2_on_a_hybrid_host() {
        let no_pids: String = HYBRID
            .lines()
            .filter(|l| !l.contains("rw,pids"))
            .map(|l| format!("{l}\n"))
            .collect();
        let plan = plan_join(&parse_mountinfo(&no_pids), &name("logs")).unwrap();
        let procs: Vec<&str> = plan.joins.iter().map(|j| j.procs.as_str()).collect();
        assert_eq!(
            procs,
            [
                "/sys/fs/cgroup/cpu,cpuacct/logs/cgroup.procs",
                "/sys/fs/cgroup/memory/logs/cgroup.procs",
                "/sys/fs/cgroup/unified/logs/cgroup.procs",
            ]
        );
        let without_v2: String = no_pids
            .lines()
            .filter(|l| !l.contains("cgroup2"))
            .map(|l| format!("{l}\n"))
            .collect();
        let error = plan_join(&parse_mountinfo(&without_v2), &name("logs")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "no cgroup hierarchy on this host has the pids controller, so cgroup logs cannot limit it"
        );
    }

    #[test]
    fn a_mount_of_part_of_a_hierarchy_expects_the_path_below_its_root() {
        let text = "50 30 0:31 /docker/abc /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
                    51 30 0:30 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n\
                    52 30 0:32 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n";
        let plan = plan_join(&parse_mountinfo(text), &name("logs")).unwrap();
        assert_eq!(plan.joins[1].expect, "/docker/abc/logs");
        assert_eq!(plan.joins[0].expect, "/logs");
    }

    #[test]
    fn cgroup_names_stay_below_the_hierarchy_root() {
        for bad in ["/berth", "../berth", "a/../../b", "a//b", "a b", "-x", ""] {
            assert!(bad.parse::<CgroupPath>().is_err(), "{bad:?}");
        }
        assert!("berth.slice/berth-logs.slice".parse::<CgroupPath>().is_ok());
    }
}
