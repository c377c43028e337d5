//! The engine's integration tests that do not host a server, in one binary (as ripgrep's
//! `tests/tests.rs`): Burn and wgpu are linked once for all of them rather than once per file, and
//! the wgpu tests share one adapter and its compiled kernels. `cargo test --test it MODULE::` runs
//! one file's tests, e.g. `cargo test --workspace --features spreadout-app/custom-protocol --test
//! it wgpu_views:: -- --nocapture`.
//!
//! The tests that host a Burn server live in `tests/serving/`: hosting one switches the whole
//! process to Burn's asynchronous runtime, which these tests must not inherit.

#[path = "../common/mod.rs"]
mod common;
#[path = "../common/skip.rs"]
mod skip;

mod cli;
mod compare;
mod cpu_kernels;
// Unix only: it stops runs with SIGINT and SIGKILL from outside, which Windows has no way to
// send (a console's Ctrl-C reaches only the processes attached to it).
#[cfg(unix)]
mod lifecycle;
mod old_runs;
mod training;
mod views_requests;
mod wgpu_batch_norm;
mod wgpu_smoke;
mod wgpu_views;
