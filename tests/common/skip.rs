//! A test that returns early because this machine lacks something (an f16 adapter, say) checked
//! nothing, yet libtest counts it as passed and hides what it printed. [`because`] records it as a
//! skip instead: a line `test name<TAB>reason` appended to the file `$SPREADOUT_SKIPS` names
//! (scripts/test.sh sets it and moves those tests from passed to skipped in its total, naming
//! each), and `SKIPPED: name: reason` on stderr for whoever runs the test with `--nocapture`.
//!
//! One file for both kinds of test binary: the engine's unit tests include it from `src/lib.rs`
//! (`#[cfg(test)]`), and the `it` integration test binary by path (`tests/it/main.rs`) rather than
//! through `common`: the `serving` binary uses `common` and has nothing to skip, and a helper a
//! binary leaves unused fails clippy's dead-code check.

use std::io::Write;

/// Records that the calling test is skipped for `reason`; the test returns right after.
pub fn because(reason: &str) {
    // libtest runs each test on a thread named after the test's path.
    let thread = std::thread::current();
    let test = thread.name().expect("libtest names each test's thread");
    // One line per skip, whatever the reason holds: tabs and line breaks would split it.
    let reason = reason.replace(['\t', '\n', '\r'], " ");
    eprintln!("SKIPPED: {test}: {reason}");
    if let Some(path) = std::env::var_os("SPREADOUT_SKIPS") {
        // A single appended write per line keeps lines whole when tests run in parallel.
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut file| file.write_all(format!("{test}\t{reason}\n").as_bytes()))
            .unwrap_or_else(|e| {
                panic!("cannot record the skip in {}: {e}", path.to_string_lossy())
            });
    }
}
