//! Spreadout's engine: unsupervised image embeddings with the instance spread-out method of
//! Ye et al., *Unsupervised Embedding Learning via Invariant and Spreading Instance Feature*
//! (CVPR 2019), trained with Burn on a GPU through wgpu, or on the CPU.
//!
//! The CLI (`src/main.rs`) and the desktop app are thin shells over these modules; see
//! `ARCHITECTURE.md` for how data flows between them.

pub mod atomic_file;
pub mod augment;
pub mod bench;
pub mod compare;
pub mod csv_text;
pub mod data;
pub mod demo;
pub mod device;
pub mod embed;
pub mod eval;
pub mod explore;
pub mod export;
pub mod link;
pub mod method;
pub mod model;
pub mod optim;
pub mod panics;
pub mod paths;
pub mod phash;
pub mod planted;
pub mod prefetch;
pub mod private_file;
pub mod remote;
pub mod resample;
pub mod rng;
pub mod score;
pub mod serve;
#[cfg(test)]
#[path = "../tests/common/skip.rs"]
mod skip;
pub mod train;
mod uploads;
