//! berth: releases outside developers' nginx + PHP plugins to Docker hosts,
//! with GitLab as the only control plane.
//!
//! The data flows one way: `env` → `config` → `plan` → `exec` → `report`.
//! `config` and `plan` never do I/O beyond reading the files they are given.

pub mod cli;
pub mod commands;
pub mod config;
pub mod env;
pub mod exec;
pub mod exit;
pub mod plan;
pub mod report;
pub mod rig;
pub mod secret;
pub mod text;

#[cfg(test)]
mod fuzz;
