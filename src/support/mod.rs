//! Helpers every layer may use and none of them owns: files written atomically or privately,
//! CSV text, paths where they leave the process, panics in words, the run's random streams, a
//! bounded producer thread and the upload tally. Nothing here knows about images, models or
//! training.

pub mod atomic_file;
pub mod csv_text;
pub mod error_kind;
#[cfg(windows)]
pub mod owner_only;
pub mod panics;
pub mod paths;
pub mod portable_math;
pub mod prefetch;
pub mod private_file;
pub mod rng;
pub(crate) mod uploads;
