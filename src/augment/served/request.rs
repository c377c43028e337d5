//! The `spreadout.views` request: what a client asks for (the views' images, draws, side and
//! normalisation), how it travels as the operation's scalars, and the rules every number must
//! pass before the server allocates or launches anything ([`RequestError`]). Kept apart from the
//! handlers and the upload (`super`), which apply these rules, so that the rules read as one list.

use burn::tensor::DType;
use burn_ir::ScalarIr;
use spreadout_shaders::views::{self, MAX_TAPS, ViewError, ViewSpec};

use super::super::kernel_input::{taps_within, view_spec};
use super::super::{ColorJitter, JitterOp, ViewDraw};
use crate::resample::PixelRect;

/// Scalars before the views: the side, then the normalisation's scale and shift per channel.
pub(super) const HEADER: usize = 7;
/// Scalars per view: its source's first byte, width and height; flags; the crop's box; the
/// jitter's four factors.
pub(super) const PER_VIEW: usize = 12;

/// The largest side of a view a request may ask for: the engine trains at 224 pixels and less,
/// and 1024 leaves room without letting one number ask for gigabytes.
pub(super) const MAX_SIDE: u32 = 1024;
/// The most views one request may ask for: a step sends two per image of its batch (1024 at a
/// batch of 512) and an evaluation 256 a pass, so 4096 leaves room.
pub(super) const MAX_VIEWS: usize = 4096;
/// The most bytes of views one request may build (f32, `views × 3 × side²`): 1024 views of
/// 224 pixels take 617 MB.
pub(super) const MAX_OUTPUT_BYTES: u64 = 1 << 30;

/// The flag bits a view may carry: its draws and the jitter's order.
pub(super) const KNOWN_FLAGS: u64 = CROP | JITTER | GRAYSCALE | FLIP | (0xff << ORDER_SHIFT);

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

/// What one call of [`VIEWS_OP`] asks for.
#[derive(Debug, PartialEq)]
pub(super) struct Request {
    /// The views' side.
    pub(super) size: u32,
    /// Per channel, the scale and shift of an 8-bit value.
    pub(super) normalization: ([f32; 3], [f32; 3]),
    /// The views.
    pub(super) views: Vec<ViewOf>,
}

/// A view of one kept image.
#[derive(Debug, PartialEq)]
pub(super) struct ViewOf {
    /// The image's first byte in the kept buffer.
    pub(super) start: u32,
    /// Its width and height.
    pub(super) size: (u32, u32),
    /// Its draws.
    pub(super) draw: ViewDraw,
}

/// Flag bits of a view: which draws it has; the jitter's order follows, two bits an operation.
pub(super) const CROP: u64 = 1;
pub(super) const JITTER: u64 = 2;
pub(super) const GRAYSCALE: u64 = 4;
pub(super) const FLIP: u64 = 8;
pub(super) const ORDER_SHIFT: u64 = 4;
pub(super) const JITTER_OPS: [JitterOp; 4] = [
    JitterOp::Brightness,
    JitterOp::Contrast,
    JitterOp::Saturation,
    JitterOp::Hue,
];

impl Request {
    /// The request as the operation's scalars (`f32`s travel exactly as `f64`s).
    pub(super) fn encode(&self) -> Vec<ScalarIr> {
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
    pub(super) fn decode(scalars: &[ScalarIr]) -> Result<Self, RequestError> {
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
    pub(super) fn check(&self, kept_bytes: u64) -> Result<(), RequestError> {
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
    pub(super) fn specs(&self) -> Vec<ViewSpec> {
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
pub(super) mod tests {
    use super::*;
    use crate::augment::AugmentOps;
    use rand::SeedableRng;

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
    pub(in crate::augment::served) fn one_view() -> Vec<ScalarIr> {
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
    pub(in crate::augment::served) const WIDTH: usize = HEADER + 1;
    pub(in crate::augment::served) const HEIGHT: usize = HEADER + 2;
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
}
