//! Training-mode batch normalisation in one pass each way.
//!
//! burn-backend's default `batch_norm_train` and `batch_norm_train_backward` are written with
//! tensor operations: a channels-first copy for each of the four reductions, and a fresh tensor
//! for each of about ten element-wise products. Here each channel's statistics are read from the
//! NCHW planes where they lie (summed in f64, so a large batch loses nothing), and the output or
//! the input gradient is written in one pass over the planes.
//!
//! f32 and f64 compute natively; f16 and bf16 through f32, whose rounding is finer than theirs.

use crate::ops::conv_common::{convert_bf16_to_f32, convert_f32_to_bf16};
use crate::ops::module::{cast_from_f32, cast_to_f32};
use crate::{FlexTensor, Layout};
use alloc::vec::Vec;
use burn_backend::DType;
use burn_std::{Bytes, Shape, f16};

/// `(output, mean, variance)`: `x` normalised by its own per-channel mean and biased variance,
/// then scaled by `gamma` and shifted by `beta`.
pub fn batch_norm_train(
    x: FlexTensor,
    gamma: FlexTensor,
    beta: FlexTensor,
    epsilon: f64,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    let [a, b, c] = in_f32_or_f64([x, gamma, beta], |[x, gamma, beta]| match x.dtype() {
        DType::F64 => train::<f64>(&x, &gamma, &beta, epsilon),
        _ => train::<f32>(&x, &gamma, &beta, epsilon),
    });
    (a, b, c)
}

/// `(x_grad, gamma_grad, beta_grad)` of [`batch_norm_train`] given its output's gradient.
pub fn batch_norm_train_backward(
    x: FlexTensor,
    gamma: FlexTensor,
    mean: FlexTensor,
    variance: FlexTensor,
    epsilon: f64,
    output_grad: FlexTensor,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    let inputs = [x, gamma, mean, variance, output_grad];
    let [a, b, c] = in_f32_or_f64(inputs, |[x, gamma, mean, variance, output_grad]| {
        match x.dtype() {
            DType::F64 => backward::<f64>(&x, &gamma, &mean, &variance, epsilon, &output_grad),
            _ => backward::<f32>(&x, &gamma, &mean, &variance, epsilon, &output_grad),
        }
    });
    (a, b, c)
}

/// `compute` on contiguous copies of `inputs` in f32 or f64, its three results back in the
/// inputs' dtype (f16 and bf16 go through f32).
fn in_f32_or_f64<const N: usize>(
    inputs: [FlexTensor; N],
    compute: impl Fn([FlexTensor; N]) -> [FlexTensor; 3],
) -> [FlexTensor; 3] {
    match inputs[0].dtype() {
        DType::F32 | DType::F64 => compute(inputs.map(|t| t.to_contiguous())),
        DType::F16 => compute(inputs.map(|t| cast_to_f32(t, f16::to_f32)))
            .map(|t| cast_from_f32(t, f16::from_f32)),
        DType::BF16 => {
            compute(inputs.map(|t| convert_bf16_to_f32(&t))).map(|t| convert_f32_to_bf16(&t))
        }
        dtype => panic!("batch norm: unsupported dtype {dtype:?}"),
    }
}

fn train<T: Value>(
    x: &FlexTensor,
    gamma: &FlexTensor,
    beta: &FlexTensor,
    epsilon: f64,
) -> [FlexTensor; 3] {
    let planes = Planes::of(x);
    let (x, gamma, beta) = (x.storage::<T>(), gamma.storage::<T>(), beta.storage::<T>());
    let stats: Vec<(f64, f64)> = map_channels(planes.channels, |c| {
        let mut sum = 0.0f64;
        for plane in planes.of_channel(x, c) {
            sum += plane.iter().map(|v| v.wide()).sum::<f64>();
        }
        let mean = sum / planes.per_channel() as f64;
        let mut squares = 0.0f64;
        for plane in planes.of_channel(x, c) {
            squares += plane
                .iter()
                .map(|v| (v.wide() - mean) * (v.wide() - mean))
                .sum::<f64>();
        }
        (mean, squares / planes.per_channel() as f64)
    });
    let scale_shift: Vec<(T, T)> = stats
        .iter()
        .enumerate()
        .map(|(c, &(mean, variance))| {
            let scale = gamma[c].wide() / (variance + epsilon).sqrt();
            (T::narrow(scale), T::narrow(beta[c].wide() - mean * scale))
        })
        .collect();
    let output = planes.map(x, x, |c, v, _| {
        let (scale, shift) = scale_shift[c];
        v.mul_add(scale, shift)
    });
    [
        T::tensor(output, planes.shape()),
        T::tensor(
            stats.iter().map(|s| T::narrow(s.0)).collect(),
            [planes.channels].into(),
        ),
        T::tensor(
            stats.iter().map(|s| T::narrow(s.1)).collect(),
            [planes.channels].into(),
        ),
    ]
}

fn backward<T: Value>(
    x: &FlexTensor,
    gamma: &FlexTensor,
    mean: &FlexTensor,
    variance: &FlexTensor,
    epsilon: f64,
    output_grad: &FlexTensor,
) -> [FlexTensor; 3] {
    let planes = Planes::of(x);
    let (x, gamma, output_grad) = (
        x.storage::<T>(),
        gamma.storage::<T>(),
        output_grad.storage::<T>(),
    );
    let (mean, variance) = (mean.storage::<T>(), variance.storage::<T>());
    let inv_std: Vec<f64> = variance
        .iter()
        .map(|v| 1.0 / (v.wide() + epsilon).sqrt())
        .collect();
    // Σ g and Σ g·x̂ per channel: β's and γ's gradients, and the two means the input's needs.
    let sums: Vec<(f64, f64)> = map_channels(planes.channels, |c| {
        let (mut g_sum, mut gx_sum) = (0.0f64, 0.0f64);
        let (m, s) = (mean[c].wide(), inv_std[c]);
        for (xs, gs) in planes
            .of_channel(x, c)
            .zip(planes.of_channel(output_grad, c))
        {
            for (v, g) in xs.iter().zip(gs) {
                g_sum += g.wide();
                gx_sum += g.wide() * (v.wide() - m) * s;
            }
        }
        (g_sum, gx_sum)
    });
    let count = planes.per_channel() as f64;
    // dx = γ·s·(g − Σg/N − x̂·Σgx̂/N) with x̂ = (x − m)·s: per channel, a·g + b·x + c.
    let coefficients: Vec<(T, T, T)> = sums
        .iter()
        .enumerate()
        .map(|(c, &(g_sum, gx_sum))| {
            let (m, s) = (mean[c].wide(), inv_std[c]);
            let a = gamma[c].wide() * s;
            let b = -a * s * gx_sum / count;
            (
                T::narrow(a),
                T::narrow(b),
                T::narrow(-a * g_sum / count - b * m),
            )
        })
        .collect();
    let x_grad = planes.map(x, output_grad, |c, v, g| {
        let (a, b, shift) = coefficients[c];
        g.mul_add(a, v.mul_add(b, shift))
    });
    [
        T::tensor(x_grad, planes.shape()),
        T::tensor(
            sums.iter().map(|s| T::narrow(s.1)).collect(),
            [planes.channels].into(),
        ),
        T::tensor(
            sums.iter().map(|s| T::narrow(s.0)).collect(),
            [planes.channels].into(),
        ),
    ]
}

/// The element types this module computes in.
trait Value: burn_std::Element + bytemuck::Pod + Copy + Send + Sync {
    const DTYPE: DType;
    fn wide(self) -> f64;
    fn narrow(value: f64) -> Self;
    fn mul_add(self, a: Self, b: Self) -> Self;

    fn tensor(values: Vec<Self>, shape: Shape) -> FlexTensor {
        FlexTensor::new(
            Bytes::from_elems(values),
            Layout::contiguous(shape),
            Self::DTYPE,
        )
    }
}

impl Value for f32 {
    const DTYPE: DType = DType::F32;
    fn wide(self) -> f64 {
        self as f64
    }
    fn narrow(value: f64) -> Self {
        value as f32
    }
    fn mul_add(self, a: Self, b: Self) -> Self {
        self * a + b
    }
}

impl Value for f64 {
    const DTYPE: DType = DType::F64;
    fn wide(self) -> f64 {
        self
    }
    fn narrow(value: f64) -> Self {
        value
    }
    fn mul_add(self, a: Self, b: Self) -> Self {
        self * a + b
    }
}

/// A `[batch, channels, ...]` tensor seen as `batch × channels` planes.
struct Planes {
    batch: usize,
    channels: usize,
    plane: usize,
    shape: Vec<usize>,
}

impl Planes {
    fn of(x: &FlexTensor) -> Self {
        let shape = x.layout().shape();
        Self {
            batch: shape[0],
            channels: shape[1],
            plane: shape[2..].iter().product(),
            shape: shape.to_vec(),
        }
    }

    fn shape(&self) -> Shape {
        Shape::from(self.shape.clone())
    }

    fn per_channel(&self) -> usize {
        self.batch * self.plane
    }

    /// Channel `c`'s plane of each sample.
    fn of_channel<'a, T>(&self, values: &'a [T], c: usize) -> impl Iterator<Item = &'a [T]> {
        let (channels, plane) = (self.channels, self.plane);
        (0..self.batch).map(move |n| &values[(n * channels + c) * plane..][..plane])
    }

    /// `f(channel, a, b)` at each position of `a` and `b`, in parallel over the planes.
    fn map<T: Value>(&self, a: &[T], b: &[T], f: impl Fn(usize, T, T) -> T + Sync) -> Vec<T> {
        let mut out = alloc::vec![T::narrow(0.0); a.len()];
        let plane = self.plane.max(1);
        let fill = |(index, chunk): (usize, &mut [T])| {
            let c = index % self.channels;
            let (a, b) = (
                &a[index * plane..][..chunk.len()],
                &b[index * plane..][..chunk.len()],
            );
            for ((o, &a), &b) in chunk.iter_mut().zip(a).zip(b) {
                *o = f(c, a, b);
            }
        };
        #[cfg(feature = "rayon")]
        {
            use rayon::prelude::*;
            out.par_chunks_mut(plane).enumerate().for_each(fill);
        }
        #[cfg(not(feature = "rayon"))]
        out.chunks_mut(plane).enumerate().for_each(fill);
        out
    }
}

/// `f(0..channels)`, in parallel where rayon is on.
fn map_channels<R: Send>(channels: usize, f: impl Fn(usize) -> R + Sync + Send) -> Vec<R> {
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        (0..channels).into_par_iter().map(f).collect()
    }
    #[cfg(not(feature = "rayon"))]
    (0..channels).map(f).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn_backend::TensorData;

    fn tensor(values: &[f64], shape: &[usize]) -> FlexTensor {
        let values: Vec<f32> = values.iter().map(|&v| v as f32).collect();
        FlexTensor::from_data(TensorData::new(values, shape.to_vec()))
    }

    fn read(tensor: FlexTensor) -> Vec<f64> {
        let values: Vec<f32> = tensor.into_data().try_into_vec().unwrap();
        values.into_iter().map(f64::from).collect()
    }

    /// The textbook formulas, value by value, and the gradient by central differences of
    /// `Σ output · upstream`.
    #[test]
    fn matches_the_formulas_and_finite_differences() {
        let (n, c, hw) = (3usize, 2usize, 5usize);
        let x: Vec<f64> = (0..n * c * hw)
            .map(|i| ((i * 37 % 23) as f64 / 7.0) - 1.5)
            .collect();
        let upstream: Vec<f64> = (0..n * c * hw)
            .map(|i| ((i * 11 % 17) as f64 / 9.0) - 0.8)
            .collect();
        let (gamma, beta, eps) = (vec![1.5, -0.5], vec![0.25, 2.0], 1e-5);
        let shape = [n, c, 1, hw];
        let forward = |x: &[f64]| -> f64 {
            let (out, _, _) = batch_norm_train(
                tensor(x, &shape),
                tensor(&gamma, &[c]),
                tensor(&beta, &[c]),
                eps,
            );
            read(out).iter().zip(&upstream).map(|(o, u)| o * u).sum()
        };
        let (out, mean, var) = batch_norm_train(
            tensor(&x, &shape),
            tensor(&gamma, &[c]),
            tensor(&beta, &[c]),
            eps,
        );
        let (out, mean_v, var_v) = (read(out), read(mean.clone()), read(var.clone()));
        for ch in 0..c {
            let xs: Vec<f64> = (0..n)
                .flat_map(|b| x[(b * c + ch) * hw..][..hw].to_vec())
                .collect();
            let m = xs.iter().sum::<f64>() / xs.len() as f64;
            let v = xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / xs.len() as f64;
            assert!((mean_v[ch] - m).abs() < 1e-6 && (var_v[ch] - v).abs() < 1e-5);
            for b in 0..n {
                for i in 0..hw {
                    let at = (b * c + ch) * hw + i;
                    let want = (x[at] - m) / (v + eps).sqrt() * gamma[ch] + beta[ch];
                    assert!((out[at] - want).abs() < 1e-5, "{} vs {want}", out[at]);
                }
            }
        }
        let (x_grad, gamma_grad, beta_grad) = batch_norm_train_backward(
            tensor(&x, &shape),
            tensor(&gamma, &[c]),
            mean,
            var,
            eps,
            tensor(&upstream, &shape),
        );
        let x_grad = read(x_grad);
        for at in [0, 7, 13, 29] {
            let h = 1e-2;
            let (mut up, mut down) = (x.clone(), x.clone());
            up[at] += h;
            down[at] -= h;
            let numeric = (forward(&up) - forward(&down)) / (2.0 * h);
            assert!(
                (x_grad[at] - numeric).abs() < 2e-3,
                "x[{at}]: {} vs {numeric}",
                x_grad[at]
            );
        }
        let (gamma_grad, beta_grad) = (read(gamma_grad), read(beta_grad));
        for ch in 0..c {
            let (mut g, mut b) = (0.0, 0.0);
            for batch in 0..n {
                for i in 0..hw {
                    let at = (batch * c + ch) * hw + i;
                    b += upstream[at];
                    g += upstream[at] * (out[at] - beta[ch]) / gamma[ch];
                }
            }
            assert!((beta_grad[ch] - b).abs() < 1e-4, "{} vs {b}", beta_grad[ch]);
            assert!(
                (gamma_grad[ch] - g).abs() < 1e-3,
                "{} vs {g}",
                gamma_grad[ch]
            );
        }
    }
}
