//! Views built on a served device (`spreadout serve`): a run's images kept there as one tensor
//! ([`ServedSources`]), and the custom operation ([`VIEWS_OP`]) that builds a batch of views of
//! them from each view's draws alone, so that once the images have crossed the network a step
//! sends a dozen numbers per view instead of its pixels. The client encodes the draws; the server
//! computes each view's taps and builds it with the training kernel on a GPU
//! (`spreadout_shaders::views`) or with this module's parent's CPU path on Burn's CPU backend: the
//! same views, either way, as this machine would build.
//!
//! Every number of a request is a client's, so the server checks them all before it allocates
//! or launches anything ([`RequestError`] lists the rules, [`validate`] applies them, for both
//! handlers), and the client checks its own request by the same rules before sending it.
//!
//! A refusal cannot be returned from the handler: Burn 0.22.1's custom-operation handler
//! (`burn_router::CustomOpHandler`) returns nothing, and its interpreter panics on a missing
//! output. So a refused request queues nothing, allocates nothing and registers, in place of its
//! output, Burn's record of a tensor that was never written (`HandleContainer::set_error`), whose
//! cause names the rule. A client that drops the output keeps its session; one that reads it, or
//! computes with it, ends its own session there (Burn's interpreter panics on the session's own
//! worker thread, which Burn catches, logging the rule, and closes that session alone), and every
//! other session is served on. The handler itself never panics on a client's numbers, and a
//! refusal never reaches Burn's fusion stream, which every session of a GPU shares.

use burn::backend::ops::FloatTensorOps;
use burn::backend::{Cube, CubeDevice, DispatchDevice, Flex, FlexDevice, Remote};
use burn::backend::{ExecutionError, TensorMetadata};
use burn::remote::CustomOpClient;
use burn::tensor::{DType, Device, Int, Shape, Tensor, TensorData};
use burn_ir::{
    BackendIr, CustomOpIr, HandleContainer, HandleKind, ScalarIr, TensorError, TensorIr,
    TensorStatus,
};
use cubecl::prelude::Client;
use image::{ImageBuffer, Rgb};
use rayon::prelude::*;
use spreadout_shaders::views::{self, DeviceSources, MAX_TAPS, PackedSources, ViewError, ViewSpec};

use super::kernel_input::{constants, taps_within, view_spec};
use super::{ColorJitter, JitterOp, Normalization, ViewDraw};
use crate::resample::PixelRect;

/// The custom operation that builds views on the server from images kept there.
pub const VIEWS_OP: &str = "spreadout.views";

/// Bytes per tensor of the images' upload: Burn's WebSocket transport refuses a message over
/// 1 GiB (burn-communication 0.22.1 `src/websocket/base.rs:34`), and a run may keep that much.
const UPLOAD_CHUNK: usize = 64 << 20;

/// Scalars before the views: the side, then the normalisation's scale and shift per channel.
const HEADER: usize = 7;
/// Scalars per view: its source's first byte, width and height; flags; the crop's box; the
/// jitter's four factors.
const PER_VIEW: usize = 12;

/// The largest side of a view a request may ask for: the engine trains at 224 pixels and less,
/// and 1024 leaves room without letting one number ask for gigabytes.
const MAX_SIDE: u32 = 1024;
/// The most views one request may ask for: a step sends two per image of its batch (1024 at a
/// batch of 512) and an evaluation 256 a pass, so 4096 leaves room.
const MAX_VIEWS: usize = 4096;
/// The most bytes of views one request may build (f32, `views × 3 × side²`): 1024 views of
/// 224 pixels take 617 MB.
const MAX_OUTPUT_BYTES: u64 = 1 << 30;

/// The flag bits a view may carry: its draws and the jitter's order.
const KNOWN_FLAGS: u64 = CROP | JITTER | GRAYSCALE | FLIP | (0xff << ORDER_SHIFT);

/// Images kept on a served device: their bytes one after another as 32-bit words, in one tensor
/// there, and where each starts (kept here, as each step's views name them).
pub(super) struct ServedSources {
    words: Tensor<1, Int>,
    starts: Vec<u32>,
    sizes: Vec<(u32, u32)>,
}

impl ServedSources {
    /// `packed` uploaded to `device` (a served one), in chunks joined there.
    pub(super) fn upload(packed: PackedSources, device: &Device) -> Self {
        Self::upload_in(packed, device, UPLOAD_CHUNK)
    }

    /// [`ServedSources::upload`] in chunks of `chunk` bytes (a multiple of 4).
    fn upload_in(packed: PackedSources, device: &Device, chunk: usize) -> Self {
        let (bytes, starts, sizes) = packed.into_words();
        let chunks: Vec<Tensor<1, Int>> = bytes
            .chunks(chunk)
            .map(|chunk| {
                let data =
                    TensorData::from_bytes_vec(chunk.to_vec(), [chunk.len() / 4], DType::I32);
                // The dtype given, or the device would widen the words to its default integers.
                Tensor::from_data(data, (device, DType::I32))
            })
            .collect();
        Self {
            words: Tensor::cat(chunks, 0),
            starts,
            sizes,
        }
    }

    /// Width and height of each image.
    pub(super) fn sizes(&self) -> &[(u32, u32)] {
        &self.sizes
    }

    /// Bytes the images take on the device.
    pub(super) fn bytes(&self) -> u64 {
        4 * self.words.dims()[0] as u64
    }
}

/// Bytes a batch of `views` sends besides the operation's own description: its scalars, 8 bytes
/// each.
pub(super) fn argument_bytes(views: usize) -> u64 {
    (8 * (HEADER + PER_VIEW * views)) as u64
}

/// `views` (each an image of `sources` and its draws) built on the served device at `size`,
/// normalised with `normalization`: `[n, 3, size, size]` f32 there. A batch with more views, or
/// more bytes of views, than one request may ask for is asked in several and joined there.
///
/// # Panics
/// On a request the server would refuse ([`RequestError`], checked here by the server's rules
/// before anything is sent): a larger side than a request may ask for, or a view the kernel
/// cannot build from its image.
pub(super) fn build(
    sources: &ServedSources,
    views: &[(usize, ViewDraw)],
    size: u32,
    normalization: &Normalization,
) -> Tensor<4> {
    let view_bytes = 3 * 4 * u64::from(size) * u64::from(size);
    let per_request = usize::try_from(MAX_OUTPUT_BYTES / view_bytes.max(1))
        .unwrap_or(usize::MAX)
        .clamp(1, MAX_VIEWS);
    if views.len() > per_request {
        let parts = views
            .chunks(per_request)
            .map(|part| build_one(sources, part, size, normalization))
            .collect();
        return Tensor::cat(parts, 0);
    }
    build_one(sources, views, size, normalization)
}

/// [`build`] of views that fit one request.
fn build_one(
    sources: &ServedSources,
    views: &[(usize, ViewDraw)],
    size: u32,
    normalization: &Normalization,
) -> Tensor<4> {
    let device = sources.words.device();
    let DispatchDevice::Remote(remote) = device.as_dispatch() else {
        unreachable!("served images are on a served device")
    };
    let client = CustomOpClient::new(remote);
    let input = sources
        .words
        .clone()
        .try_into_primitive::<Remote>()
        .expect("served images are a served tensor")
        .into_ir();
    let request = Request {
        size,
        normalization: normalization.byte_scale_and_shift(),
        views: views
            .iter()
            .map(|&(source, draw)| ViewOf {
                start: sources.starts[source],
                size: sources.sizes[source],
                draw,
            })
            .collect(),
    };
    // The server would refuse it, and the session would end on the refusal's first read; here
    // the rule is named.
    request
        .check(sources.bytes())
        .unwrap_or_else(|error| panic!("{VIEWS_OP}: {error}"));
    let side = size as usize;
    let out = TensorIr::uninit(
        client.create_empty_handle(),
        Shape::new([views.len(), 3, side, side]),
        DType::F32,
    );
    let op = CustomOpIr::with_scalars(VIEWS_OP, &[input], &[out], request.encode());
    Tensor::from_primitive::<Remote>(client.register(op).remove(0))
}

/// Why the server refuses a request of [`VIEWS_OP`]: the rules every number a client sends must
/// pass before anything is allocated or launched.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum RequestError {
    /// The operation does not read one tensor and write one.
    #[error("the operation reads {inputs} tensors and writes {outputs}, not one of each")]
    Tensors {
        /// Tensors it reads.
        inputs: usize,
        /// Tensors it writes.
        outputs: usize,
    },
    /// Its input is not a tensor this session holds, ready to be read.
    #[error("its input is not a tensor of this session ready to be read")]
    NoKept,
    /// The kept images are not 32-bit words.
    #[error("the kept images are a {kind} tensor of {dtype:?}, not 32-bit integer words (I32)")]
    KeptDtype {
        /// The tensor's kind (float, int, bool, quantized).
        kind: String,
        /// Its dtype.
        dtype: DType,
    },
    /// The kept words are not one contiguous run of memory.
    #[error("the kept images are not one contiguous run of words")]
    KeptLayout,
    /// The scalars do not describe views.
    #[error("{0} arguments do not describe views: {HEADER}, then {PER_VIEW} per view")]
    Arguments(usize),
    /// A number that must be whole is not one, or does not fit 32 bits.
    #[error("argument {at} is {found}, not a whole number from 0 to 2^32 − 1")]
    NotWhole {
        /// Its position among the scalars.
        at: usize,
        /// What was sent.
        found: String,
    },
    /// A number that must be a float is not one.
    #[error("argument {at} is {found}, not a float")]
    NotFloat {
        /// Its position among the scalars.
        at: usize,
        /// What was sent.
        found: String,
    },
    /// A factor of the views is not a finite 32-bit float.
    #[error("{what} is {value}, not a finite number")]
    NotFinite {
        /// Which factor.
        what: String,
        /// Its value.
        value: f64,
    },
    /// A view's flags carry bits no draw has.
    #[error("view {view} has flags {flags:#x}, beyond a crop's, jitter's, grey's and flip's")]
    Flags {
        /// The view.
        view: usize,
        /// Its flags.
        flags: u64,
    },
    /// A view's jitter does not order each of its four operations once.
    #[error("view {view}: its jitter's order does not name each of the four operations once")]
    Order {
        /// The view.
        view: usize,
    },
    /// The side of the views is 0 or past [`MAX_SIDE`].
    #[error("views of side {0}: the side must be 1 to {MAX_SIDE} pixels")]
    Side(u32),
    /// No views, or more than [`MAX_VIEWS`].
    #[error("{0} views: one request builds 1 to {MAX_VIEWS}")]
    Views(usize),
    /// The views would take more than [`MAX_OUTPUT_BYTES`].
    #[error(
        "{views} views of {size}×{size} take more than the {MAX_OUTPUT_BYTES} bytes one request may build"
    )]
    Output {
        /// Views asked for.
        views: usize,
        /// Their side.
        size: u32,
    },
    /// A view's image does not lie within the kept bytes.
    #[error("view {view}: {problem}")]
    Image {
        /// The view.
        view: usize,
        /// How its image lies outside (`ViewError::OutsideBuffer`).
        problem: ViewError,
    },
    /// A view's crop is empty or does not lie within its image.
    #[error("view {view}: a crop of {crop:?} does not lie within its {width}×{height} image")]
    Crop {
        /// The view.
        view: usize,
        /// The crop's box.
        crop: PixelRect,
        /// The image's width.
        width: u32,
        /// Its height.
        height: u32,
    },
    /// A view's output samples read more source samples than the kernel takes.
    #[error(
        "view {view}: an output sample of its {axis} reads {taps} source samples, not 1 to {MAX_TAPS}"
    )]
    Taps {
        /// The view.
        view: usize,
        /// `"rows"` or `"columns"`.
        axis: &'static str,
        /// Source samples it reads.
        taps: usize,
    },
    /// The kernel cannot build the views as their taps describe them (`views::check`, once the
    /// taps are computed).
    #[error(transparent)]
    Kernel(#[from] ViewError),
}

/// The kept images as a handler finds them: the tensor's kind and dtype, and whether its words
/// are one contiguous run of memory.
struct KeptTensor {
    kind: String,
    dtype: DType,
    contiguous: bool,
}

/// `op` checked against every rule ([`RequestError`]) with `kept` (`None` when its input is no
/// tensor of the session) holding `kept_bytes`: the request, safe to build.
///
/// # Errors
/// The first rule the request breaks.
fn validate(
    op: &CustomOpIr,
    kept: Option<KeptTensor>,
    kept_bytes: u64,
) -> Result<Request, RequestError> {
    let ([input], [_]) = (op.inputs.as_slice(), op.outputs.as_slice()) else {
        return Err(RequestError::Tensors {
            inputs: op.inputs.len(),
            outputs: op.outputs.len(),
        });
    };
    let kept = kept
        .filter(|_| input.status != TensorStatus::NotInit)
        .ok_or(RequestError::NoKept)?;
    if kept.kind != "int" || kept.dtype != DType::I32 {
        return Err(RequestError::KeptDtype {
            kind: kept.kind,
            dtype: kept.dtype,
        });
    }
    if !kept.contiguous {
        return Err(RequestError::KeptLayout);
    }
    let request = Request::decode(&op.scalars)?;
    request.check(kept_bytes)?;
    Ok(request)
}

/// Registers `error` as the reason `op`'s outputs were never written (see the module's doc).
fn refuse<H: Clone>(handles: &mut HandleContainer<H>, op: &CustomOpIr, error: &RequestError) {
    tracing::warn!("{VIEWS_OP}: a request refused: {error}");
    let record = TensorError::new(ExecutionError::WithContext {
        reason: format!("{VIEWS_OP} refused the request: {error}"),
    });
    for output in &op.outputs {
        handles.set_error(output.id, record.clone());
    }
}

/// The server's side of [`VIEWS_OP`] on a GPU: the request checked ([`validate`]), the taps
/// computed here, the views built by the training kernel from the kept buffer, in Burn's fusion
/// stream. A refused request queues nothing there (see the module's doc).
pub fn views_on_gpu()
-> impl Fn(&mut HandleContainer<<Cube as BackendIr>::Handle>, &CustomOpIr, &CubeDevice)
+ Send
+ Sync
+ 'static {
    |handles, op, device| {
        let found = op
            .inputs
            .first()
            .and_then(|input| handles.get_handle_ref(&input.id))
            .map(|kept| {
                let bytes = kept.shape.num_elements() as u64 * kept.dtype.size() as u64;
                let found = KeptTensor {
                    // Burn's fusion holds every kind of tensor alike; the dtype tells them apart.
                    kind: "int".to_owned(),
                    dtype: kept.dtype,
                    contiguous: true,
                };
                (found, bytes)
            });
        let bytes = found.as_ref().map_or(0, |(_, bytes)| *bytes);
        let request = match validate(op, found.map(|(found, _)| found), bytes) {
            Ok(request) => request,
            Err(error) => return refuse(handles, op, &error),
        };
        let specs = request.specs();
        let starts: Vec<u32> = request.views.iter().map(|view| view.start).collect();
        let sizes: Vec<(u32, u32)> = request.views.iter().map(|view| view.size).collect();
        let size = request.size;
        if let Err(error) = views::check(&sizes, &specs, size) {
            return refuse(handles, op, &error.into());
        }
        let kept = handles.get_int_tensor::<Cube>(&op.inputs[0]);
        let words = kept.shape.num_elements();
        let constants = constants(request.normalization);
        let side = size as usize;
        let values = specs.len() * 3 * side * side;
        let built = spreadout_shaders::burn_glue::fusion_tensor_from_kernel(
            "spreadout served views",
            Shape::new([specs.len(), 3, side, side]),
            device,
            vec![kept],
            move |client, inputs| {
                // Checked again against the buffer the stream holds, which no number of the
                // request names: a buffer shorter than its tensor's shape gives views of NaN,
                // never a read outside it, nor a panic in the stream every session shares.
                DeviceSources::from_buffer(inputs[0].clone(), words, starts.clone(), sizes.clone())
                    .and_then(|sources| {
                        views::build_views(client, &sources, &specs, size, &constants)
                    })
                    .unwrap_or_else(|error| {
                        tracing::error!("{VIEWS_OP}: views of NaN: {error}");
                        not_a_number(client, values)
                    })
            },
        );
        handles.register_float_tensor::<Cube>(&op.outputs[0].id, built);
    }
}

/// A buffer of `values` NaN f32 on the device of `client`.
fn not_a_number(client: &Client, values: usize) -> cubecl::server::Handle {
    client.create_from_slice(bytemuck::cast_slice(&vec![f32::NAN; values]))
}

/// The server's side of [`VIEWS_OP`] on Burn's CPU backend: the request checked ([`validate`]),
/// each view built by the CPU path from the kept bytes in place, rounded to 8 bits and
/// normalised as a batch uploaded from the client would be.
pub fn views_on_cpu()
-> impl Fn(&mut HandleContainer<<Flex as BackendIr>::Handle>, &CustomOpIr, &FlexDevice)
+ Send
+ Sync
+ 'static {
    |handles, op, device| {
        let found = op
            .inputs
            .first()
            .and_then(|input| handles.get_handle_ref(&input.id))
            .map(|kept| {
                let (dtype, words) = match kept {
                    HandleKind::Float(tensor)
                    | HandleKind::Int(tensor)
                    | HandleKind::Bool(tensor) => {
                        (tensor.dtype(), tensor.as_slice::<i32>().map(<[i32]>::len))
                    }
                    HandleKind::Quantized(tensor) => (TensorMetadata::dtype(tensor), None),
                };
                let found = KeptTensor {
                    kind: kept.name().to_owned(),
                    dtype,
                    contiguous: words.is_some(),
                };
                // The bytes of the words themselves, whatever the tensor's shape says.
                (found, 4 * words.unwrap_or(0) as u64)
            });
        let bytes = found.as_ref().map_or(0, |(_, bytes)| *bytes);
        let request = match validate(op, found.map(|(found, _)| found), bytes) {
            Ok(request) => request,
            Err(error) => return refuse(handles, op, &error),
        };
        let kept = handles.get_int_tensor::<Flex>(&op.inputs[0]);
        let Some(words) = kept.as_slice::<i32>() else {
            return refuse(handles, op, &RequestError::KeptLayout);
        };
        let bytes: &[u8] = bytemuck::cast_slice(words);
        // Each image borrowed from the kept bytes, not copied: checked again against the very
        // slice they are read from.
        let images: Result<Vec<_>, RequestError> = request
            .views
            .iter()
            .enumerate()
            .map(|(index, view)| {
                let (width, height) = view.size;
                let outside = |problem| RequestError::Image {
                    view: index,
                    problem,
                };
                let kept = bytes.len() as u64;
                views::check_source(index, view.start.into(), width, height, kept)
                    .map_err(outside)?;
                let start = view.start as usize;
                let pixels = &bytes[start..start + 3 * width as usize * height as usize];
                ImageBuffer::<Rgb<u8>, &[u8]>::from_raw(width, height, pixels).ok_or_else(|| {
                    outside(ViewError::OutsideBuffer {
                        source_index: index,
                        start: start as u64,
                        width,
                        height,
                        bytes: kept,
                    })
                })
            })
            .collect();
        let images = match images {
            Ok(images) => images,
            Err(error) => return refuse(handles, op, &error),
        };
        let (size, (scale, shift)) = (request.size, request.normalization);
        let plane = size as usize * size as usize;
        let mut values = vec![0.0f32; request.views.len() * 3 * plane];
        values
            .par_chunks_mut(3 * plane)
            .zip(request.views.par_iter().zip(&images))
            .for_each(|(out, (view, image))| {
                let mut planar = vec![0u8; 3 * plane];
                view.draw.apply(image, size).write_planar_u8(&mut planar);
                for (channel, (out, planar)) in
                    out.chunks_mut(plane).zip(planar.chunks(plane)).enumerate()
                {
                    // The order of the device's own `x · scale + shift` on an uploaded batch.
                    for (value, &byte) in out.iter_mut().zip(planar) {
                        *value = f32::from(byte) * scale[channel] + shift[channel];
                    }
                }
            });
        let side = size as usize;
        let built = Flex::float_from_data(
            TensorData::new(values, [request.views.len(), 3, side, side]),
            device,
        );
        handles.register_float_tensor::<Flex>(&op.outputs[0].id, built);
    }
}

/// What one call of [`VIEWS_OP`] asks for.
#[derive(Debug, PartialEq)]
struct Request {
    size: u32,
    /// Per channel, the scale and shift of an 8-bit value.
    normalization: ([f32; 3], [f32; 3]),
    views: Vec<ViewOf>,
}

/// A view of one kept image.
#[derive(Debug, PartialEq)]
struct ViewOf {
    /// The image's first byte in the kept buffer.
    start: u32,
    /// Its width and height.
    size: (u32, u32),
    draw: ViewDraw,
}

/// Flag bits of a view: which draws it has; the jitter's order follows, two bits an operation.
const CROP: u64 = 1;
const JITTER: u64 = 2;
const GRAYSCALE: u64 = 4;
const FLIP: u64 = 8;
const ORDER_SHIFT: u64 = 4;
const JITTER_OPS: [JitterOp; 4] = [
    JitterOp::Brightness,
    JitterOp::Contrast,
    JitterOp::Saturation,
    JitterOp::Hue,
];

impl Request {
    /// The request as the operation's scalars (`f32`s travel exactly as `f64`s).
    fn encode(&self) -> Vec<ScalarIr> {
        let (scale, shift) = self.normalization;
        let mut scalars = vec![ScalarIr::UInt(self.size.into())];
        scalars.extend(
            scale
                .iter()
                .chain(&shift)
                .map(|&v| ScalarIr::Float(v.into())),
        );
        for view in &self.views {
            let ViewDraw {
                crop,
                jitter,
                grayscale,
                flip,
            } = view.draw;
            let mut flags = u64::from(grayscale) * GRAYSCALE + u64::from(flip) * FLIP;
            let rect = crop.unwrap_or(PixelRect {
                left: 0,
                top: 0,
                width: 0,
                height: 0,
            });
            flags |= u64::from(crop.is_some()) * CROP;
            let mut factors = [1.0, 1.0, 1.0, 0.0];
            if let Some(jitter) = jitter {
                flags |= JITTER;
                for (k, op) in jitter.order.iter().enumerate() {
                    let code = JITTER_OPS
                        .iter()
                        .position(|o| o == op)
                        .expect("one of four");
                    flags |= (code as u64) << (ORDER_SHIFT + 2 * k as u64);
                }
                factors = [
                    jitter.brightness,
                    jitter.contrast,
                    jitter.saturation,
                    jitter.hue_shift,
                ];
            }
            let integers = [
                u64::from(view.start),
                view.size.0.into(),
                view.size.1.into(),
                flags,
                rect.left.into(),
                rect.top.into(),
                rect.width.into(),
                rect.height.into(),
            ];
            scalars.extend(integers.map(ScalarIr::UInt));
            scalars.extend(factors.map(|v| ScalarIr::Float(v.into())));
        }
        scalars
    }

    /// [`Request::encode`]'s scalars read back, each of the kind it is sent as: whole numbers
    /// that fit 32 bits (flags 64), floats, and as many as describe 1 to [`MAX_VIEWS`] views. The
    /// numbers themselves are [`Request::check`]'s.
    ///
    /// # Errors
    /// [`RequestError::Arguments`], [`RequestError::Views`], [`RequestError::NotWhole`],
    /// [`RequestError::NotFloat`], [`RequestError::Flags`], [`RequestError::Order`].
    fn decode(scalars: &[ScalarIr]) -> Result<Self, RequestError> {
        if scalars.len() < HEADER || !(scalars.len() - HEADER).is_multiple_of(PER_VIEW) {
            return Err(RequestError::Arguments(scalars.len()));
        }
        let count = (scalars.len() - HEADER) / PER_VIEW;
        if count == 0 || count > MAX_VIEWS {
            return Err(RequestError::Views(count));
        }
        let not_whole = |at: usize| RequestError::NotWhole {
            at,
            found: format!("{:?}", scalars[at]),
        };
        let flags = |at: usize| match scalars[at] {
            ScalarIr::UInt(value) => Ok(value),
            _ => Err(not_whole(at)),
        };
        let uint = |at: usize| -> Result<u32, RequestError> {
            u32::try_from(flags(at)?).map_err(|_| not_whole(at))
        };
        // Floats travel as f64 (exact for an f32); whether each is finite is `check`'s.
        let float = |at: usize| match scalars[at] {
            ScalarIr::Float(value) => Ok(value as f32),
            ref other => Err(RequestError::NotFloat {
                at,
                found: format!("{other:?}"),
            }),
        };
        let mut normalization = ([0.0; 3], [0.0; 3]);
        for channel in 0..3 {
            normalization.0[channel] = float(1 + channel)?;
            normalization.1[channel] = float(4 + channel)?;
        }
        let views = (0..count)
            .map(|view| {
                let at = HEADER + view * PER_VIEW;
                let flags = flags(at + 3)?;
                if flags & !KNOWN_FLAGS != 0 {
                    return Err(RequestError::Flags { view, flags });
                }
                let rect = PixelRect {
                    left: uint(at + 4)?,
                    top: uint(at + 5)?,
                    width: uint(at + 6)?,
                    height: uint(at + 7)?,
                };
                let order: [JitterOp; 4] = std::array::from_fn(|k| {
                    JITTER_OPS[((flags >> (ORDER_SHIFT + 2 * k as u64)) & 3) as usize]
                });
                // The kernel and the CPU path agree on an order that applies each once.
                if flags & JITTER != 0 && !JITTER_OPS.iter().all(|op| order.contains(op)) {
                    return Err(RequestError::Order { view });
                }
                let factors = [
                    float(at + 8)?,
                    float(at + 9)?,
                    float(at + 10)?,
                    float(at + 11)?,
                ];
                Ok(ViewOf {
                    start: uint(at)?,
                    size: (uint(at + 1)?, uint(at + 2)?),
                    draw: ViewDraw {
                        crop: (flags & CROP != 0).then_some(rect),
                        jitter: (flags & JITTER != 0).then_some(ColorJitter {
                            order,
                            brightness: factors[0],
                            contrast: factors[1],
                            saturation: factors[2],
                            hue_shift: factors[3],
                        }),
                        grayscale: flags & GRAYSCALE != 0,
                        flip: flags & FLIP != 0,
                    },
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            size: uint(0)?,
            normalization,
            views,
        })
    }

    /// Every number of the request checked, in 64 bits with checked arithmetic, against a kept
    /// buffer of `kept_bytes`: the side and the count and bytes of the views within their caps;
    /// each view's image within the kept bytes (and the 4 GiB the kernel addresses); its crop
    /// within its image; each of its output samples reading 1 to [`MAX_TAPS`] source samples
    /// (found without computing a tap); every factor finite. Both ends apply it: the server to
    /// what it is sent, the client to what it sends.
    ///
    /// # Errors
    /// The first rule the request breaks.
    fn check(&self, kept_bytes: u64) -> Result<(), RequestError> {
        let size = self.size;
        if size == 0 || size > MAX_SIDE {
            return Err(RequestError::Side(size));
        }
        let count = self.views.len();
        if count == 0 || count > MAX_VIEWS {
            return Err(RequestError::Views(count));
        }
        let output = (count as u64)
            .checked_mul(3 * 4 * u64::from(size) * u64::from(size))
            .filter(|&bytes| bytes <= MAX_OUTPUT_BYTES);
        if output.is_none() {
            return Err(RequestError::Output { views: count, size });
        }
        let (scale, shift) = &self.normalization;
        for (what, values) in [("the normalisation's scale", scale), ("its shift", shift)] {
            finite(what, values)?;
        }
        for (index, view) in self.views.iter().enumerate() {
            let (width, height) = view.size;
            views::check_source(index, view.start.into(), width, height, kept_bytes).map_err(
                |problem| RequestError::Image {
                    view: index,
                    problem,
                },
            )?;
            if let Some(crop) = view.draw.crop {
                let inside = |at: u32, len: u32, within: u32| {
                    len > 0 && u64::from(at) + u64::from(len) <= u64::from(within)
                };
                if !inside(crop.left, crop.width, width) || !inside(crop.top, crop.height, height) {
                    return Err(RequestError::Crop {
                        view: index,
                        crop,
                        width,
                        height,
                    });
                }
            }
            if let Some(jitter) = &view.draw.jitter {
                let factors = [
                    jitter.brightness,
                    jitter.contrast,
                    jitter.saturation,
                    jitter.hue_shift,
                ];
                finite(&format!("view {index}'s jitter"), &factors)?;
            }
            taps_within(&view.draw, width, height, size).map_err(|(axis, taps)| {
                RequestError::Taps {
                    view: index,
                    axis,
                    taps,
                }
            })?;
        }
        Ok(())
    }

    /// Each view as the kernel takes it: its taps computed (bounded once [`Request::check`]
    /// passed), reading the request's own view `i` as source `i`.
    fn specs(&self) -> Vec<ViewSpec> {
        self.views
            .iter()
            .enumerate()
            .map(|(i, view)| view_spec(&view.draw, i, view.size.0, view.size.1, self.size))
            .collect()
    }
}

/// Each of `values` finite, or [`RequestError::NotFinite`] naming `what`.
fn finite(what: &str, values: &[f32]) -> Result<(), RequestError> {
    match values.iter().find(|value| !value.is_finite()) {
        Some(&value) => Err(RequestError::NotFinite {
            what: what.to_owned(),
            value: value.into(),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::AugmentOps;
    use rand::{Rng, SeedableRng};
    use spreadout_shaders::views::Source;

    /// Images uploaded in several chunks are one buffer of their bytes, 32-bit words kept as such
    /// (the device's default integers would widen them).
    #[test]
    fn chunks_join_into_the_packed_bytes() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let images: Vec<Vec<u8>> = [(5, 3), (7, 4), (2, 9)]
            .iter()
            .map(|&(w, h)| (0..3 * w * h).map(|_| rng.random()).collect())
            .collect();
        let mut packed = PackedSources::default();
        for (pixels, (width, height)) in images.iter().zip([(5, 3), (7, 4), (2, 9)]) {
            packed
                .push(Source {
                    width,
                    height,
                    pixels,
                })
                .unwrap();
        }
        let served = ServedSources::upload_in(packed, &Device::flex(), 16);
        assert_eq!(served.words.dtype(), DType::I32);
        let words = served
            .words
            .clone()
            .into_data()
            .try_to_vec::<i32>()
            .unwrap();
        let bytes: Vec<u8> = bytemuck::cast_slice(&words).to_vec();
        let all: Vec<u8> = images.concat();
        assert_eq!(&bytes[..all.len()], all.as_slice());
        assert_eq!(served.starts, [0, 45, 129]);
        assert_eq!(served.bytes(), all.len().div_ceil(4) as u64 * 4);
    }

    /// Every draw a training view can have travels exactly: the crop's box, the jitter's order
    /// and factors, grey and flip, and the absence of each.
    #[test]
    fn a_request_travels_exactly() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut views: Vec<ViewOf> = (0..64)
            .map(|i| ViewOf {
                start: 3 * 40 * 30 * i,
                size: (40, 30),
                draw: ViewDraw::sample(40, 30, &AugmentOps::default(), &mut rng),
            })
            .collect();
        views.push(ViewOf {
            start: 0,
            size: (40, 30),
            draw: ViewDraw::sample(40, 30, &AugmentOps::none(), &mut rng),
        });
        let request = Request {
            size: 24,
            normalization: ([0.0157, 0.0162, 0.0171], [-1.99, -1.98, -1.7]),
            views,
        };
        let scalars = request.encode();
        assert_eq!(scalars.len(), HEADER + PER_VIEW * request.views.len());
        let decoded = Request::decode(&scalars).unwrap();
        assert_eq!(decoded, request);
        decoded.check(3 * 40 * 30 * 64).unwrap();
        // Beyond the kept bytes, the server refuses rather than reads.
        assert!(matches!(
            decoded.check(3 * 40 * 30 * 63),
            Err(RequestError::Image { view: 63, .. })
        ));
        assert_eq!(
            Request::decode(&scalars[..HEADER + 5]),
            Err(RequestError::Arguments(HEADER + 5))
        );
    }

    /// One view of the whole 8×8 image at byte 0, at side 8: accepted with 192 bytes kept.
    fn one_view() -> Vec<ScalarIr> {
        let mut scalars = vec![ScalarIr::UInt(8)];
        scalars.extend([1.0, 1.0, 1.0, 0.0, 0.0, 0.0].map(ScalarIr::Float));
        scalars.extend([0, 8, 8, 0, 0, 0, 0, 0].map(ScalarIr::UInt));
        scalars.extend([1.0, 1.0, 1.0, 0.0].map(ScalarIr::Float));
        scalars
    }

    /// `one_view` with scalar `at` replaced, checked against `kept` bytes.
    fn with(changes: &[(usize, ScalarIr)], kept: u64) -> Result<(), RequestError> {
        let mut scalars = one_view();
        for (at, value) in changes {
            scalars[*at] = *value;
        }
        Request::decode(&scalars)?.check(kept)
    }

    const START: usize = HEADER;
    const WIDTH: usize = HEADER + 1;
    const HEIGHT: usize = HEADER + 2;
    const FLAGS: usize = HEADER + 3;

    #[test]
    fn the_request_the_rules_start_from_passes() {
        with(&[], 192).unwrap();
    }

    /// The review's pair: 3·w·h is 2^64 + 26, which wrapped to 26 in a release build.
    #[test]
    fn an_image_whose_bytes_overflow_64_bits_is_refused() {
        let pair = [
            (START, ScalarIr::UInt(0)),
            (WIDTH, ScalarIr::UInt(3062868337)),
            (HEIGHT, ScalarIr::UInt(2007567422)),
        ];
        for kept in [26, 192, u64::MAX] {
            assert!(
                matches!(with(&pair, kept), Err(RequestError::Image { view: 0, .. })),
                "{kept}"
            );
        }
    }

    #[test]
    fn an_image_starting_or_ending_past_the_kept_bytes_is_refused() {
        for (start, kept) in [(1, 192), (192, 192), (u32::MAX, u64::MAX), (0, 191)] {
            let refused = with(&[(START, ScalarIr::UInt(start.into()))], kept);
            assert!(
                matches!(refused, Err(RequestError::Image { view: 0, .. })),
                "{start} {kept}: {refused:?}"
            );
        }
        // Within the bytes kept, past the 4 GiB the kernel's 32-bit offsets address.
        let refused = with(&[(START, ScalarIr::UInt(u32::MAX.into()))], 1 << 40);
        assert!(matches!(refused, Err(RequestError::Image { .. })));
        assert!(matches!(
            with(&[(WIDTH, ScalarIr::UInt(0))], 192),
            Err(RequestError::Image { .. })
        ));
    }

    #[test]
    fn a_side_of_zero_or_past_the_cap_is_refused() {
        for size in [0, MAX_SIDE + 1, 60000] {
            assert_eq!(
                with(&[(0, ScalarIr::UInt(size.into()))], 192),
                Err(RequestError::Side(size))
            );
        }
    }

    #[test]
    fn too_many_views_or_too_many_bytes_of_them_are_refused() {
        let view: Vec<ScalarIr> = one_view()[HEADER..].to_vec();
        let mut scalars = one_view()[..HEADER].to_vec();
        for _ in 0..=MAX_VIEWS {
            scalars.extend(view.iter().cloned());
        }
        assert_eq!(
            Request::decode(&scalars),
            Err(RequestError::Views(MAX_VIEWS + 1))
        );
        assert_eq!(
            Request::decode(&scalars[..HEADER]),
            Err(RequestError::Views(0))
        );
        // 4096 views of 8×8 fit; of 256×256 they would take 3 GiB.
        let mut request = Request::decode(&scalars[..scalars.len() - PER_VIEW]).unwrap();
        request.check(192).unwrap();
        request.size = 256;
        assert_eq!(
            request.check(u64::MAX),
            Err(RequestError::Output {
                views: MAX_VIEWS,
                size: 256
            })
        );
    }

    #[test]
    fn a_crop_outside_its_image_or_empty_is_refused() {
        let crop = |left: u32, top: u32, width: u32, height: u32| {
            [
                (FLAGS, ScalarIr::UInt(CROP)),
                (HEADER + 4, ScalarIr::UInt(left.into())),
                (HEADER + 5, ScalarIr::UInt(top.into())),
                (HEADER + 6, ScalarIr::UInt(width.into())),
                (HEADER + 7, ScalarIr::UInt(height.into())),
            ]
        };
        with(&crop(2, 2, 6, 6), 192).unwrap();
        for (left, top, width, height) in [
            (3, 2, 6, 6),
            (2, 3, 6, 6),
            (0, 0, 0, 8),
            (0, 0, 8, 0),
            (u32::MAX, 0, 2, 8),
            (1, 0, u32::MAX, 8),
        ] {
            let refused = with(&crop(left, top, width, height), 192);
            assert!(
                matches!(refused, Err(RequestError::Crop { view: 0, .. })),
                "{left} {top} {width} {height}: {refused:?}"
            );
        }
    }

    /// A view that would read a whole large image per output sample is refused before any tap
    /// is computed.
    #[test]
    fn a_view_whose_samples_read_past_the_kernel_taps_is_refused() {
        let large = [
            (WIDTH, ScalarIr::UInt(4000)),
            (HEIGHT, ScalarIr::UInt(4000)),
        ];
        let refused = with(&large, 3 * 4000 * 4000);
        assert!(
            matches!(refused, Err(RequestError::Taps { view: 0, .. })),
            "{refused:?}"
        );
    }

    #[test]
    fn numbers_of_the_wrong_kind_or_range_or_not_finite_are_refused() {
        let refusals = [
            (WIDTH, ScalarIr::Float(8.0)),
            (WIDTH, ScalarIr::Int(8)),
            (WIDTH, ScalarIr::Bool(true)),
            (WIDTH, ScalarIr::UInt(u64::from(u32::MAX) + 1)),
            (FLAGS, ScalarIr::Int(-1)),
        ];
        for (at, value) in refusals {
            let refused = with(&[(at, value)], 192);
            assert!(
                matches!(refused, Err(RequestError::NotWhole { .. })),
                "{value:?}: {refused:?}"
            );
        }
        let refused = with(&[(1, ScalarIr::UInt(1))], 192);
        assert!(matches!(refused, Err(RequestError::NotFloat { at: 1, .. })));
        for value in [f64::NAN, f64::INFINITY, 1e300] {
            let refused = with(&[(1, ScalarIr::Float(value))], 192);
            assert!(
                matches!(refused, Err(RequestError::NotFinite { .. })),
                "{value}"
            );
            let jittered = [
                (
                    FLAGS,
                    ScalarIr::UInt(JITTER | (0b11_10_01_00 << ORDER_SHIFT)),
                ),
                (HEADER + 9, ScalarIr::Float(value)),
            ];
            assert!(matches!(
                with(&jittered, 192),
                Err(RequestError::NotFinite { .. })
            ));
        }
        // Contrast twice, hue never.
        let repeated = JITTER | (0b01_10_01_00 << ORDER_SHIFT);
        assert_eq!(
            with(&[(FLAGS, ScalarIr::UInt(repeated))], 192),
            Err(RequestError::Order { view: 0 })
        );
        assert_eq!(
            with(&[(FLAGS, ScalarIr::UInt(1 << 12))], 192),
            Err(RequestError::Flags {
                view: 0,
                flags: 1 << 12
            })
        );
    }

    /// A kept tensor on the CPU backend, with `bytes` as its data of `dtype`.
    fn cpu_handles(data: TensorData) -> HandleContainer<<Flex as BackendIr>::Handle> {
        use burn::backend::ops::IntTensorOps;
        let mut handles = HandleContainer::new();
        let kept = Flex::int_from_data(data, &FlexDevice);
        handles.register_int_tensor::<Flex>(&burn_ir::TensorId::new(1), kept);
        handles
    }

    /// [`VIEWS_OP`] reading tensor 1 and writing tensor 2.
    fn op(scalars: Vec<ScalarIr>) -> CustomOpIr {
        let tensor = |id: u64, dtype| TensorIr {
            id: burn_ir::TensorId::new(id),
            shape: Shape::new([1]),
            status: TensorStatus::ReadOnly,
            dtype,
        };
        CustomOpIr::with_scalars(
            VIEWS_OP,
            &[tensor(1, DType::I32)],
            &[tensor(2, DType::F32)],
            scalars,
        )
    }

    /// Whether the handler refused `op`, by the rule named by `rule`; checks that it then
    /// registered no output.
    fn refused_by(handles: &HandleContainer<<Flex as BackendIr>::Handle>, rule: &str) -> bool {
        let id = burn_ir::TensorId::new(2);
        match handles.error(&id) {
            Some(error) => {
                assert!(!handles.has_handle(&id));
                error.root().contains(rule)
            }
            None => false,
        }
    }

    /// The CPU handler refuses a 1-byte kept tensor, a float one, no tensor, and the review's
    /// overflowing pair, registering the rule in place of its output (and never panics); and
    /// builds the accepted request.
    #[test]
    fn the_cpu_handler_refuses_by_the_rules_without_a_panic() {
        let handler = views_on_cpu();
        let device = FlexDevice;
        let words = |bytes: Vec<u8>| TensorData::from_bytes_vec(bytes, [48], DType::I32);

        let mut handles = cpu_handles(words(vec![7; 192]));
        handler(&mut handles, &op(one_view()), &device);
        assert!(handles.has_handle(&burn_ir::TensorId::new(2)));

        let mut handles = cpu_handles(TensorData::new(vec![7u8; 768], [768]));
        handler(&mut handles, &op(one_view()), &device);
        assert!(refused_by(&handles, "not 32-bit integer words"));

        let mut handles = HandleContainer::new();
        let floats = Flex::float_from_data(TensorData::new(vec![0.5f32; 48], [48]), &device);
        handles.register_float_tensor::<Flex>(&burn_ir::TensorId::new(1), floats);
        handler(&mut handles, &op(one_view()), &device);
        assert!(refused_by(&handles, "float tensor"));

        let mut handles = HandleContainer::new();
        handler(&mut handles, &op(one_view()), &device);
        assert!(refused_by(&handles, "not a tensor of this session"));

        let mut overflowing = one_view();
        overflowing[WIDTH] = ScalarIr::UInt(3062868337);
        overflowing[HEIGHT] = ScalarIr::UInt(2007567422);
        let mut handles = cpu_handles(words(vec![7; 192]));
        handler(&mut handles, &op(overflowing), &device);
        assert!(refused_by(&handles, "does not lie within"));

        let mut two_inputs = op(one_view());
        two_inputs.inputs.push(two_inputs.inputs[0].clone());
        let mut handles = cpu_handles(words(vec![7; 192]));
        handler(&mut handles, &two_inputs, &device);
        assert!(refused_by(&handles, "reads 2 tensors"));
    }
}
