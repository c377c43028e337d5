//! Spreadout's own GPU kernels, written as CubeCL `#[cube]` kernels so that one source compiles
//! to WGSL, SPIR-V and MSL (a hand-written WGSL kernel is refused by the SPIR-V and MSL
//! compilers). Each kernel family is a module beside its Rust wrapper, which takes plain host
//! descriptions and a CubeCL compute client (the one Burn's wgpu device runs on).
//!
//! The kernels compute what the engine's CPU code computes, from parameters the engine draws on
//! the host: the CPU code stays the reference and the fallback, and the tests comparing the two
//! live beside that reference, in the engine (`tests/it/wgpu_views.rs`).

pub mod batch_norm;
pub mod burn_glue;
pub mod views;
