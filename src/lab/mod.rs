//! The engine's tooling around the product: `spreadout bench`'s measurements, the method
//! comparisons of the paper's tables (`spreadout compare`) and the built-in demo data set. It
//! sits above every other layer and nothing in the engine imports it.

pub mod bench;
pub mod compare;
pub mod demo;
