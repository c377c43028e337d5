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

mod kernel;
use kernel::views_kernel;

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

/// Bytes the kernel addresses in its sources: it computes each byte's offset in 32 bits.
pub const MAX_SOURCE_BYTES: u64 = 1 << 32;

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
    /// The sources pass the 4 GiB the kernel's 32-bit offsets address.
    #[error("the sources pass 4 GiB, beyond the kernel's 32-bit offsets")]
    TooLarge,
    /// A source does not lie within the buffer of sources (or within the 4 GiB the kernel's
    /// offsets address), or has no pixels.
    #[error(
        "source {source_index}, {width}×{height} at byte {start}, does not lie within the {bytes} bytes of the sources"
    )]
    OutsideBuffer {
        /// The source.
        source_index: usize,
        /// Its first byte.
        start: u64,
        /// Its width.
        width: u32,
        /// Its height.
        height: u32,
        /// Bytes of the sources (at most [`MAX_SOURCE_BYTES`] count).
        bytes: u64,
    },
    /// A buffer handed over holds fewer bytes than the words it is said to hold.
    #[error("a buffer of {bytes} bytes said to hold {words} 32-bit words")]
    ShortBuffer {
        /// Bytes the buffer holds.
        bytes: u64,
        /// Words it was said to hold.
        words: usize,
    },
    /// The views' output passes what the kernel's 32-bit indices address.
    #[error("{views} views of {size}×{size} pass the 2^32 values the kernel's indices address")]
    OutputTooLarge {
        /// Views in the batch.
        views: usize,
        /// Their side.
        size: u32,
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

/// Source images on the device: their bytes, one after another, as little-endian 32-bit words in
/// one buffer (WGSL has no 8-bit loads), and where each starts. A batch's images, uploaded with
/// it, or a whole training set kept for the run.
#[derive(Debug)]
pub struct DeviceSources {
    handle: Handle,
    words: usize,
    /// Per source, its first byte in the buffer.
    starts: Vec<u32>,
    /// Per source, its width and height.
    sizes: Vec<(u32, u32)>,
}

impl DeviceSources {
    /// `sources` uploaded to the device of `client`.
    ///
    /// # Errors
    /// [`ViewError::SourceSize`] when a source's bytes do not match its size;
    /// [`ViewError::TooLarge`] past 4 GiB (the kernel's offsets are 32-bit).
    pub fn upload(client: &Client, sources: &[Source<'_>]) -> Result<Self, ViewError> {
        let mut packed = PackedSources::default();
        for source in sources {
            packed.push(*source)?;
        }
        Ok(packed.upload(client))
    }

    /// Sources already on the device of a kernel's client: `words` little-endian 32-bit words in
    /// `handle` (another party's buffer, e.g. a served tensor's), source `i` starting at byte
    /// `starts[i]` with size `sizes[i]`. Checked here, against the bytes the handle itself spans,
    /// so that with [`build_views`]'s check of each view against `sizes` the kernel never reads
    /// outside the buffer, whatever the numbers were.
    ///
    /// # Errors
    /// [`ViewError::ShortBuffer`] when the handle holds fewer than `4 · words` bytes;
    /// [`ViewError::OutsideBuffer`] when a source has no pixels or does not lie within the words
    /// (and the 4 GiB the kernel addresses); [`ViewError::NoSource`] when `starts` and `sizes`
    /// differ in length.
    pub fn from_buffer(
        handle: Handle,
        words: usize,
        starts: Vec<u32>,
        sizes: Vec<(u32, u32)>,
    ) -> Result<Self, ViewError> {
        let held = handle.size_in_used();
        let bytes = (words as u64)
            .checked_mul(4)
            .filter(|&bytes| bytes <= held)
            .ok_or(ViewError::ShortBuffer { bytes: held, words })?;
        if starts.len() != sizes.len() {
            return Err(ViewError::NoSource {
                view: 0,
                source_index: starts.len().min(sizes.len()),
                sources: starts.len().max(sizes.len()),
            });
        }
        for (index, (&start, &(width, height))) in starts.iter().zip(&sizes).enumerate() {
            check_source(index, start.into(), width, height, bytes)?;
        }
        Ok(Self {
            handle,
            words,
            starts,
            sizes,
        })
    }

    /// Width and height of each source.
    pub fn sizes(&self) -> &[(u32, u32)] {
        &self.sizes
    }

    /// Bytes the buffer holds.
    pub fn bytes(&self) -> usize {
        4 * self.words
    }
}

/// Sources packed on the host one by one, for [`DeviceSources`]: a caller with many images pushes
/// each and drops it, so only the packed bytes stay in memory.
#[derive(Debug, Default)]
pub struct PackedSources {
    bytes: Vec<u8>,
    starts: Vec<u32>,
    sizes: Vec<(u32, u32)>,
}

impl PackedSources {
    /// Appends `source`.
    ///
    /// # Errors
    /// [`ViewError::SourceSize`] when its bytes do not match its size; [`ViewError::TooLarge`]
    /// past 4 GiB (the kernel's offsets are 32-bit).
    pub fn push(&mut self, source: Source<'_>) -> Result<(), ViewError> {
        let expected = 3 * source.width as usize * source.height as usize;
        if source.pixels.len() != expected {
            return Err(ViewError::SourceSize {
                source_index: self.sizes.len(),
                bytes: source.pixels.len(),
                expected,
                width: source.width,
                height: source.height,
            });
        }
        let start = self.bytes.len() as u64;
        if start + expected as u64 > MAX_SOURCE_BYTES {
            return Err(ViewError::TooLarge);
        }
        self.starts
            .push(u32::try_from(start).map_err(|_| ViewError::TooLarge)?);
        self.sizes.push((source.width, source.height));
        self.bytes.extend_from_slice(source.pixels);
        Ok(())
    }

    /// Bytes packed so far.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether nothing is packed.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The packed sources uploaded to the device of `client`, as little-endian 32-bit words.
    pub fn upload(self, client: &Client) -> DeviceSources {
        let (bytes, starts, sizes) = self.into_words();
        DeviceSources {
            handle: client.create_from_slice(&bytes),
            words: bytes.len() / 4,
            starts,
            sizes,
        }
    }

    /// The packed bytes padded to whole 32-bit words (at least one), each source's first byte
    /// and each source's size: what a buffer of the kernel's sources holds, for a caller that
    /// uploads it some other way (to a served device, as a tensor).
    pub fn into_words(mut self) -> (Vec<u8>, Vec<u32>, Vec<(u32, u32)>) {
        self.bytes
            .resize(self.bytes.len().div_ceil(4).max(1) * 4, 0);
        (self.bytes, self.starts, self.sizes)
    }
}

/// Builds `views` of `sources` at `size`×`size` on the device of `client`: a buffer of
/// `views.len() × 3 × size × size` f32, planar per view, normalised with `constants`.
///
/// # Errors
/// [`ViewError`] when a view does not fit its source or the kernel's limits (checked here, so
/// the kernel never reads outside its buffers).
pub fn build_views(
    client: &Client,
    sources: &DeviceSources,
    views: &[ViewSpec],
    size: u32,
    constants: &Constants,
) -> Result<Handle, ViewError> {
    check(&sources.sizes, views, size)?;
    let side = size as usize;
    let mut ints = Vec::with_capacity(views.len() * VIEW_INTS);
    let mut floats = Vec::with_capacity(views.len() * VIEW_FLOATS);
    let mut first = Vec::with_capacity(views.len() * 2 * side);
    let mut count = Vec::with_capacity(views.len() * 2 * side);
    let mut weights = vec![0.0f32; views.len() * 2 * side * MAX_TAPS];
    for (index, view) in views.iter().enumerate() {
        let (offset, (width, _)) = (sources.starts[view.source], sources.sizes[view.source]);
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
        ints.extend([offset, 3 * width, order, flags]);
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
        buffer(sources.handle.clone(), sources.words),
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

/// That source `index`, `width`×`height` RGB from byte `start`, has pixels and lies within the
/// first `bytes` of a buffer and within the [`MAX_SOURCE_BYTES`] the kernel addresses (every
/// sum in 64 bits, checked).
///
/// # Errors
/// [`ViewError::OutsideBuffer`] when it does not.
pub fn check_source(
    index: usize,
    start: u64,
    width: u32,
    height: u32,
    bytes: u64,
) -> Result<(), ViewError> {
    let end = (3 * u64::from(width))
        .checked_mul(height.into())
        .and_then(|pixels| pixels.checked_add(start));
    match end {
        Some(end) if width > 0 && height > 0 && end <= bytes.min(MAX_SOURCE_BYTES) => Ok(()),
        _ => Err(ViewError::OutsideBuffer {
            source_index: index,
            start,
            width,
            height,
            bytes,
        }),
    }
}

/// Every view names a source (of the `sources` sizes) it fits: one tap per output sample, each
/// inside the source, none wider than [`MAX_TAPS`]; and the output stays within the kernel's
/// 32-bit indices.
///
/// # Errors
/// [`ViewError`] naming the first view or source that does not.
pub fn check(sources: &[(u32, u32)], views: &[ViewSpec], size: u32) -> Result<(), ViewError> {
    let values = u64::from(size)
        .checked_mul(size.into())
        .and_then(|plane| plane.checked_mul(3 * views.len() as u64))
        .filter(|&values| values <= u64::from(u32::MAX));
    if values.is_none() {
        return Err(ViewError::OutputTooLarge {
            views: views.len(),
            size,
        });
    }
    for (index, view) in views.iter().enumerate() {
        if view.source >= sources.len() {
            return Err(ViewError::NoSource {
                view: index,
                source_index: view.source,
                sources: sources.len(),
            });
        }
        let (width, height) = sources[view.source];
        for (axis, taps, len) in [
            ("rows", &view.rows, height),
            ("columns", &view.columns, width),
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
