//! Views built on a served device (`spreadout serve`): a run's images kept there as one tensor
//! ([`ServedSources`]), and the custom operation ([`VIEWS_OP`]) that builds a batch of views of
//! them from each view's draws alone, so that once the images have crossed the network a step
//! sends a dozen numbers per view instead of its pixels. The client encodes the draws; the server
//! computes each view's taps and builds it with the training kernel on a GPU
//! (`spreadout_shaders::views`) or with this module's parent's CPU path on Burn's CPU backend: the
//! same views, either way, as this machine would build.

use burn::backend::ops::FloatTensorOps;
use burn::backend::{Cube, CubeDevice, DispatchDevice, Flex, FlexDevice, Remote};
use burn::remote::CustomOpClient;
use burn::tensor::{DType, Device, Int, Shape, Tensor, TensorData};
use burn_ir::{BackendIr, CustomOpIr, HandleContainer, ScalarIr, TensorIr};
use image::RgbImage;
use rayon::prelude::*;
use spreadout_shaders::views::{self, DeviceSources, PackedSources};

use super::kernel_input::{constants, view_spec};
use super::{ColorJitter, JitterOp, Normalization, ViewDraw};
use crate::resample::PixelRect;

/// The custom operation that builds views on the server from images kept there.
pub(crate) const VIEWS_OP: &str = "spreadout.views";

/// Bytes per tensor of the images' upload: Burn's WebSocket transport refuses a message over
/// 1 GiB (burn-communication 0.22.1 `src/websocket/base.rs:34`), and a run may keep that much.
const UPLOAD_CHUNK: usize = 64 << 20;

/// Scalars before the views: the side, then the normalisation's scale and shift per channel.
const HEADER: usize = 7;
/// Scalars per view: its source's first byte, width and height; flags; the crop's box; the
/// jitter's four factors.
const PER_VIEW: usize = 12;

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
/// normalised with `normalization`: `[n, 3, size, size]` f32 there.
pub(super) fn build(
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
    let side = size as usize;
    let out = TensorIr::uninit(
        client.create_empty_handle(),
        Shape::new([views.len(), 3, side, side]),
        DType::F32,
    );
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
    let op = CustomOpIr::with_scalars(VIEWS_OP, &[input], &[out], request.encode());
    Tensor::from_primitive::<Remote>(client.register(op).remove(0))
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

    /// [`Request::encode`]'s scalars read back, each view checked to lie within the `bytes` of
    /// the kept buffer (a client's numbers never make the server read outside it).
    fn decode(scalars: &[ScalarIr], bytes: u64) -> Result<Self, String> {
        if scalars.len() < HEADER || !(scalars.len() - HEADER).is_multiple_of(PER_VIEW) {
            return Err(format!("{} arguments do not describe views", scalars.len()));
        }
        let uint = |at: usize| -> u32 { scalars[at].elem::<u64>().min(u32::MAX.into()) as u32 };
        let float = |at: usize| -> f32 { scalars[at].elem::<f64>() as f32 };
        let size = uint(0);
        let normalization = (
            std::array::from_fn(|c| float(1 + c)),
            std::array::from_fn(|c| float(4 + c)),
        );
        let views = (HEADER..scalars.len())
            .step_by(PER_VIEW)
            .map(|at| {
                let (start, width, height) = (uint(at), uint(at + 1), uint(at + 2));
                let flags = scalars[at + 3].elem::<u64>();
                let end = u64::from(start) + 3 * u64::from(width) * u64::from(height);
                if width == 0 || height == 0 || end > bytes {
                    return Err(format!(
                        "a {width}×{height} image at byte {start} lies outside the {bytes} kept"
                    ));
                }
                let crop = (flags & CROP != 0).then(|| PixelRect {
                    left: uint(at + 4),
                    top: uint(at + 5),
                    width: uint(at + 6),
                    height: uint(at + 7),
                });
                if let Some(c) = crop
                    && (c.width == 0
                        || c.height == 0
                        || u64::from(c.left) + u64::from(c.width) > width.into()
                        || u64::from(c.top) + u64::from(c.height) > height.into())
                {
                    return Err(format!("a crop {c:?} outside its {width}×{height} image"));
                }
                let jitter = (flags & JITTER != 0).then(|| ColorJitter {
                    order: std::array::from_fn(|k| {
                        JITTER_OPS[((flags >> (ORDER_SHIFT + 2 * k as u64)) & 3) as usize]
                    }),
                    brightness: float(at + 8),
                    contrast: float(at + 9),
                    saturation: float(at + 10),
                    hue_shift: float(at + 11),
                });
                Ok(ViewOf {
                    start,
                    size: (width, height),
                    draw: ViewDraw {
                        crop,
                        jitter,
                        grayscale: flags & GRAYSCALE != 0,
                        flip: flags & FLIP != 0,
                    },
                })
            })
            .collect::<Result<_, String>>()?;
        if size == 0 {
            return Err("views of side 0".to_owned());
        }
        Ok(Self {
            size,
            normalization,
            views,
        })
    }
}

/// The server's side of [`VIEWS_OP`] on a GPU: the taps computed here, the views built by the
/// training kernel from the kept buffer, in Burn's fusion stream.
///
/// # Panics
/// On a request that is not one this release's client sends (Burn ends that client's session).
pub(crate) fn views_on_gpu()
-> impl Fn(&mut HandleContainer<<Cube as BackendIr>::Handle>, &CustomOpIr, &CubeDevice)
+ Send
+ Sync
+ 'static {
    |handles, op, device| {
        let kept = handles.get_int_tensor::<Cube>(&op.inputs[0]);
        let words = kept.shape.num_elements();
        let request = Request::decode(&op.scalars, 4 * words as u64)
            .unwrap_or_else(|problem| panic!("{VIEWS_OP}: {problem}"));
        let size = request.size;
        let specs: Vec<_> = request
            .views
            .iter()
            .enumerate()
            .map(|(i, view)| view_spec(&view.draw, i, view.size.0, view.size.1, size))
            .collect();
        let starts: Vec<u32> = request.views.iter().map(|view| view.start).collect();
        let sizes: Vec<(u32, u32)> = request.views.iter().map(|view| view.size).collect();
        views::check(&sizes, &specs, size).unwrap_or_else(|error| panic!("{VIEWS_OP}: {error}"));
        let constants = constants(request.normalization);
        let side = size as usize;
        let built = spreadout_shaders::burn_glue::fusion_tensor_from_kernel(
            "spreadout served views",
            Shape::new([specs.len(), 3, side, side]),
            device,
            vec![kept],
            move |client, inputs| {
                let sources = DeviceSources::from_buffer(
                    inputs[0].clone(),
                    words,
                    starts.clone(),
                    sizes.clone(),
                );
                views::build_views(client, &sources, &specs, size, &constants)
                    .expect("checked before it was queued")
            },
        );
        handles.register_float_tensor::<Cube>(&op.outputs[0].id, built);
    }
}

/// The server's side of [`VIEWS_OP`] on Burn's CPU backend: each view built by the CPU path,
/// rounded to 8 bits and normalised as a batch uploaded from the client would be.
///
/// # Panics
/// On a request that is not one this release's client sends (Burn ends that client's session).
pub(crate) fn views_on_cpu()
-> impl Fn(&mut HandleContainer<<Flex as BackendIr>::Handle>, &CustomOpIr, &FlexDevice)
+ Send
+ Sync
+ 'static {
    |handles, op, device| {
        let kept = handles.get_int_tensor::<Flex>(&op.inputs[0]);
        let words: &[i32] = kept.as_slice().unwrap_or_else(|| {
            panic!(
                "{VIEWS_OP}: the kept images are not contiguous 32-bit words ({:?})",
                kept.dtype()
            )
        });
        let bytes: &[u8] = bytemuck::cast_slice(words);
        let request = Request::decode(&op.scalars, bytes.len() as u64)
            .unwrap_or_else(|problem| panic!("{VIEWS_OP}: {problem}"));
        let (size, (scale, shift)) = (request.size, request.normalization);
        let plane = (size * size) as usize;
        let mut values = vec![0.0f32; request.views.len() * 3 * plane];
        values
            .par_chunks_mut(3 * plane)
            .zip(&request.views)
            .for_each(|(out, view)| {
                let (width, height) = view.size;
                let start = view.start as usize;
                let pixels = bytes[start..start + 3 * (width * height) as usize].to_vec();
                let image = RgbImage::from_raw(width, height, pixels).expect("sized above");
                let mut planar = vec![0u8; 3 * plane];
                view.draw.apply(&image, size).write_planar_u8(&mut planar);
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
        assert_eq!(
            Request::decode(&scalars, 3 * 40 * 30 * 64).unwrap(),
            request
        );
        // Beyond the kept bytes, the server refuses rather than reads.
        assert!(Request::decode(&scalars, 3 * 40 * 30 * 63).is_err());
        assert!(Request::decode(&scalars[..HEADER + 5], u64::MAX).is_err());
    }
}
