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
    BackendIr, CustomOpIr, HandleContainer, HandleKind, TensorError, TensorIr, TensorStatus,
};
use cubecl::prelude::Client;
use image::{ImageBuffer, Rgb};
use rayon::prelude::*;
use spreadout_shaders::views::{self, DeviceSources, PackedSources, ViewError};

mod request;

pub(crate) use request::RequestError;
use request::{HEADER, MAX_OUTPUT_BYTES, MAX_VIEWS, PER_VIEW, Request, ViewOf};

use super::kernel_input::constants;
use super::{Normalization, ViewDraw};

/// The custom operation that builds views on the server from images kept there.
pub const VIEWS_OP: &str = "spreadout.views";

/// Bytes per tensor of the images' upload: Burn's WebSocket transport refuses a message over
/// 1 GiB (burn-communication 0.22.1 `src/websocket/base.rs:34`), and a run may keep that much.
const UPLOAD_CHUNK: usize = 64 << 20;

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

#[cfg(test)]
mod tests {
    use super::*;
    use burn_ir::ScalarIr;
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
        handler(&mut handles, &op(request::tests::one_view()), &device);
        assert!(handles.has_handle(&burn_ir::TensorId::new(2)));

        let mut handles = cpu_handles(TensorData::new(vec![7u8; 768], [768]));
        handler(&mut handles, &op(request::tests::one_view()), &device);
        assert!(refused_by(&handles, "not 32-bit integer words"));

        let mut handles = HandleContainer::new();
        let floats = Flex::float_from_data(TensorData::new(vec![0.5f32; 48], [48]), &device);
        handles.register_float_tensor::<Flex>(&burn_ir::TensorId::new(1), floats);
        handler(&mut handles, &op(request::tests::one_view()), &device);
        assert!(refused_by(&handles, "float tensor"));

        let mut handles = HandleContainer::new();
        handler(&mut handles, &op(request::tests::one_view()), &device);
        assert!(refused_by(&handles, "not a tensor of this session"));

        let mut overflowing = request::tests::one_view();
        overflowing[request::tests::WIDTH] = ScalarIr::UInt(3062868337);
        overflowing[request::tests::HEIGHT] = ScalarIr::UInt(2007567422);
        let mut handles = cpu_handles(words(vec![7; 192]));
        handler(&mut handles, &op(overflowing), &device);
        assert!(refused_by(&handles, "does not lie within"));

        let mut two_inputs = op(request::tests::one_view());
        two_inputs.inputs.push(two_inputs.inputs[0].clone());
        let mut handles = cpu_handles(words(vec![7; 192]));
        handler(&mut handles, &two_inputs, &device);
        assert!(refused_by(&handles, "reads 2 tensors"));
    }
}
