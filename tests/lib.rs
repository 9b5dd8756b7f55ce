//! berth's integration tests: one binary, one module per area.

mod app_settings;
mod bad_input;
mod bench;
mod cli;
mod code_limits;
mod common;
mod deploy;
mod dns;
mod egress;
mod fake;
mod gitlab_app;
mod gitlab_flow;
mod host_boot;
mod isolation;
mod log_cgroup;
mod logs;
mod mail;
mod notes_app;
mod pipeline_e2e;
mod pipelines;
mod render;
mod runtime;
mod schema;
mod secrets;
mod serve_logs;
