//! The server's side of `spreadout.views` (`augment::views_on_cpu`, `augment::views_on_gpu`)
//! called directly, on a local CPU device and on the first wgpu adapter (lavapipe here and in
//! CI), with thousands of requests: valid ones, each with one number made adversarial, and
//! wholly random ones. No handler panics; every request that breaks a rule (judged here
//! independently, in 128-bit arithmetic) is refused, with the rule recorded in place of its
//! output; every accepted one keeps the rules, and on the GPU builds the views the CPU handler
//! builds from the same kept bytes (the CPU reads them through a slice, so no read of either
//! handler can stray outside them). A kept tensor of another dtype is refused on both.
//!
//! One test, so it opens the adapter once (the `it` binary's wgpu tests share it); refusals
//! launch nothing, so only a few dozen requests reach the GPU's kernel.

use std::panic::{AssertUnwindSafe, catch_unwind};

use burn::backend::ops::{FloatTensorOps, IntTensorOps};
use burn::backend::{Cube, CubeDevice, Flex, FlexDevice};
use burn::tensor::{DType, Shape, Tensor, TensorData};
use burn_ir::{BackendIr, CustomOpIr, HandleContainer, ScalarIr, TensorId, TensorIr, TensorStatus};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use spreadout::augment::{VIEWS_OP, views_on_cpu, views_on_gpu};
use spreadout::device::{self, DeviceChoice};

/// The kept images: sizes, packed one after another.
const IMAGES: [(u32, u32); 4] = [(12, 9), (8, 8), (16, 11), (7, 13)];
const HEADER: usize = 7;
const PER_VIEW: usize = 12;
const CROP: u64 = 1;
const JITTER: u64 = 2;

/// The kept tensor's id in a session.
fn kept_id() -> TensorId {
    TensorId::new(1)
}

/// The output's id.
fn out_id() -> TensorId {
    TensorId::new(2)
}

/// Requests thrown at each handler.
const REQUESTS: usize = 3000;
/// Accepted requests the GPU builds (each a launch and a read on lavapipe).
const GPU_LAUNCHES: usize = 30;

/// What the rules make of a request, as this test judges them.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    Accepted,
    Refused,
    /// Within every bound, but whether a view's taps fit the kernel is the server's to say.
    Either,
}

#[test]
fn views_requests_are_refused_or_built_within_the_kept_bytes() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let (kept, starts) = kept_bytes(&mut rng);
    let requests: Vec<(Vec<ScalarIr>, Expect)> = (0..REQUESTS)
        .map(|_| request(&mut rng, &starts, kept.len() as u64))
        .collect();

    let cpu = views_on_cpu();
    let flex = FlexDevice;
    let mut cpu_handles = HandleContainer::<<Flex as BackendIr>::Handle>::new();
    let words = TensorData::from_bytes_vec(kept.clone(), [kept.len() / 4], DType::I32);
    cpu_handles.register_int_tensor::<Flex>(&kept_id(), Flex::int_from_data(words.clone(), &flex));
    let mut cpu_outputs = Vec::new();
    let mut counts = [0usize; 2];
    for (index, (scalars, expect)) in requests.iter().enumerate() {
        run(
            || cpu(&mut cpu_handles, &op(scalars.clone()), &flex),
            index,
            scalars,
        );
        let accepted = outcome(&mut cpu_handles, *expect, scalars, kept.len() as u64, index);
        counts[usize::from(accepted)] += 1;
        cpu_outputs.push(accepted.then(|| {
            let tensor = cpu_handles.get_float_tensor::<Flex>(&read(out_id()));
            values(Tensor::<4>::from_primitive::<Flex>(tensor).into_data())
        }));
        cpu_handles.remove_handle(out_id());
    }
    eprintln!("CPU: {} refused, {} built", counts[0], counts[1]);
    assert!(
        counts[0] > REQUESTS / 3 && counts[1] > REQUESTS / 10,
        "{counts:?}"
    );

    let adapter = device::list_adapters()
        .first()
        .expect("a wgpu adapter (lavapipe on machines without a GPU)")
        .index;
    let selected = device::select(DeviceChoice::Adapter(adapter)).expect("adapter selectable");
    let cube: CubeDevice = selected.cube_device().expect("a wgpu adapter");
    let gpu = views_on_gpu();
    let mut gpu_handles = HandleContainer::<<Cube as BackendIr>::Handle>::new();
    gpu_handles.register_int_tensor::<Cube>(&kept_id(), Cube::int_from_data(words, &cube));
    let (mut launches, mut refused, mut worst) = (0, 0, 0.0f32);
    for (index, (scalars, expect)) in requests.iter().enumerate() {
        if *expect != Expect::Refused && launches == GPU_LAUNCHES {
            continue;
        }
        run(
            || gpu(&mut gpu_handles, &op(scalars.clone()), &cube),
            index,
            scalars,
        );
        let accepted = outcome(&mut gpu_handles, *expect, scalars, kept.len() as u64, index);
        assert_eq!(
            accepted,
            cpu_outputs[index].is_some(),
            "request {index}: the CPU and the GPU disagree"
        );
        if accepted {
            launches += 1;
            let tensor = gpu_handles.get_float_tensor::<Cube>(&read(out_id()));
            let built = values(Tensor::<4>::from_primitive::<Cube>(tensor).into_data());
            let scale = normalization_scales(scalars);
            let plane = match scalars[0] {
                ScalarIr::UInt(size) => (size * size) as usize,
                _ => unreachable!("an accepted request"),
            };
            let cpu_built = cpu_outputs[index].as_ref().unwrap();
            for (k, (&gpu, &cpu)) in built.iter().zip(cpu_built).enumerate() {
                // Within one level of 255 of the CPU's, in the request's normalised units.
                let levels = (gpu - cpu).abs() / scale[(k / plane) % 3];
                worst = worst.max(levels);
                assert!(
                    levels <= 1.0 + 1e-2,
                    "request {index} ({expect:?}), value {k}: {gpu} against {cpu}, {levels} levels: {scalars:?}"
                );
            }
        } else {
            refused += 1;
        }
        gpu_handles.remove_handle(out_id());
    }
    eprintln!("GPU: {refused} refused, {launches} built, within {worst:.3}/255 of the CPU's");
    assert_eq!(launches, GPU_LAUNCHES);

    // A kept tensor of bytes (1 byte an element) or of floats, refused whatever the request
    // says of its length.
    let mut valid = None;
    while valid.is_none() {
        let (scalars, expect) = request(&mut rng, &starts, kept.len() as u64);
        valid = (expect == Expect::Accepted).then_some(scalars);
    }
    let valid = valid.unwrap();
    let bytes = TensorData::new(kept.clone(), [kept.len()]);
    let mut handles = HandleContainer::<<Flex as BackendIr>::Handle>::new();
    handles.register_int_tensor::<Flex>(&kept_id(), Flex::int_from_data(bytes.clone(), &flex));
    run(|| cpu(&mut handles, &op(valid.clone()), &flex), 0, &valid);
    assert!(refusal(&handles).contains("not 32-bit integer words"));
    let floats = TensorData::new(vec![0.5f32; kept.len()], [kept.len()]);
    let mut handles = HandleContainer::<<Flex as BackendIr>::Handle>::new();
    handles.register_float_tensor::<Flex>(&kept_id(), Flex::float_from_data(floats, &flex));
    run(|| cpu(&mut handles, &op(valid.clone()), &flex), 0, &valid);
    assert!(refusal(&handles).contains("float tensor"));

    let mut handles = HandleContainer::<<Cube as BackendIr>::Handle>::new();
    let tensor = Cube::int_from_data(bytes, &cube);
    // Burn may widen bytes on a device without 8-bit integers: then they are words, safely read.
    let dtype = tensor.dtype;
    handles.register_int_tensor::<Cube>(&kept_id(), tensor);
    run(|| gpu(&mut handles, &op(valid.clone()), &cube), 0, &valid);
    assert_eq!(
        handles.error(&out_id()).is_some(),
        dtype != DType::I32,
        "a kept tensor of {dtype:?}: {}",
        refusal(&handles)
    );
    eprintln!(
        "a kept tensor of bytes on the GPU is {dtype:?}: {}",
        refusal(&handles)
    );
}

/// Random bytes holding [`IMAGES`] one after another (padded to whole words), and where each
/// starts.
fn kept_bytes(rng: &mut impl Rng) -> (Vec<u8>, Vec<u32>) {
    let mut starts = Vec::new();
    let mut bytes: Vec<u8> = Vec::new();
    for (width, height) in IMAGES {
        starts.push(bytes.len() as u32);
        bytes.extend((0..3 * width * height).map(|_| rng.random::<u8>()));
    }
    bytes.resize(bytes.len().div_ceil(4) * 4, 0);
    (bytes, starts)
}

/// `f` (a handler's call), failing the test with the request when it panics.
fn run<T>(f: impl FnOnce() -> T, index: usize, scalars: &[ScalarIr]) -> T {
    catch_unwind(AssertUnwindSafe(f))
        .unwrap_or_else(|_| panic!("request {index} panicked the handler: {scalars:?}"))
}

/// Whether the handler accepted the request it was just given (an output registered) or refused
/// it (the rule recorded in its place, nothing registered), checked against `expect` and, when
/// accepted, against every bound.
fn outcome<H: Clone>(
    handles: &mut HandleContainer<H>,
    expect: Expect,
    scalars: &[ScalarIr],
    kept: u64,
    index: usize,
) -> bool {
    let accepted = handles.has_handle(&out_id());
    assert_ne!(
        accepted,
        handles.error(&out_id()).is_some(),
        "request {index}"
    );
    match expect {
        Expect::Accepted => assert!(accepted, "request {index} refused: {}", refusal(handles)),
        Expect::Refused => assert!(!accepted, "request {index} accepted: {scalars:?}"),
        Expect::Either => {}
    }
    if accepted {
        assert!(
            within_bounds(scalars, kept),
            "request {index} accepted: {scalars:?}"
        );
    }
    accepted
}

/// The rule a refused request's output records.
fn refusal<H: Clone>(handles: &HandleContainer<H>) -> String {
    handles
        .error(&out_id())
        .map_or_else(String::new, |error| error.root().to_owned())
}

/// Whether `scalars` keep every bound, judged in 128 bits: of their kinds, the side 1 to 1024,
/// 1 to 4096 views taking at most 1 GiB, each view's image within the `kept` bytes, each crop
/// non-empty within its image, every factor used finite, no unknown flag, a jitter's order
/// naming each operation once.
fn within_bounds(scalars: &[ScalarIr], kept: u64) -> bool {
    if scalars.len() < HEADER || !(scalars.len() - HEADER).is_multiple_of(PER_VIEW) {
        return false;
    }
    let whole = |at: usize| match scalars[at] {
        ScalarIr::UInt(value) if value <= u64::from(u32::MAX) => Some(u128::from(value)),
        _ => None,
    };
    let finite = |at: usize| matches!(scalars[at], ScalarIr::Float(v) if (v as f32).is_finite());
    let views = (scalars.len() - HEADER) / PER_VIEW;
    let Some(size) = whole(0) else { return false };
    if !(1..=1024).contains(&size)
        || !(1..=4096).contains(&views)
        || views as u128 * 12 * size * size > 1 << 30
        || !(1..HEADER).all(finite)
    {
        return false;
    }
    (0..views).all(|view| {
        let at = HEADER + view * PER_VIEW;
        let Some(flags) = (match scalars[at + 3] {
            ScalarIr::UInt(flags) if flags < 1 << 12 => Some(flags),
            _ => None,
        }) else {
            return false;
        };
        let numbers: Option<Vec<u128>> = [0, 1, 2, 4, 5, 6, 7]
            .iter()
            .map(|offset| whole(at + offset))
            .collect();
        let Some(&[start, width, height, left, top, crop_width, crop_height]) = numbers.as_deref()
        else {
            return false;
        };
        let end = start + 3 * width * height;
        let crop_inside = flags & CROP == 0
            || (crop_width > 0
                && crop_height > 0
                && left + crop_width <= width
                && top + crop_height <= height);
        let floats = (8..12).all(|offset| matches!(scalars[at + offset], ScalarIr::Float(_)));
        let jitter_finite = flags & JITTER == 0 || (8..12).all(|offset| finite(at + offset));
        let ops = (0..4).map(|k| 1u64 << ((flags >> (4 + 2 * k)) & 3));
        let order_once = flags & JITTER == 0 || ops.fold(0, |all, op| all | op) == 0b1111;
        width > 0
            && height > 0
            && end <= u128::from(kept)
            && crop_inside
            && floats
            && jitter_finite
            && order_once
    })
}

/// The normalisation's scale of each channel (an 8-bit level's size in the views' units).
fn normalization_scales(scalars: &[ScalarIr]) -> [f32; 3] {
    std::array::from_fn(|channel| match scalars[1 + channel] {
        ScalarIr::Float(value) => (value as f32).abs(),
        _ => unreachable!("an accepted request"),
    })
}

/// [`VIEWS_OP`] reading the kept tensor and writing [`out_id`].
fn op(scalars: Vec<ScalarIr>) -> CustomOpIr {
    let tensor = |id, dtype| TensorIr {
        id,
        shape: Shape::new([1]),
        status: TensorStatus::ReadOnly,
        dtype,
    };
    CustomOpIr::with_scalars(
        VIEWS_OP,
        &[tensor(kept_id(), DType::I32)],
        &[tensor(out_id(), DType::F32)],
        scalars,
    )
}

/// `id` as a read that leaves it registered.
fn read(id: TensorId) -> TensorIr {
    TensorIr {
        id,
        shape: Shape::new([1]),
        status: TensorStatus::ReadOnly,
        dtype: DType::F32,
    }
}

fn values(data: TensorData) -> Vec<f32> {
    data.convert::<f32>()
        .try_to_vec()
        .expect("views are floats")
}

/// A request and what the rules make of it: a valid one (1 to 4 views of the kept images at a
/// side of 5 to 10, crops at most twice the side, so every tap fits), then with one number made
/// adversarial, or wholly random numbers.
fn request(rng: &mut impl Rng, starts: &[u32], kept: u64) -> (Vec<ScalarIr>, Expect) {
    let size: u32 = rng.random_range(5..=10);
    let mut scalars = vec![ScalarIr::UInt(size.into())];
    for _ in 0..3 {
        scalars.push(ScalarIr::Float(rng.random_range(0.5..2.0) / 255.0));
    }
    for _ in 0..3 {
        scalars.push(ScalarIr::Float(rng.random_range(-1.0..1.0)));
    }
    let views = rng.random_range(1..=4);
    for _ in 0..views {
        let image = rng.random_range(0..IMAGES.len());
        let (width, height) = IMAGES[image];
        let mut flags = rng.random_range(0..16u64);
        if flags & JITTER != 0 {
            let mut order = [0u64, 1, 2, 3];
            order.shuffle(rng);
            flags |= order
                .iter()
                .enumerate()
                .map(|(k, op)| op << (4 + 2 * k))
                .sum::<u64>();
        }
        let crop_width = rng.random_range(1..=width.min(2 * size));
        let crop_height = rng.random_range(1..=height.min(2 * size));
        let crop = if flags & CROP != 0 {
            [
                rng.random_range(0..=width - crop_width),
                rng.random_range(0..=height - crop_height),
                crop_width,
                crop_height,
            ]
        } else {
            [0; 4]
        };
        scalars.extend(
            [u64::from(starts[image]), width.into(), height.into(), flags]
                .into_iter()
                .chain(crop.map(u64::from))
                .map(ScalarIr::UInt),
        );
        let factors = [
            rng.random_range(0.6..1.4),
            rng.random_range(0.6..1.4),
            rng.random_range(0.6..1.4),
            rng.random_range(-0.1..0.1),
        ];
        scalars.extend(factors.map(ScalarIr::Float));
    }
    let view = HEADER + PER_VIEW * rng.random_range(0..views);
    let any_u32 = |rng: &mut dyn rand::RngCore| -> u64 {
        match rng.random_range(0..4) {
            0 => rng.random_range(0..64),
            1 => u64::from(u32::MAX) - rng.random_range(0..4),
            2 => [3062868337, 2007567422, 1 << 31, 1 << 16][rng.random_range(0..4)],
            _ => rng.random::<u32>().into(),
        }
    };
    let judged = |scalars: Vec<ScalarIr>| {
        let expect = if within_bounds(&scalars, kept) {
            Expect::Either
        } else {
            Expect::Refused
        };
        (scalars, expect)
    };
    match rng.random_range(0..14) {
        0..=2 => (scalars, Expect::Accepted),
        3 => {
            let size = [0, 1025, 60000, u64::from(u32::MAX), 1 << 40][rng.random_range(0..5)];
            scalars[0] = ScalarIr::UInt(size);
            (scalars, Expect::Refused)
        }
        4 => {
            // The start moved: inside the kept bytes it reads other bytes, no less safely.
            scalars[view] = ScalarIr::UInt(any_u32(rng));
            let expect = if within_bounds(&scalars, kept) {
                Expect::Accepted
            } else {
                Expect::Refused
            };
            (scalars, expect)
        }
        5 => {
            for offset in [1, 2] {
                if rng.random_bool(0.7) {
                    scalars[view + offset] = ScalarIr::UInt(any_u32(rng));
                }
            }
            judged(scalars)
        }
        6 => {
            let flags = match scalars[view + 3] {
                ScalarIr::UInt(flags) => flags,
                _ => unreachable!(),
            };
            scalars[view + 3] = ScalarIr::UInt(flags | CROP);
            for offset in 4..8 {
                scalars[view + offset] = ScalarIr::UInt(any_u32(rng));
            }
            judged(scalars)
        }
        7 => {
            // A side of 1 over a whole image 9 or more pixels on either side: a sample reads
            // them all, past the kernel's 8 taps.
            scalars[0] = ScalarIr::UInt(1);
            scalars[view] = ScalarIr::UInt(starts[2].into());
            scalars[view + 1] = ScalarIr::UInt(16);
            scalars[view + 2] = ScalarIr::UInt(11);
            scalars[view + 3] = ScalarIr::UInt(0);
            (scalars, Expect::Refused)
        }
        8 => {
            let at = rng.random_range(0..scalars.len());
            scalars[at] = match scalars[at] {
                ScalarIr::UInt(value) => {
                    [ScalarIr::Float(value as f64), ScalarIr::Int(-1)][rng.random_range(0..2)]
                }
                _ => [ScalarIr::UInt(1), ScalarIr::Bool(true)][rng.random_range(0..2)],
            };
            (scalars, Expect::Refused)
        }
        9 => {
            let at = [1, 4, view + 8, view + 11][rng.random_range(0..4)];
            scalars[at] =
                ScalarIr::Float([f64::NAN, f64::INFINITY, -1e300][rng.random_range(0..3)]);
            judged(scalars)
        }
        10 => {
            let flags = match scalars[view + 3] {
                ScalarIr::UInt(flags) => flags,
                _ => unreachable!(),
            };
            scalars[view + 3] = ScalarIr::UInt(flags | 1 << rng.random_range(12..64));
            (scalars, Expect::Refused)
        }
        11 => {
            let cut = rng.random_range(1..PER_VIEW);
            scalars.truncate(scalars.len() - cut);
            (scalars, Expect::Refused)
        }
        12 if rng.random_bool(0.02) => {
            // Past the views' or the bytes' caps: 4097 views of side 10, or 4096 of side 1024.
            let one = scalars[HEADER..HEADER + PER_VIEW].to_vec();
            let (count, size) = [(4097, 10), (4096, 1024)][rng.random_range(0..2)];
            scalars.truncate(HEADER);
            scalars[0] = ScalarIr::UInt(size);
            for _ in 0..count {
                scalars.extend(one.iter().cloned());
            }
            (scalars, Expect::Refused)
        }
        _ => {
            let len = HEADER + PER_VIEW * rng.random_range(0..3) + rng.random_range(0..2);
            let scalars = (0..len)
                .map(|_| match rng.random_range(0..5) {
                    0 | 1 => ScalarIr::UInt(any_u32(rng)),
                    2 => ScalarIr::UInt(rng.random_range(0..16)),
                    3 => ScalarIr::Float(rng.random_range(-4.0..4.0)),
                    _ => ScalarIr::Int(rng.random()),
                })
                .collect();
            judged(scalars)
        }
    }
}
