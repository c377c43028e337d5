//! 2D convolution on NCHW data as im2col + GEMM, forward and backward.
//!
//! flex's own forward (`conv.rs`, shared with 1D and 3D) copies the input to NHWC, transposes
//! the weight and hands gemm a column-major right operand, which gemm packs element by element.
//! burn-backend's default `conv2d_weight_backward` runs a forward convolution whose kernel is the
//! whole output-gradient map: NHWC copies of both, an im2col of `batch × out_h × out_w` values per
//! kernel position and a GEMM only `kernel_h × kernel_w` (9) columns wide; its default
//! `conv2d_x_backward` runs a transposed convolution with its own layout copies. Here all three
//! are products over one im2col of the NCHW input, in the layouts gemm reads fastest:
//!
//! - forward: `y_n = W · col_n`, where `col_n` is sample `n`'s im2col (rows `(ci, kh, kw)`, the
//!   weight's own order; columns the output positions);
//! - weight gradient: `dWᵀ = Σ_n col_n · G_nᵀ`, transposed once at the end;
//! - input gradient: `col_n = Wᵀ · G_n`, scattered back into `dx_n` by col2im.
//!
//! Samples are taken in blocks so that each GEMM has at least [`BLOCK_COLUMNS`] columns (late
//! layers have few output positions per sample) while the im2col buffer stays within
//! [`MAX_COLUMN_ELEMENTS`]. The weight gradient is summed over a fixed number of partial sums,
//! independent of the number of threads, so a result does not depend on the machine it ran on.

use crate::ops::conv_common::{convert_bf16_to_f32, convert_f32_to_bf16};
use crate::{FlexTensor, Layout};
use alloc::vec;
use alloc::vec::Vec;
use burn_backend::DType;
use burn_backend::ops::ConvOptions;
use burn_backend::ops::conv::calculate_conv_output_size_asymmetric;
use burn_std::{Bytes, Shape, f16};

/// Columns (samples × output positions) a block's GEMM aims for.
const BLOCK_COLUMNS: usize = 1024;
/// The most elements one block's im2col buffer holds (16 MiB of f32).
const MAX_COLUMN_ELEMENTS: usize = 4 << 20;
/// Partial sums of the weight gradient, each over a contiguous run of blocks. Fixed, not the
/// thread count, so the summation order is the same on every machine.
const PARTIAL_SUMS: usize = 8;

/// A 2D convolution: `x` `[batch, channels_in, h, w]`, `weight` `[out, in / groups, kh, kw]`.
pub fn conv2d(
    x: FlexTensor,
    weight: FlexTensor,
    bias: Option<FlexTensor>,
    options: &ConvOptions<2>,
) -> FlexTensor {
    let geometry = Geometry::forward(&x, &weight, options);
    let mut inputs = vec![x, weight];
    inputs.extend(bias);
    by_dtype(inputs[0].dtype(), &inputs, |inputs, element| {
        let (x, weight, bias) = (&inputs[0], &inputs[1], inputs.get(2));
        match element {
            Element::F32 => geometry.output::<f32>(x, weight, bias, 0.0),
            Element::F64 => geometry.output::<f64>(x, weight, bias, 0.0),
            Element::F16 => geometry.output::<f16>(x, weight, bias, f16::ZERO),
        }
    })
}

/// Gradient of a 2D convolution with respect to its input `x`.
pub fn conv2d_x_backward(
    x: FlexTensor,
    weight: FlexTensor,
    output_grad: FlexTensor,
    options: &ConvOptions<2>,
) -> FlexTensor {
    let geometry = Geometry::backward(&x, &weight, &output_grad, options);
    by_dtype(x.dtype(), &[weight, output_grad], |inputs, element| {
        let [weight, output_grad] = inputs else {
            unreachable!()
        };
        match element {
            Element::F32 => geometry.x_grad::<f32>(weight, output_grad, 0.0),
            Element::F64 => geometry.x_grad::<f64>(weight, output_grad, 0.0),
            Element::F16 => geometry.x_grad::<f16>(weight, output_grad, f16::ZERO),
        }
    })
}

/// Gradient of a 2D convolution with respect to its `weight`.
pub fn conv2d_weight_backward(
    x: FlexTensor,
    weight: FlexTensor,
    output_grad: FlexTensor,
    options: &ConvOptions<2>,
) -> FlexTensor {
    let geometry = Geometry::backward(&x, &weight, &output_grad, options);
    by_dtype(x.dtype(), &[x, output_grad], |inputs, element| {
        let [x, output_grad] = inputs else {
            unreachable!()
        };
        match element {
            Element::F32 => geometry.weight_grad::<f32>(x, output_grad, 0.0),
            Element::F64 => geometry.weight_grad::<f64>(x, output_grad, 0.0),
            Element::F16 => geometry.weight_grad::<f16>(x, output_grad, f16::ZERO),
        }
    })
}

/// The element types `gemm` computes in natively; bf16 goes through f32.
enum Element {
    F32,
    F64,
    F16,
}

/// Runs `compute` on contiguous copies of `inputs` in the element type that computes `dtype`
/// (bf16 in f32, converted back).
fn by_dtype(
    dtype: DType,
    inputs: &[FlexTensor],
    compute: impl Fn(&[FlexTensor], Element) -> FlexTensor,
) -> FlexTensor {
    let contiguous = |convert: fn(&FlexTensor) -> FlexTensor| -> Vec<FlexTensor> {
        inputs.iter().map(convert).collect()
    };
    match dtype {
        DType::F32 => compute(&contiguous(FlexTensor::to_contiguous), Element::F32),
        DType::F64 => compute(&contiguous(FlexTensor::to_contiguous), Element::F64),
        DType::F16 => compute(&contiguous(FlexTensor::to_contiguous), Element::F16),
        DType::BF16 => {
            convert_f32_to_bf16(&compute(&contiguous(convert_bf16_to_f32), Element::F32))
        }
        dtype => panic!("conv2d backward: unsupported dtype {dtype:?}"),
    }
}

/// Shapes and options of one convolution, as its backward needs them.
struct Geometry {
    batch: usize,
    channels_in: usize,
    in_h: usize,
    in_w: usize,
    channels_out: usize,
    kernel_h: usize,
    kernel_w: usize,
    out_h: usize,
    out_w: usize,
    stride: [usize; 2],
    /// Padding before the first row and column; the padding after is implied by the output size.
    padding: [usize; 2],
    dilation: [usize; 2],
    groups: usize,
}

impl Geometry {
    /// The geometry of a convolution of `x` by `weight` whose output is `out_h × out_w`.
    fn new(
        x: &FlexTensor,
        weight: &FlexTensor,
        [out_h, out_w]: [usize; 2],
        options: &ConvOptions<2>,
    ) -> Self {
        let x = x.layout().shape();
        let w = weight.layout().shape();
        Self {
            batch: x[0],
            channels_in: x[1],
            in_h: x[2],
            in_w: x[3],
            channels_out: w[0],
            kernel_h: w[2],
            kernel_w: w[3],
            out_h,
            out_w,
            stride: options.stride,
            padding: options.padding_begin(),
            dilation: options.dilation,
            groups: options.groups,
        }
    }

    /// A backward pass's geometry: the output size is the gradient's.
    fn backward(
        x: &FlexTensor,
        weight: &FlexTensor,
        output_grad: &FlexTensor,
        options: &ConvOptions<2>,
    ) -> Self {
        let g = output_grad.layout().shape();
        Self::new(x, weight, [g[2], g[3]], options)
    }

    /// A forward convolution's geometry: the output size follows from `options`.
    fn forward(x: &FlexTensor, weight: &FlexTensor, options: &ConvOptions<2>) -> Self {
        let (x_shape, w) = (x.layout().shape(), weight.layout().shape());
        let out = |axis: usize| {
            calculate_conv_output_size_asymmetric(
                w[2 + axis],
                options.stride[axis],
                options.padding[axis],
                options.dilation[axis],
                x_shape[2 + axis],
            )
        };
        Self::new(x, weight, [out(0), out(1)], options)
    }

    /// Input channels per group: the rows of a group's im2col are `(ci, kh, kw)` over these.
    fn group_in(&self) -> usize {
        self.channels_in / self.groups
    }

    fn group_out(&self) -> usize {
        self.channels_out / self.groups
    }

    /// Rows of one group's im2col: the weight's inner size.
    fn rows(&self) -> usize {
        self.group_in() * self.kernel_h * self.kernel_w
    }

    /// Output positions per sample.
    fn positions(&self) -> usize {
        self.out_h * self.out_w
    }

    /// Samples per block: enough for [`BLOCK_COLUMNS`] columns, within the buffer bound.
    fn samples_per_block(&self) -> usize {
        let positions = self.positions().max(1);
        let by_columns = BLOCK_COLUMNS.div_ceil(positions);
        let by_memory = MAX_COLUMN_ELEMENTS / (self.rows() * positions).max(1);
        by_columns.min(by_memory).clamp(1, self.batch.max(1))
    }

    fn x_shape(&self) -> Shape {
        Shape::from(vec![self.batch, self.channels_in, self.in_h, self.in_w])
    }

    fn y_shape(&self) -> Shape {
        Shape::from(vec![self.batch, self.channels_out, self.out_h, self.out_w])
    }

    fn weight_shape(&self) -> Shape {
        Shape::from(vec![
            self.channels_out,
            self.group_in(),
            self.kernel_h,
            self.kernel_w,
        ])
    }

    /// `y_block = W · col_block` per group, plus the bias.
    fn output<T: Scalar>(
        &self,
        x: &FlexTensor,
        weight: &FlexTensor,
        bias: Option<&FlexTensor>,
        zero: T,
    ) -> FlexTensor {
        let x: &[T] = x.storage();
        let weight: &[T] = weight.storage();
        let bias: Option<&[T]> = bias.map(|b| b.storage());
        let per_block = self.samples_per_block();
        let positions = self.positions();
        let sample_len = self.channels_out * positions;
        let mut y = vec![zero; self.batch * sample_len];
        let blocks = self.batch.div_ceil(per_block);
        let fill = |block: usize, y: &mut [T]| {
            let first = block * per_block;
            let samples = y.len() / sample_len.max(1);
            let cols = samples * positions;
            let (mut column, mut product) = (Vec::new(), Vec::new());
            for group in 0..self.groups {
                self.im2col(x, first, samples, group, zero, &mut column);
                // One sample's group rows are contiguous in `y`; several samples' are not, so
                // their product goes through a buffer.
                let (dst, dst_rs) = if samples == 1 {
                    (&mut y[group * self.group_out() * positions..], positions)
                } else {
                    product.resize(self.group_out() * cols, zero);
                    (&mut product[..], cols)
                };
                let w = &weight[group * self.group_out() * self.rows()..];
                // SAFETY: `w` holds group_out × rows elements, `column` rows × cols and `dst`
                // group_out rows of `dst_rs` elements, `cols` of them written.
                unsafe {
                    gemm::gemm(
                        self.group_out(),
                        cols,
                        self.rows(),
                        dst.as_mut_ptr(),
                        1,
                        dst_rs as isize,
                        false,
                        w.as_ptr(),
                        1,
                        self.rows() as isize,
                        column.as_ptr(),
                        1,
                        cols as isize,
                        zero,
                        T::one(),
                        false,
                        false,
                        false,
                        gemm_parallelism(blocks),
                    );
                }
                if samples > 1 {
                    for (row, channel) in
                        (group * self.group_out()..(group + 1) * self.group_out()).enumerate()
                    {
                        for s in 0..samples {
                            y[(s * self.channels_out + channel) * positions..][..positions]
                                .copy_from_slice(
                                    &product[row * cols + s * positions..][..positions],
                                );
                        }
                    }
                }
            }
            if let Some(bias) = bias {
                for (plane, out) in y.chunks_exact_mut(positions.max(1)).enumerate() {
                    let b = bias[plane % self.channels_out];
                    out.iter_mut().for_each(|v| *v = v.add(b));
                }
            }
        };
        for_each_block(&mut y, per_block * sample_len.max(1), fill);
        T::tensor(y, self.y_shape())
    }

    /// `dW = Σ_blocks G_block · col_blockᵀ`, per group.
    fn weight_grad<T: Scalar>(
        &self,
        x: &FlexTensor,
        output_grad: &FlexTensor,
        zero: T,
    ) -> FlexTensor {
        let x: &[T] = x.storage();
        let output_grad: &[T] = output_grad.storage();
        let per_block = self.samples_per_block();
        let blocks = self.batch.div_ceil(per_block);
        let partials = blocks.min(PARTIAL_SUMS);
        let weight_len = self.channels_out * self.rows();
        let partial = |part: usize| -> Vec<T> {
            let mut sum_t = vec![zero; weight_len];
            let mut column = Vec::new();
            let mut buffer = Vec::new();
            for block in (part * blocks / partials)..((part + 1) * blocks / partials) {
                let first = block * per_block;
                let samples = per_block.min(self.batch - first);
                for group in 0..self.groups {
                    self.im2col(x, first, samples, group, zero, &mut column);
                    let gradient =
                        self.gather_gradient(output_grad, first, samples, group, zero, &mut buffer);
                    let cols = samples * self.positions();
                    let out = group * self.group_out();
                    // dWᵀ[(ci, kh, kw), co] += col · Gᵀ: the im2col as the row-major left
                    // operand. With it on the right (dW = G · colᵀ) it would be a column-major
                    // right operand, which gemm packs element by element (5× slower at width 16).
                    // SAFETY: `sum_t` holds rows × channels_out elements, `column` rows × cols
                    // and `gradient` group_out × cols, as the strides below read them.
                    unsafe {
                        gemm::gemm(
                            self.rows(),
                            self.group_out(),
                            cols,
                            sum_t[out..].as_mut_ptr(),
                            1,
                            self.channels_out as isize,
                            true,
                            column.as_ptr(),
                            1,
                            cols as isize,
                            gradient.as_ptr(),
                            cols as isize,
                            1,
                            T::one(),
                            T::one(),
                            false,
                            false,
                            false,
                            gemm_parallelism(partials),
                        );
                    }
                }
            }
            sum_t
        };
        let sums: Vec<Vec<T>> = map_parts(partials, partial);
        let mut total = sums.into_iter();
        let mut grad_t = total.next().unwrap_or_else(|| vec![zero; weight_len]);
        for sum in total {
            for (g, s) in grad_t.iter_mut().zip(&sum) {
                *g = g.add(*s);
            }
        }
        let (rows, channels) = (self.rows(), self.channels_out);
        let mut grad = vec![zero; weight_len];
        for (r, row) in grad_t.chunks_exact(channels).enumerate() {
            for (co, &value) in row.iter().enumerate() {
                grad[co * rows + r] = value;
            }
        }
        T::tensor(grad, self.weight_shape())
    }

    /// `col_block = Wᵀ · G_block`, scattered into each sample's `dx` (col2im), per group.
    fn x_grad<T: Scalar>(
        &self,
        weight: &FlexTensor,
        output_grad: &FlexTensor,
        zero: T,
    ) -> FlexTensor {
        let weight: &[T] = weight.storage();
        let output_grad: &[T] = output_grad.storage();
        let per_block = self.samples_per_block();
        let sample_len = self.channels_in * self.in_h * self.in_w;
        let mut grad = vec![zero; self.batch * sample_len];
        let blocks = self.batch.div_ceil(per_block);
        let fill = |block: usize, dx: &mut [T]| {
            let first = block * per_block;
            let samples = dx.len() / sample_len.max(1);
            let mut column = Vec::new();
            let mut buffer = Vec::new();
            for group in 0..self.groups {
                let gradient =
                    self.gather_gradient(output_grad, first, samples, group, zero, &mut buffer);
                let cols = samples * self.positions();
                // Every element is written by the GEMM.
                column.resize(self.rows() * cols, zero);
                let w = &weight[group * self.group_out() * self.rows()..];
                // SAFETY: `w` holds group_out × rows elements (read transposed), `gradient`
                // group_out × cols and `column` rows × cols.
                unsafe {
                    gemm::gemm(
                        self.rows(),
                        cols,
                        self.group_out(),
                        column.as_mut_ptr(),
                        1,
                        cols as isize,
                        false,
                        w.as_ptr(),
                        self.rows() as isize,
                        1,
                        gradient.as_ptr(),
                        1,
                        cols as isize,
                        zero,
                        T::one(),
                        false,
                        false,
                        false,
                        gemm_parallelism(blocks),
                    );
                }
                self.col2im(&column, samples, group, dx);
            }
        };
        for_each_block(&mut grad, per_block * sample_len.max(1), fill);
        T::tensor(grad, self.x_shape())
    }

    /// `G` of samples `first..first + samples` and one group's output channels as one
    /// `[group_out, samples × positions]` matrix: one sample's rows as they lie, several
    /// samples' copied into `buffer` (NCHW keeps each sample's channels apart).
    fn gather_gradient<'a, T: Scalar>(
        &self,
        output_grad: &'a [T],
        first: usize,
        samples: usize,
        group: usize,
        zero: T,
        buffer: &'a mut Vec<T>,
    ) -> &'a [T] {
        let positions = self.positions();
        let channels = group * self.group_out()..(group + 1) * self.group_out();
        if samples == 1 {
            let start = (first * self.channels_out + channels.start) * positions;
            return &output_grad[start..start + self.group_out() * positions];
        }
        let cols = samples * positions;
        // Every element is copied below.
        buffer.resize(self.group_out() * cols, zero);
        for (row, channel) in channels.enumerate() {
            for s in 0..samples {
                let src = ((first + s) * self.channels_out + channel) * positions;
                buffer[row * cols + s * positions..][..positions]
                    .copy_from_slice(&output_grad[src..src + positions]);
            }
        }
        buffer
    }

    /// The im2col of samples `first..first + samples`, one group's input channels: row
    /// `(ci, kh, kw)` (the weight's own order), column `(sample, oh, ow)`; padding reads zero.
    fn im2col<T: Scalar>(
        &self,
        x: &[T],
        first: usize,
        samples: usize,
        group: usize,
        zero: T,
        column: &mut Vec<T>,
    ) {
        let positions = self.positions();
        let cols = samples * positions;
        // Every element is written below, padding included: no zeroing pass first.
        column.resize(self.rows() * cols, zero);
        let plane = self.in_h * self.in_w;
        for ci in 0..self.group_in() {
            let channel = group * self.group_in() + ci;
            for kh in 0..self.kernel_h {
                for kw in 0..self.kernel_w {
                    let row = (ci * self.kernel_h + kh) * self.kernel_w + kw;
                    let (lo, hi, offset) = self.valid_columns(kw);
                    for s in 0..samples {
                        let src = &x[((first + s) * self.channels_in + channel) * plane..][..plane];
                        let dst = &mut column[row * cols + s * positions..][..positions];
                        for oh in 0..self.out_h {
                            let dst_row = &mut dst[oh * self.out_w..][..self.out_w];
                            let Some(ih) = self.input_row(oh, kh) else {
                                dst_row.fill(zero);
                                continue;
                            };
                            let src_row = &src[ih * self.in_w..][..self.in_w];
                            dst_row[..lo].fill(zero);
                            copy_strided(src_row, &mut dst_row[lo..hi], lo, offset, self.stride[1]);
                            dst_row[hi..].fill(zero);
                        }
                    }
                }
            }
        }
    }

    /// Adds `column` (one group's rows, `samples` samples' columns) into `dx` at the input
    /// positions each entry was read from: the transpose of [`Self::im2col`].
    fn col2im<T: Scalar>(&self, column: &[T], samples: usize, group: usize, dx: &mut [T]) {
        let positions = self.positions();
        let cols = samples * positions;
        let plane = self.in_h * self.in_w;
        for s in 0..samples {
            for ci in 0..self.group_in() {
                let channel = group * self.group_in() + ci;
                let dst = &mut dx[(s * self.channels_in + channel) * plane..][..plane];
                for kh in 0..self.kernel_h {
                    for kw in 0..self.kernel_w {
                        let row = (ci * self.kernel_h + kh) * self.kernel_w + kw;
                        let (lo, hi, offset) = self.valid_columns(kw);
                        let src = &column[row * cols + s * positions..][..positions];
                        for oh in 0..self.out_h {
                            let Some(ih) = self.input_row(oh, kh) else {
                                continue;
                            };
                            let src_row = &src[oh * self.out_w..][..self.out_w];
                            let dst_row = &mut dst[ih * self.in_w..][..self.in_w];
                            add_strided(&src_row[lo..hi], dst_row, lo, offset, self.stride[1]);
                        }
                    }
                }
            }
        }
    }

    /// The input row output row `oh` reads at kernel row `kh`, if it is not padding.
    fn input_row(&self, oh: usize, kh: usize) -> Option<usize> {
        let ih = (oh * self.stride[0] + kh * self.dilation[0]).checked_sub(self.padding[0])?;
        (ih < self.in_h).then_some(ih)
    }

    /// For kernel column `kw`: the output columns `lo..hi` that read inside the input, and the
    /// signed offset `iw = ow × stride + offset`.
    fn valid_columns(&self, kw: usize) -> (usize, usize, isize) {
        let offset = (kw * self.dilation[1]) as isize - self.padding[1] as isize;
        let stride = self.stride[1] as isize;
        let lo = if offset >= 0 {
            0
        } else {
            (-offset + stride - 1) / stride
        };
        let end = self.in_w as isize - offset;
        let hi = if end <= 0 {
            0
        } else {
            (end + stride - 1) / stride
        };
        let hi = (hi as usize).min(self.out_w);
        let lo = (lo as usize).min(hi);
        (lo, hi, offset)
    }
}

/// `dst[i] = src[(lo + i) × stride + offset]`: one output row's valid span of an im2col row.
fn copy_strided<T: Copy>(src: &[T], dst: &mut [T], lo: usize, offset: isize, stride: usize) {
    let start = (lo as isize * stride as isize + offset) as usize;
    if stride == 1 {
        dst.copy_from_slice(&src[start..start + dst.len()]);
    } else {
        for (i, d) in dst.iter_mut().enumerate() {
            *d = src[start + i * stride];
        }
    }
}

/// `dst[(lo + i) × stride + offset] += src[i]`: the transpose of [`copy_strided`].
fn add_strided<T: Scalar>(src: &[T], dst: &mut [T], lo: usize, offset: isize, stride: usize) {
    let start = (lo as isize * stride as isize + offset) as usize;
    if stride == 1 {
        for (d, s) in dst[start..start + src.len()].iter_mut().zip(src) {
            *d = d.add(*s);
        }
    } else {
        for (i, s) in src.iter().enumerate() {
            let d = &mut dst[start + i * stride];
            *d = d.add(*s);
        }
    }
}

/// The element types this module computes in.
trait Scalar: burn_std::Element + bytemuck::Pod + Copy + Send + Sync + 'static {
    const DTYPE: DType;
    fn one() -> Self;
    fn add(self, other: Self) -> Self;

    fn tensor(values: Vec<Self>, shape: Shape) -> FlexTensor {
        FlexTensor::new(
            Bytes::from_elems(values),
            Layout::contiguous(shape),
            Self::DTYPE,
        )
    }
}

impl Scalar for f32 {
    const DTYPE: DType = DType::F32;
    fn one() -> Self {
        1.0
    }
    fn add(self, other: Self) -> Self {
        self + other
    }
}

impl Scalar for f64 {
    const DTYPE: DType = DType::F64;
    fn one() -> Self {
        1.0
    }
    fn add(self, other: Self) -> Self {
        self + other
    }
}

impl Scalar for f16 {
    const DTYPE: DType = DType::F16;
    fn one() -> Self {
        f16::ONE
    }
    fn add(self, other: Self) -> Self {
        self + other
    }
}

/// GEMM's own threads only when the blocks alone cannot keep the cores busy.
fn gemm_parallelism(tasks: usize) -> gemm::Parallelism {
    #[cfg(feature = "rayon")]
    if tasks < rayon::current_num_threads() {
        return gemm::Parallelism::Rayon(0);
    }
    let _ = tasks;
    gemm::Parallelism::None
}

/// `part(0..parts)`, in parallel where rayon is on; results in order.
fn map_parts<R: Send>(parts: usize, part: impl Fn(usize) -> R + Sync + Send) -> Vec<R> {
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        (0..parts).into_par_iter().map(part).collect()
    }
    #[cfg(not(feature = "rayon"))]
    {
        (0..parts).map(part).collect()
    }
}

/// `fill(block, chunk)` over `data`'s chunks of `chunk_len`, in parallel where rayon is on.
fn for_each_block<T: Send>(
    data: &mut [T],
    chunk_len: usize,
    fill: impl Fn(usize, &mut [T]) + Sync + Send,
) {
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        data.par_chunks_mut(chunk_len)
            .enumerate()
            .for_each(|(block, chunk)| fill(block, chunk));
    }
    #[cfg(not(feature = "rayon"))]
    data.chunks_mut(chunk_len)
        .enumerate()
        .for_each(|(block, chunk)| fill(block, chunk));
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn_backend::TensorData;

    /// Direct sums, as the definition of convolution states them.
    fn reference(
        x: &[f64],
        w: &[f64],
        g: &[f64],
        x_shape: [usize; 4],
        w_shape: [usize; 4],
        g_shape: [usize; 4],
        options: &ConvOptions<2>,
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let [n, c, h, wd] = x_shape;
        let [co, cg, kh, kw] = w_shape;
        let [_, _, oh, ow] = g_shape;
        let groups = options.groups;
        let (og, pad) = (co / groups, options.padding_begin());
        let mut dx = vec![0.0; x.len()];
        let mut dw = vec![0.0; w.len()];
        let mut out = vec![0.0; g.len()];
        for b in 0..n {
            for o in 0..co {
                let group = o / og;
                for i in 0..cg {
                    let ci = group * cg + i;
                    for p in 0..kh {
                        for q in 0..kw {
                            for y in 0..oh {
                                for z in 0..ow {
                                    let ih = (y * options.stride[0] + p * options.dilation[0])
                                        as isize
                                        - pad[0] as isize;
                                    let iw = (z * options.stride[1] + q * options.dilation[1])
                                        as isize
                                        - pad[1] as isize;
                                    if ih < 0 || iw < 0 || ih >= h as isize || iw >= wd as isize {
                                        continue;
                                    }
                                    let xi = ((b * c + ci) * h + ih as usize) * wd + iw as usize;
                                    let wi = ((o * cg + i) * kh + p) * kw + q;
                                    let gi = ((b * co + o) * oh + y) * ow + z;
                                    dx[xi] += w[wi] * g[gi];
                                    out[gi] += w[wi] * x[xi];
                                    dw[wi] += x[xi] * g[gi];
                                }
                            }
                        }
                    }
                }
            }
        }
        (dx, dw, out)
    }

    fn values(len: usize, seed: u64) -> Vec<f64> {
        let mut state = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..len)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 33) as f64 / (1u64 << 31) as f64) - 0.5
            })
            .collect()
    }

    fn check(x_shape: [usize; 4], w_shape: [usize; 4], options: ConvOptions<2>) {
        let oh = (x_shape[2] + options.padding[0].0 + options.padding[0].1
            - options.dilation[0] * (w_shape[2] - 1)
            - 1)
            / options.stride[0]
            + 1;
        let ow = (x_shape[3] + options.padding[1].0 + options.padding[1].1
            - options.dilation[1] * (w_shape[3] - 1)
            - 1)
            / options.stride[1]
            + 1;
        let g_shape = [x_shape[0], w_shape[0], oh, ow];
        let x = values(x_shape.iter().product(), 1);
        let w = values(w_shape.iter().product(), 2);
        let g = values(g_shape.iter().product(), 3);
        let (dx, dw, y) = reference(&x, &w, &g, x_shape, w_shape, g_shape, &options);
        let bias = values(w_shape[0], 4);
        let y: Vec<f64> = y
            .iter()
            .enumerate()
            .map(|(i, v)| v + bias[(i / (g_shape[2] * g_shape[3])) % w_shape[0]])
            .collect();
        let tensor = |v: &[f64], shape: [usize; 4]| {
            let v: Vec<f32> = v.iter().map(|v| *v as f32).collect();
            FlexTensor::from_data(TensorData::new(v, shape.to_vec()))
        };
        let (xt, wt, gt) = (
            tensor(&x, x_shape),
            tensor(&w, w_shape),
            tensor(&g, g_shape),
        );
        let bias: Vec<f32> = bias.iter().map(|v| *v as f32).collect();
        let bias = FlexTensor::from_data(TensorData::new(bias, vec![w_shape[0]]));
        let got_y: Vec<f32> = conv2d(xt.clone(), wt.clone(), Some(bias), &options)
            .into_data()
            .try_into_vec()
            .unwrap();
        let got_dx: Vec<f32> = conv2d_x_backward(xt.clone(), wt.clone(), gt.clone(), &options)
            .into_data()
            .try_into_vec()
            .unwrap();
        let got_dw: Vec<f32> = conv2d_weight_backward(xt, wt, gt, &options)
            .into_data()
            .try_into_vec()
            .unwrap();
        for (name, got, want) in [("y", got_y, y), ("dx", got_dx, dx), ("dw", got_dw, dw)] {
            assert_eq!(got.len(), want.len(), "{name}");
            for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (*a as f64 - b).abs() <= 1e-4 * (1.0 + b.abs()),
                    "{name}[{i}]: {a} vs {b} ({x_shape:?} {w_shape:?} {options:?})"
                );
            }
        }
    }

    #[test]
    fn forward_and_gradients_match_the_direct_sums() {
        // 3×3 padded, stride 1 and 2; 1×1 strided shortcut; 7×7 stride-2 stem; grouped; dilated;
        // asymmetric padding; a batch spanning several blocks.
        check(
            [2, 3, 8, 8],
            [4, 3, 3, 3],
            ConvOptions::new([1, 1], [1, 1], [1, 1], 1),
        );
        check(
            [3, 4, 9, 7],
            [6, 4, 3, 3],
            ConvOptions::new([2, 2], [1, 1], [1, 1], 1),
        );
        check(
            [2, 4, 8, 8],
            [8, 4, 1, 1],
            ConvOptions::new([2, 2], [0, 0], [1, 1], 1),
        );
        check(
            [2, 3, 16, 16],
            [4, 3, 7, 7],
            ConvOptions::new([2, 2], [3, 3], [1, 1], 1),
        );
        check(
            [2, 4, 6, 6],
            [6, 2, 3, 3],
            ConvOptions::new([1, 1], [1, 1], [1, 1], 2),
        );
        check(
            [1, 2, 9, 9],
            [3, 2, 3, 3],
            ConvOptions::new([1, 1], [2, 2], [2, 2], 1),
        );
        check(
            [2, 2, 7, 8],
            [3, 2, 3, 2],
            ConvOptions::new_with_padding([1, 2], [(0, 2), (1, 0)], [1, 1], 1),
        );
        check(
            [300, 2, 2, 2],
            [3, 2, 3, 3],
            ConvOptions::new([1, 1], [1, 1], [1, 1], 1),
        );
    }
}
