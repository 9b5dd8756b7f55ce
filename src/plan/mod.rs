//! Pure planning: what to render, run and call, computed as data from
//! settings and observed state. No network, no clock, no environment reads.

pub mod allocation;
pub mod cgroup;
pub mod code;
pub mod command;
pub mod deploy;
pub mod dns;
pub mod egress;
#[cfg(test)]
pub(crate) mod fixtures;
pub mod gitlab;
pub mod logs;
pub mod release;
pub mod render;
pub mod review;
pub mod scripts;
pub mod storage;
