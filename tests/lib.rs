//! berth's integration tests: one binary, one module per area.

mod bad_input;
mod cli;
mod common;
mod deploy;
#[allow(dead_code)]
mod fake;
mod isolation;
mod logs;
mod render;
mod runtime;
mod schema;
