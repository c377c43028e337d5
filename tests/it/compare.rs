//! How the kernel tests compare a backend's numbers with a reference's.

use burn::tensor::Tensor;

/// A tensor's values on the host, as f32.
pub fn values<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor.into_data().convert::<f32>().try_to_vec().unwrap()
}

/// The largest difference over the largest magnitude of `want`.
pub fn relative_error(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len());
    let largest = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let apart = got
        .iter()
        .zip(want)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    apart / largest.max(f32::MIN_POSITIVE)
}
