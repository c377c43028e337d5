//! The engine's integration tests that host a Burn server in the test process, in one binary of
//! their own: hosting a server switches every read of the process to Burn's asynchronous runtime
//! (`burn_std::set_runtime_kind`, for the whole process), which the tests in `tests/it/` must not
//! inherit. `cargo test --test serving MODULE::` runs one file's tests.

#[path = "../common/mod.rs"]
mod common;
mod server;

mod remote;
mod serve_security;
mod served_views;
