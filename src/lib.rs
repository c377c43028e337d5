//! Spreadout's engine: unsupervised image embeddings with the instance spread-out method of
//! Ye et al., *Unsupervised Embedding Learning via Invariant and Spreading Instance Feature*
//! (CVPR 2019), trained with Burn on a GPU through wgpu, or on the CPU.
//!
//! The CLI (`src/cli/`) and the desktop app are thin shells over these modules; see
//! `ARCHITECTURE.md` for how data flows between them.

pub mod augment;
pub mod batch_norm;
pub mod data;
pub mod device;
pub mod embed;
pub mod eval;
pub mod explore;
pub mod lab;
pub mod link;
pub mod method;
pub mod model;
pub mod model_files;
pub mod optim;
pub mod phash;
pub mod remote;
pub mod resample;
pub mod score;
pub mod serve;
#[cfg(test)]
#[path = "../tests/common/skip.rs"]
mod skip;
pub mod support;
pub mod tensor_files;
pub mod train;
