//! Executors: carry a plan out on a host. Thin: every decision was made by
//! `plan`; these only run commands and report what failed, naming the action
//! and the host.

pub mod apply;
pub mod boot_record;
pub mod cgroup;
pub mod dns;
pub mod firewall;
pub mod git;
pub mod gitlab;
pub mod remote;
pub mod storage;
pub mod tree;
