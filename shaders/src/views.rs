//! Training views built on the device: one launch per batch, one cube per view, writing the
//! network's f32 input. Each view resamples its crop with PIL's antialiased bilinear taps (computed
//! on the host, clipped to the crop, the flip folded in by reversing the column taps), applies
//! ColorJitter in its drawn order and RandomGrayscale, rounds to 8 bits as the CPU path stores a
//! view, and normalises.
//!
//! Contrast blends towards the mean luma of the view as it stands at that point of the order: a
//! sum over the cube (each unit's partial sum in shared memory) between two passes over the
//! pixels. The second pass recomputes the
//! resampling rather than keep a copy of the view, which would need a buffer per view in global
//! memory; the taps are few (two to five per axis at the engine's crops).

use cubecl::prelude::*;
use cubecl::server::Handle;

/// Taps per output sample, at most. PIL's triangle over a crop `s` times the output's side spans
/// about `2s + 2` source samples. The engine's views come from its cache, whose shorter side is
/// 1.5× the training side, and RandomResizedCrop's aspect limits (3/4 to 4/3) keep a crop within
/// 2× the output's side on either axis (6 taps); 8 leaves room, and each sample's weights are
/// padded to it in the uploaded table.
pub const MAX_TAPS: usize = 8;

/// Units per cube (one cube per view): WebGPU's guaranteed workgroup size.
const UNITS: u32 = 256;

/// Integers per view in the kernel's table: source offset, row stride (bytes), jitter order,
/// flags.
const VIEW_INTS: usize = 4;

/// Floats per view: brightness, contrast, saturation, hue shift.
const VIEW_FLOATS: usize = 4;

/// One of ColorJitter's adjustments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JitterOp {
    /// Scales every value.
    Brightness,
    /// Blends towards the view's mean luma.
    Contrast,
    /// Blends each pixel towards its own luma.
    Saturation,
    /// Shifts the hue (torchvision's HSV formulas).
    Hue,
}

/// A ColorJitter draw: the order and the four factors.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Jitter {
    /// The adjustments in the order they apply.
    pub order: [JitterOp; 4],
    /// Brightness factor.
    pub brightness: f32,
    /// Contrast factor.
    pub contrast: f32,
    /// Saturation factor.
    pub saturation: f32,
    /// Hue shift, a fraction of the colour wheel.
    pub hue_shift: f32,
}

/// The source samples of one output sample along an axis, and their weights (summing to 1).
#[derive(Debug, Clone, PartialEq)]
pub struct Tap {
    /// The first source sample (row or column of the source image).
    pub first: u32,
    /// One weight per source sample from `first` on; at most [`MAX_TAPS`].
    pub weights: Vec<f32>,
}

/// One view to build: which source, its taps per output row and column, its colour draws.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewSpec {
    /// Index into the batch's sources.
    pub source: usize,
    /// One tap per output row, top to bottom.
    pub rows: Vec<Tap>,
    /// One tap per output column, left to right (a flipped view lists them mirrored).
    pub columns: Vec<Tap>,
    /// ColorJitter's draw, when it applies.
    pub jitter: Option<Jitter>,
    /// Whether RandomGrayscale turned the view grey.
    pub grayscale: bool,
}

/// A source image: 8-bit RGB, row-major, interleaved.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `3 · width · height` bytes.
    pub pixels: &'a [u8],
}

/// What every view of a batch shares.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Constants {
    /// Per channel, `1 / (255 · std)`: the normalisation's scale of an 8-bit value.
    pub scale: [f32; 3],
    /// Per channel, `−mean / std`.
    pub shift: [f32; 3],
    /// The luma weights of greyscale, contrast and saturation.
    pub luma: [f32; 3],
}

/// A batch the kernel cannot build as described.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ViewError {
    /// A view names a source the batch does not have.
    #[error("view {view} reads source {source_index}, and the batch has {sources}")]
    NoSource {
        /// The view.
        view: usize,
        /// The source it names.
        source_index: usize,
        /// Sources in the batch.
        sources: usize,
    },
    /// A source's bytes do not match its size.
    #[error("source {source_index} has {bytes} bytes, not the {expected} of {width}×{height} RGB")]
    SourceSize {
        /// The source.
        source_index: usize,
        /// Its bytes.
        bytes: usize,
        /// `3 · width · height`.
        expected: usize,
        /// Its width.
        width: u32,
        /// Its height.
        height: u32,
    },
    /// A view's taps do not give one per output sample, or one reads outside its source or
    /// has more weights than the kernel takes.
    #[error("view {view}: {problem}")]
    Taps {
        /// The view.
        view: usize,
        /// What is wrong.
        problem: String,
    },
}

/// Builds `views` of `sources` at `size`×`size` on the device of `client`: a buffer of
/// `views.len() × 3 × size × size` f32, planar per view, normalised with `constants`.
///
/// # Errors
/// [`ViewError`] when a view does not fit its source or the kernel's limits (checked here, so
/// the kernel never reads outside its buffers).
pub fn build_views(
    client: &Client,
    sources: &[Source<'_>],
    views: &[ViewSpec],
    size: u32,
    constants: &Constants,
) -> Result<Handle, ViewError> {
    check(sources, views, size)?;
    let side = size as usize;
    // The sources, one after another, as little-endian 32-bit words (WGSL has no 8-bit loads).
    let mut bytes = Vec::new();
    let mut offsets = Vec::with_capacity(sources.len());
    for source in sources {
        offsets.push(u32::try_from(bytes.len()).expect("a batch's sources fit 4 GiB"));
        bytes.extend_from_slice(source.pixels);
    }
    bytes.resize(bytes.len().div_ceil(4).max(1) * 4, 0);
    let words: Vec<u32> = bytes
        .chunks_exact(4)
        .map(|word| u32::from_le_bytes([word[0], word[1], word[2], word[3]]))
        .collect();

    let mut ints = Vec::with_capacity(views.len() * VIEW_INTS);
    let mut floats = Vec::with_capacity(views.len() * VIEW_FLOATS);
    let mut first = Vec::with_capacity(views.len() * 2 * side);
    let mut count = Vec::with_capacity(views.len() * 2 * side);
    let mut weights = vec![0.0f32; views.len() * 2 * side * MAX_TAPS];
    for (index, view) in views.iter().enumerate() {
        let source = &sources[view.source];
        let (order, factors) = match view.jitter {
            Some(jitter) => (
                jitter
                    .order
                    .iter()
                    .enumerate()
                    .map(|(k, op)| op_code(*op) << (2 * k))
                    .sum(),
                [
                    jitter.brightness,
                    jitter.contrast,
                    jitter.saturation,
                    jitter.hue_shift,
                ],
            ),
            None => (0, [1.0, 1.0, 1.0, 0.0]),
        };
        let flags = u32::from(view.jitter.is_some()) | (u32::from(view.grayscale) << 1);
        ints.extend([offsets[view.source], 3 * source.width, order, flags]);
        floats.extend(factors);
        for (axis, taps) in [&view.rows, &view.columns].into_iter().enumerate() {
            for (sample, tap) in taps.iter().enumerate() {
                first.push(tap.first);
                count.push(tap.weights.len() as u32);
                let at = ((index * 2 + axis) * side + sample) * MAX_TAPS;
                weights[at..at + tap.weights.len()].copy_from_slice(&tap.weights);
            }
        }
    }
    let table = [constants.scale, constants.shift, constants.luma].concat();

    let upload_u32 = |values: &[u32]| client.create_from_slice(u32::as_bytes(values));
    let upload_f32 = |values: &[f32]| client.create_from_slice(f32::as_bytes(values));
    let output_len = views.len() * 3 * side * side;
    let output = client.empty(output_len * size_of::<f32>());
    let buffer = |handle: Handle, len: usize| unsafe { BufferArg::from_raw_parts(handle, len) };
    views_kernel::launch(
        client,
        CubeCount::Static(views.len() as u32, 1, 1),
        CubeDim::new_1d(UNITS),
        buffer(upload_u32(&words), words.len()),
        buffer(upload_u32(&ints), ints.len()),
        buffer(upload_f32(&floats), floats.len()),
        buffer(upload_u32(&first), first.len()),
        buffer(upload_u32(&count), count.len()),
        buffer(upload_f32(&weights), weights.len()),
        buffer(upload_f32(&table), table.len()),
        buffer(output.clone(), output_len),
        size,
    );
    Ok(output)
}

/// Bytes of the tables [`build_views`] uploads beside the sources for `views` views at `size`:
/// per view its integers and floats, and per output row and column its first tap, tap count and
/// [`MAX_TAPS`] weights; and the constants.
pub fn table_bytes(views: usize, size: u32) -> usize {
    let per_sample = 2 * 4 + MAX_TAPS * 4;
    views * (VIEW_INTS * 4 + VIEW_FLOATS * 4 + 2 * size as usize * per_sample) + 9 * 4
}

/// The kernel's code of a jitter operation.
fn op_code(op: JitterOp) -> u32 {
    match op {
        JitterOp::Brightness => 0,
        JitterOp::Contrast => 1,
        JitterOp::Saturation => 2,
        JitterOp::Hue => 3,
    }
}

/// Every view names a source it fits: one tap per output sample, each inside the source, none
/// wider than [`MAX_TAPS`].
///
/// # Errors
/// [`ViewError`] naming the first view or source that does not.
pub fn check(sources: &[Source<'_>], views: &[ViewSpec], size: u32) -> Result<(), ViewError> {
    for (index, source) in sources.iter().enumerate() {
        let expected = 3 * source.width as usize * source.height as usize;
        if source.pixels.len() != expected {
            return Err(ViewError::SourceSize {
                source_index: index,
                bytes: source.pixels.len(),
                expected,
                width: source.width,
                height: source.height,
            });
        }
    }
    for (index, view) in views.iter().enumerate() {
        let source = sources.get(view.source).ok_or(ViewError::NoSource {
            view: index,
            source_index: view.source,
            sources: sources.len(),
        })?;
        for (axis, taps, len) in [
            ("rows", &view.rows, source.height),
            ("columns", &view.columns, source.width),
        ] {
            let problem = |problem: String| ViewError::Taps {
                view: index,
                problem,
            };
            if taps.len() != size as usize {
                return Err(problem(format!(
                    "{} taps of {axis} for a side of {size}",
                    taps.len()
                )));
            }
            for (sample, tap) in taps.iter().enumerate() {
                let end = tap.first as usize + tap.weights.len();
                if tap.weights.is_empty() || tap.weights.len() > MAX_TAPS || end > len as usize {
                    return Err(problem(format!(
                        "{axis} sample {sample} reads {} samples from {} of {len} (at most {MAX_TAPS})",
                        tap.weights.len(),
                        tap.first
                    )));
                }
            }
        }
    }
    Ok(())
}

#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn views_kernel(
    sources: &[u32],
    ints: &[u32],
    floats: &[f32],
    tap_first: &[u32],
    tap_count: &[u32],
    tap_weights: &[f32],
    table: &[f32],
    output: &mut [f32],
    size: u32,
) {
    let view = CUBE_POS;
    let unit = UNIT_POS;
    let pixels = size * size;
    let source_offset = ints[view * VIEW_INTS];
    let stride = ints[view * VIEW_INTS + 1];
    let order = ints[view * VIEW_INTS + 2];
    let flags = ints[view * VIEW_INTS + 3];
    let jitter = (flags & 1) == 1;
    let grayscale = (flags & 2) == 2;
    let mut sums = Shared::<[f32]>::new_slice(UNITS as usize);
    let mut mean = 0.0f32;
    // Pass 0 sums the view's luma as it stands when contrast applies (only a jittered view needs
    // it); pass 1 applies every op in its order, grey, 8 bits and the normalisation. The passes'
    // barriers sit outside anything a view's draws decide: every unit of the cube reaches them.
    for pass in 0..2u32 {
        let mut partial = 0.0f32;
        for p in range_stepped(unit, pixels, UNITS) {
            if pass == 1 || jitter {
                let mut r = resample(
                    sources,
                    tap_first,
                    tap_count,
                    tap_weights,
                    view,
                    size,
                    source_offset,
                    stride,
                    p,
                    0,
                );
                let mut g = resample(
                    sources,
                    tap_first,
                    tap_count,
                    tap_weights,
                    view,
                    size,
                    source_offset,
                    stride,
                    p,
                    1,
                );
                let mut b = resample(
                    sources,
                    tap_first,
                    tap_count,
                    tap_weights,
                    view,
                    size,
                    source_offset,
                    stride,
                    p,
                    2,
                );
                if jitter {
                    let mut stopped = false;
                    for k in 0..4u32 {
                        let op = (order >> (2 * k)) & 3;
                        if op == 1 && pass == 0 {
                            stopped = true;
                        }
                        if !stopped {
                            let factor = floats[view * VIEW_FLOATS + op as usize];
                            if op == 0 {
                                r = unit_range(r * factor);
                                g = unit_range(g * factor);
                                b = unit_range(b * factor);
                            } else if op == 1 {
                                r = blend(r, mean, factor);
                                g = blend(g, mean, factor);
                                b = blend(b, mean, factor);
                            } else if op == 2 {
                                let gray = luma(table, r, g, b);
                                r = blend(r, gray, factor);
                                g = blend(g, gray, factor);
                                b = blend(b, gray, factor);
                            } else {
                                let shifted_r = shifted_hue(r, g, b, factor, 0);
                                let shifted_g = shifted_hue(r, g, b, factor, 1);
                                let shifted_b = shifted_hue(r, g, b, factor, 2);
                                r = shifted_r;
                                g = shifted_g;
                                b = shifted_b;
                            }
                        }
                    }
                }
                if pass == 0 {
                    partial += luma(table, r, g, b);
                } else {
                    if grayscale {
                        let gray = luma(table, r, g, b);
                        r = gray;
                        g = gray;
                        b = gray;
                    }
                    let plane = pixels as usize;
                    let at = view * 3 * plane + p as usize;
                    output[at] = normalized(table, 0, r);
                    output[at + plane] = normalized(table, 1, g);
                    output[at + 2 * plane] = normalized(table, 2, b);
                }
            }
        }
        if pass == 0 {
            sums[unit as usize] = partial;
            sync_cube();
            // Every unit adds the cube's partial sums in the same order, so all agree on the mean
            // (256 reads of shared memory each; a tree of in-place additions would do it in eight
            // steps, but CubeCL 0.11's IR verifier rejects a read-modify-write of shared memory
            // in a loop: "Expected operand type cube.ptr, but found builtin.integer").
            let mut total = 0.0f32;
            for k in 0..UNITS {
                total += sums[k as usize];
            }
            mean = total / f32::cast_from(pixels);
        }
    }
}

/// Byte `at` of the packed sources, as a value 0–255.
#[cube]
fn source_byte(sources: &[u32], at: u32) -> f32 {
    let word = sources[(at / 4) as usize];
    f32::cast_from((word >> ((at % 4) * 8)) & 255)
}

/// `channel` of output pixel `p` of `view` resampled from its source: the rows' taps summed first
/// for each source column, then the columns', in the CPU path's order (0–255 units, then to
/// `[0, 1]`).
#[cube]
#[allow(clippy::too_many_arguments)]
fn resample(
    sources: &[u32],
    tap_first: &[u32],
    tap_count: &[u32],
    tap_weights: &[f32],
    view: usize,
    size: u32,
    source_offset: u32,
    stride: u32,
    p: u32,
    channel: u32,
) -> f32 {
    let side = size as usize;
    let row = (view * 2) * side + (p / size) as usize;
    let column = (view * 2 + 1) * side + (p % size) as usize;
    let top = tap_first[row];
    let left = tap_first[column];
    let mut sum = 0.0f32;
    for i in 0..tap_count[column] {
        let across = tap_weights[column * MAX_TAPS + i as usize];
        let mut down_sum = 0.0f32;
        for j in 0..tap_count[row] {
            let down = tap_weights[row * MAX_TAPS + j as usize];
            let at = source_offset + (top + j) * stride + (left + i) * 3 + channel;
            down_sum += down * source_byte(sources, at);
        }
        sum += across * down_sum;
    }
    unit_range(sum / 255.0)
}

/// `value` held to `[0, 1]`, as the CPU path's `clamp(0.0, 1.0)` (the same for every finite
/// value, which is all a view holds).
#[cube]
#[allow(clippy::manual_clamp)]
fn unit_range(value: f32) -> f32 {
    f32::min(f32::max(value, 0.0), 1.0)
}

#[cube]
fn luma(table: &[f32], r: f32, g: f32, b: f32) -> f32 {
    table[6] * r + table[7] * g + table[8] * b
}

/// torchvision's `_blend`: `factor` 1 keeps `value`, 0 gives `toward`, beyond 1 extrapolates.
#[cube]
fn blend(value: f32, toward: f32, factor: f32) -> f32 {
    unit_range(factor * value + (1.0 - factor) * toward)
}

/// An 8-bit value of `value` (rounded half up, as the CPU path), normalised for `channel`.
#[cube]
fn normalized(table: &[f32], channel: usize, value: f32) -> f32 {
    let byte = f32::floor(unit_range(value) * 255.0 + 0.5);
    byte * table[channel] + table[3 + channel]
}

/// `channel` of the pixel with its hue shifted by `shift`: torchvision's `_rgb2hsv`, the shift
/// with a floor-based wrap, and `_hsv2rgb`.
#[cube]
fn shifted_hue(red: f32, green: f32, blue: f32, shift: f32, channel: u32) -> f32 {
    let max = f32::max(red, f32::max(green, blue));
    let min = f32::min(red, f32::min(green, blue));
    let chroma = max - min;
    let mut hue = 0.0f32;
    let mut saturation = 0.0f32;
    if chroma != 0.0 {
        saturation = chroma / max;
        let red_distance = (max - red) / chroma;
        let green_distance = (max - green) / chroma;
        let blue_distance = (max - blue) / chroma;
        let mut sextant = 4.0 + green_distance - red_distance;
        if max == red {
            sextant = blue_distance - green_distance;
        } else if max == green {
            sextant = 2.0 + red_distance - blue_distance;
        }
        // Python's `% 1.0` of a positive value.
        let turns = sextant / 6.0 + 1.0;
        hue = turns - f32::floor(turns);
    }
    let value = max;
    let shifted = hue + shift;
    let wrapped = shifted - f32::floor(shifted);
    let scaled = wrapped * 6.0;
    let sextant = f32::floor(scaled);
    let fraction = scaled - sextant;
    let p = unit_range(value * (1.0 - saturation));
    let q = unit_range(value * (1.0 - saturation * fraction));
    let t = unit_range(value * (1.0 - saturation * (1.0 - fraction)));
    // A hue of exactly 1 wraps to the colour of 0. Sextant by sextant, (r, g, b) is
    // (v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q).
    let part = sextant - 6.0 * f32::floor(sextant / 6.0);
    let mut out = value;
    if channel == 0 {
        if part == 1.0 {
            out = q;
        } else if part == 2.0 || part == 3.0 {
            out = p;
        } else if part == 4.0 {
            out = t;
        }
    } else if channel == 1 {
        out = p;
        if part == 0.0 {
            out = t;
        } else if part == 1.0 || part == 2.0 {
            out = value;
        } else if part == 3.0 {
            out = q;
        }
    } else {
        out = p;
        if part == 2.0 {
            out = t;
        } else if part == 3.0 || part == 4.0 {
            out = value;
        } else if part == 5.0 {
            out = q;
        }
    }
    out
}
