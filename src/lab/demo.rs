//! The built-in synthetic labelled data set.
//!
//! `spreadout demo` and the app's "demo data set" use it so that a fresh machine can show the
//! method with no data at hand: small pictures of procedural shapes, one folder per shape, which
//! [`crate::data::scan`] turns into labels for evaluation. Classes differ by shape only; colours,
//! position, size and (where it keeps the class) rotation are random, so a good embedding has to
//! learn shape.
//!
//! [`DemoRun`] is what `spreadout demo` trains on it, and how a second demo reuses the first.

use std::f32::consts::PI;
use std::fs;
use std::path::{Path, PathBuf};

use image::codecs::png::PngEncoder;
use image::{ExtendedColorType, ImageEncoder, Rgb, RgbImage};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::device::DeviceChoice;
use crate::support::error_kind::ErrorKind;
use crate::train::run_folder::checkpoint;
use crate::train::{ResumeOverrides, TrainConfig, TrainError, TrainRequest};

/// What to generate.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DemoSpec {
    /// Number of classes, the first `classes` entries of [`DEMO_CLASSES`]; 2 to 8.
    pub classes: usize,
    /// Training images per class.
    pub train_per_class: usize,
    /// Test images per class; may be 0 when only training data is wanted.
    pub test_per_class: usize,
    /// Width and height of every image, in pixels.
    pub size: u32,
    /// Seed; the same spec always yields byte-identical files.
    pub seed: u64,
}

impl Default for DemoSpec {
    fn default() -> Self {
        Self {
            classes: 6,
            train_per_class: 100,
            test_per_class: 30,
            size: 32,
            seed: 0,
        }
    }
}

/// Names of the procedural classes, which are also their folder names. [`crate::data::scan`]
/// numbers labels in the sorted order of the folder names, not in this order.
pub const DEMO_CLASSES: &[&str] = &[
    "disc",
    "square",
    "triangle",
    "ring",
    "cross",
    "h-stripes",
    "v-stripes",
    "checker",
];

/// Where [`generate`] put the two splits.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoFolders {
    /// `<dir>/train`, one subfolder per class.
    pub train: PathBuf,
    /// `<dir>/test`, one subfolder per class.
    pub test: PathBuf,
}

/// Why the demo data set could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The earlier demo's run could not be resumed.
    #[error(transparent)]
    Resume(#[from] TrainError),
    /// The spec asks for something that cannot be generated.
    #[error("invalid demo data set: {0}")]
    InvalidSpec(String),
    /// A split folder already holds files, which generation would mix with its own.
    #[error(
        "{} already contains files; delete it or choose another folder (demo data is never written over existing files)",
        .0.display()
    )]
    NotEmpty(PathBuf),
    /// A folder or file could not be created or written.
    #[error("cannot write {}: {source}; check the folder exists, is writable and has free space", .path.display())]
    Io {
        /// The folder or file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// An image could not be encoded as PNG.
    #[error("cannot encode {}: {source}", .path.display())]
    Encode {
        /// The file it was meant for.
        path: PathBuf,
        /// What the encoder said.
        source: image::ImageError,
    },
}

impl DemoError {
    /// The kind of this error, which each shell keys its remedy on.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Resume(error) => error.kind(),
            Self::InvalidSpec(_) | Self::NotEmpty(_) => ErrorKind::Config,
            Self::Io { .. } | Self::Encode { .. } => ErrorKind::Files,
        }
    }
}

/// `spreadout demo --out DIR`: the data set in `DIR/data` and its run in `DIR/run`. A second
/// demo in the same folder reuses the data the first generated and resumes its run, so an
/// interrupted demo goes on where it stopped.
#[derive(Debug, Clone)]
pub struct DemoRun {
    /// What the data set holds.
    pub spec: DemoSpec,
    /// `DIR/data`.
    pub data_dir: PathBuf,
    /// The run's training: a fresh one, or the resumption of the checkpoint in `DIR/run`.
    pub request: TrainRequest,
}

impl DemoRun {
    /// Generates the default data set under `root` (unless an earlier demo did) and prepares a
    /// run of `epochs` epochs of a network `width` wide on `device`, images cached in `cache_dir`.
    ///
    /// # Errors
    /// Those of [`generate`].
    pub fn prepare(
        root: &Path,
        epochs: usize,
        width: usize,
        device: DeviceChoice,
        cache_dir: &Path,
    ) -> Result<Self, DemoError> {
        let spec = DemoSpec::default();
        let data_dir = root.join("data");
        let folders = if data_dir.join("train").is_dir() {
            DemoFolders {
                train: data_dir.join("train"),
                test: data_dir.join("test"),
            }
        } else {
            generate(&data_dir, &spec)?
        };
        let run_dir = root.join("run");
        let request = if checkpoint::path(&run_dir).exists() {
            // The run as recorded, for the epochs asked now (a longer demo extends it).
            TrainRequest::resume(
                &run_dir,
                ResumeOverrides {
                    epochs: Some(epochs),
                    train_dir: Some(folders.train),
                    eval_test_dir: Some(folders.test),
                    device: Some(device),
                    cache_dir: Some(cache_dir.to_owned()),
                    ..ResumeOverrides::default()
                },
            )?
            .request
        } else {
            TrainRequest::new(
                TrainConfig {
                    epochs,
                    batch_size: 32,
                    image_size: spec.size,
                    width,
                    knn_k: 50,
                    ..TrainConfig::default()
                },
                folders.train,
                run_dir,
            )
            .evaluated_on(None, Some(folders.test))
            .on(device)
            .with_cache_dir(Some(cache_dir.to_owned()))
        };
        Ok(Self {
            spec,
            data_dir,
            request,
        })
    }
}

/// Below this, shapes are a few pixels wide and hard to tell apart even for a person.
const MIN_SIZE: u32 = 8;
/// Keeps a typo from filling the disk; far beyond what a demo needs.
const MAX_SIZE: u32 = 1024;
/// Also keeps the image index within the 32 bits it gets in the random stream number.
const MAX_PER_CLASS: usize = 100_000;

/// Writes `<dir>/train/<class>/<nnnn>.png` and `<dir>/test/<class>/<nnnn>.png`.
///
/// Each image has a random background colour with a mild gradient, one shape of its class in a
/// random contrasting colour at a random position and scale (and rotation where that keeps the
/// class), and a little pixel noise. Every image draws from its own random stream, derived from
/// the seed, the split, the class and the index, so the output is deterministic and does not
/// depend on how many images are asked for.
///
/// # Errors
/// [`DemoError::InvalidSpec`] for a spec out of range (checked before anything is written),
/// [`DemoError::NotEmpty`] when `<dir>/train` or `<dir>/test` already contains anything, and
/// [`DemoError::Io`] / [`DemoError::Encode`] naming the path that could not be written.
pub fn generate(dir: &Path, spec: &DemoSpec) -> Result<DemoFolders, DemoError> {
    validate(spec)?;
    let folders = DemoFolders {
        train: dir.join("train"),
        test: dir.join("test"),
    };
    let splits = [
        (&folders.train, spec.train_per_class),
        (&folders.test, spec.test_per_class),
    ];
    // Both checks come first so that a refusal leaves nothing behind.
    for (folder, _) in &splits {
        ensure_empty(folder)?;
    }
    let mut jobs = Vec::new();
    for (split, &(folder, per_class)) in splits.iter().enumerate() {
        for (class, name) in DEMO_CLASSES.iter().enumerate().take(spec.classes) {
            let class_dir = folder.join(name);
            fs::create_dir_all(&class_dir).map_err(|source| DemoError::Io {
                path: class_dir.clone(),
                source,
            })?;
            jobs.extend((0..per_class).map(|index| Job {
                path: class_dir.join(format!("{index:04}.png")),
                shape: SHAPES[class],
                stream: stream_id(split, class, index),
            }));
        }
    }
    jobs.par_iter().try_for_each(|job| job.write(spec))?;
    Ok(folders)
}

fn validate(spec: &DemoSpec) -> Result<(), DemoError> {
    let invalid = |message: String| Err(DemoError::InvalidSpec(message));
    let max_classes = DEMO_CLASSES.len();
    if !(2..=max_classes).contains(&spec.classes) {
        // One class would leave the evaluation nothing to tell apart.
        return invalid(format!(
            "classes must be between 2 and {max_classes}, got {}",
            spec.classes
        ));
    }
    // Training needs images; a test split is optional (benchmarks only want training data).
    for (what, count, least) in [
        ("train_per_class", spec.train_per_class, 1),
        ("test_per_class", spec.test_per_class, 0),
    ] {
        if !(least..=MAX_PER_CLASS).contains(&count) {
            return invalid(format!(
                "{what} must be between {least} and {MAX_PER_CLASS}, got {count}"
            ));
        }
    }
    if !(MIN_SIZE..=MAX_SIZE).contains(&spec.size) {
        return invalid(format!(
            "size must be between {MIN_SIZE} and {MAX_SIZE} pixels, got {}",
            spec.size
        ));
    }
    Ok(())
}

/// Fails if `folder` exists and holds anything; a missing folder is fine.
fn ensure_empty(folder: &Path) -> Result<(), DemoError> {
    let mut listing = match fs::read_dir(folder) {
        Ok(listing) => listing,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(DemoError::Io {
                path: folder.to_path_buf(),
                source,
            });
        }
    };
    match listing.next() {
        Some(_) => Err(DemoError::NotEmpty(folder.to_path_buf())),
        None => Ok(()),
    }
}

/// A distinct random stream per image: split, class and index each get their own bits.
fn stream_id(split: usize, class: usize, index: usize) -> u64 {
    // Bounded by `validate`: split < 2, class < 2^16, index < 2^32.
    ((split as u64) << 48) | ((class as u64) << 32) | index as u64
}

/// One image to render and write.
struct Job {
    path: PathBuf,
    shape: Shape,
    stream: u64,
}

impl Job {
    fn write(&self, spec: &DemoSpec) -> Result<(), DemoError> {
        let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
        rng.set_stream(self.stream);
        let image = render(self.shape, spec.size, &mut rng);
        let mut png = Vec::new();
        PngEncoder::new(&mut png)
            .write_image(
                image.as_raw(),
                image.width(),
                image.height(),
                ExtendedColorType::Rgb8,
            )
            .map_err(|source| DemoError::Encode {
                path: self.path.clone(),
                source,
            })?;
        fs::write(&self.path, png).map_err(|source| DemoError::Io {
            path: self.path.clone(),
            source,
        })
    }
}

/// The procedural classes, in the order of [`DEMO_CLASSES`] (the array length enforces the count).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Shape {
    Disc,
    Square,
    Triangle,
    Ring,
    Cross,
    HStripes,
    VStripes,
    Checker,
}

const SHAPES: [Shape; DEMO_CLASSES.len()] = [
    Shape::Disc,
    Shape::Square,
    Shape::Triangle,
    Shape::Ring,
    Shape::Cross,
    Shape::HStripes,
    Shape::VStripes,
    Shape::Checker,
];

/// Half the side of the square patch holding the square, stripes and checker; its corners just
/// fit in the unit disc, so any rotation stays inside the placement.
const PATCH: f32 = 0.7;

impl Shape {
    /// Whether point `(u, v)` of the shape's own frame is covered. The frame has `v` pointing
    /// down, like image rows, and every shape lies within the unit disc.
    fn contains(self, u: f32, v: f32) -> bool {
        let in_patch = u.abs().max(v.abs()) <= PATCH;
        // Index of the band (of `n` across the patch) that `t` falls in.
        let band = |t: f32, n: f32| ((t + PATCH) / (2.0 * PATCH) * n).floor() as i32;
        match self {
            Shape::Disc => u * u + v * v <= 1.0,
            Shape::Ring => (0.36..=1.0).contains(&(u * u + v * v)),
            Shape::Square => in_patch,
            // Equilateral, apex up, inscribed in the unit circle.
            Shape::Triangle => v <= 0.5 && v >= 3f32.sqrt() * u.abs() - 1.0,
            Shape::Cross => {
                let (a, b) = (u.abs(), v.abs());
                (a <= 0.25 && b <= 0.95) || (b <= 0.25 && a <= 0.95)
            }
            // Five bands, three of them drawn.
            Shape::HStripes => in_patch && band(v, 5.0) % 2 == 0,
            Shape::VStripes => in_patch && band(u, 5.0) % 2 == 0,
            Shape::Checker => in_patch && (band(u, 4.0) + band(v, 4.0)) % 2 == 0,
        }
    }

    /// Largest rotation either way that keeps the class: up to the shape's own symmetry, and only
    /// a tilt for stripes, which turned by 90° would become the other stripe class.
    fn max_turn(self) -> f32 {
        match self {
            Shape::Disc | Shape::Ring => 0.0,
            Shape::Triangle => PI / 3.0,
            Shape::Square | Shape::Cross | Shape::Checker => PI / 4.0,
            Shape::HStripes | Shape::VStripes => PI / 12.0,
        }
    }
}

/// Where and how a shape is drawn: centre and radius in pixels, rotation as cosine and sine.
struct Placement {
    center: (f32, f32),
    radius: f32,
    cos: f32,
    sin: f32,
}

impl Placement {
    fn new(center: (f32, f32), radius: f32, turn: f32) -> Self {
        Self {
            center,
            radius,
            cos: turn.cos(),
            sin: turn.sin(),
        }
    }

    /// A random size, position and rotation that keeps the whole shape inside the image.
    ///
    /// Sizes and offsets vary only moderately: colour is randomised away by the training
    /// augmentations, and what is left to tell two images apart should then be mostly their
    /// shape, so that instance discrimination has a class signal to find within a few minutes.
    fn random(shape: Shape, size: u32, rng: &mut ChaCha8Rng) -> Self {
        let size = size as f32;
        let radius = size * rng.random_range(0.3..0.42);
        let slack = (size / 2.0 - radius).clamp(0.0, size * 0.1);
        let mut coordinate = || size / 2.0 + rng.random_range(-slack..=slack);
        let center = (coordinate(), coordinate());
        let max_turn = shape.max_turn();
        Self::new(center, radius, rng.random_range(-max_turn..=max_turn))
    }

    /// Fraction of pixel `(x, y)` that the shape covers, from 4×4 samples, for smooth edges.
    fn coverage(&self, shape: Shape, x: u32, y: u32) -> f32 {
        const GRID: u32 = 4;
        let hits = (0..GRID * GRID)
            .filter(|sample| {
                let offset = |k: u32| (k as f32 + 0.5) / GRID as f32;
                let dx = x as f32 + offset(sample % GRID) - self.center.0;
                let dy = y as f32 + offset(sample / GRID) - self.center.1;
                let u = (dx * self.cos + dy * self.sin) / self.radius;
                let v = (dy * self.cos - dx * self.sin) / self.radius;
                shape.contains(u, v)
            })
            .count();
        hits as f32 / (GRID * GRID) as f32
    }
}

/// Colours closer than this (Euclidean, in 0–255 RGB) could hide the shape.
const MIN_CONTRAST: f32 = 100.0;
/// Brightness change across the image from the background gradient, at most.
const GRADIENT: f32 = 40.0;
/// Per-channel pixel noise, at most, either way.
const NOISE: f32 = 6.0;

/// One demo image: colours, gradient and noise are drawn the same way for every class.
fn render(shape: Shape, size: u32, rng: &mut ChaCha8Rng) -> RgbImage {
    let mut color = || [(); 3].map(|()| rng.random_range(0.0..=255.0f32));
    let background = color();
    let foreground = loop {
        let candidate = color();
        let distance = background
            .iter()
            .zip(&candidate)
            .map(|(a, b)| (a - b) * (a - b))
            .sum::<f32>()
            .sqrt();
        if distance >= MIN_CONTRAST {
            break candidate;
        }
    };
    let placement = Placement::random(shape, size, rng);
    let slope = rng.random_range(0.0..GRADIENT) / size as f32;
    let (gradient_cos, gradient_sin) = rng.random_range(0.0..2.0 * PI).sin_cos();
    let middle = size as f32 / 2.0;
    RgbImage::from_fn(size, size, |x, y| {
        let shade =
            slope * ((x as f32 - middle) * gradient_cos + (y as f32 - middle) * gradient_sin);
        let cover = placement.coverage(shape, x, y);
        Rgb([0, 1, 2].map(|c| {
            let base = background[c] + cover * (foreground[c] - background[c]);
            // Clamped to 0–255 first, so the cast cannot wrap.
            (base + shade + rng.random_range(-NOISE..=NOISE))
                .round()
                .clamp(0.0, 255.0) as u8
        }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data;

    fn small(seed: u64) -> DemoSpec {
        DemoSpec {
            classes: 3,
            train_per_class: 4,
            test_per_class: 2,
            size: 16,
            seed,
        }
    }

    /// Every file below `dir`, relative to it, with its bytes, in a stable order.
    fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        let mut pending = vec![dir.to_path_buf()];
        while let Some(folder) = pending.pop() {
            for item in fs::read_dir(folder).unwrap() {
                let path = item.unwrap().path();
                if path.is_dir() {
                    pending.push(path);
                } else {
                    let bytes = fs::read(&path).unwrap();
                    out.push((path.strip_prefix(dir).unwrap().to_path_buf(), bytes));
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn writes_the_expected_layout() {
        let dir = tempfile::tempdir().unwrap();
        let folders = generate(dir.path(), &small(0)).unwrap();
        assert_eq!(folders.train, dir.path().join("train"));
        assert_eq!(folders.test, dir.path().join("test"));
        let names: Vec<PathBuf> = files(dir.path())
            .into_iter()
            .map(|(path, _)| path)
            .collect();
        let mut expected = Vec::new();
        for (split, count) in [("test", 2), ("train", 4)] {
            for class in ["disc", "square", "triangle"] {
                for index in 0..count {
                    expected.push(Path::new(split).join(class).join(format!("{index:04}.png")));
                }
            }
        }
        expected.sort();
        assert_eq!(names, expected);
        let image = image::open(folders.train.join("disc/0000.png")).unwrap();
        assert_eq!((image.width(), image.height()), (16, 16));
        assert_eq!(image.color(), image::ColorType::Rgb8);
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let [a, b, c] = [0, 0, 1].map(|seed| {
            let dir = tempfile::tempdir().unwrap();
            generate(dir.path(), &small(seed)).unwrap();
            files(dir.path())
        });
        assert_eq!(a, b);
        assert_ne!(a, c);
        // Asking for more images adds files without changing the earlier ones.
        let dir = tempfile::tempdir().unwrap();
        let more = DemoSpec {
            train_per_class: 6,
            ..small(0)
        };
        generate(dir.path(), &more).unwrap();
        let more = files(dir.path());
        assert!(a.iter().all(|file| more.contains(file)));
    }

    #[test]
    fn images_of_a_class_differ() {
        let dir = tempfile::tempdir().unwrap();
        let folders = generate(dir.path(), &small(3)).unwrap();
        let squares = files(&folders.train.join("square"));
        for (i, (_, first)) in squares.iter().enumerate() {
            for (_, second) in &squares[i + 1..] {
                assert_ne!(first, second);
            }
        }
    }

    #[test]
    fn scan_finds_the_class_labels() {
        let dir = tempfile::tempdir().unwrap();
        let spec = DemoSpec {
            classes: DEMO_CLASSES.len(),
            ..small(0)
        };
        let folders = generate(dir.path(), &spec).unwrap();
        let scan = data::scan(&folders.train).unwrap();
        let mut expected: Vec<&str> = DEMO_CLASSES.to_vec();
        expected.sort();
        assert_eq!(scan.label_names, expected);
        assert_eq!(scan.entries.len(), DEMO_CLASSES.len() * 4);
        let cache = data::PixelCache::at(dir.path().join("cache"));
        let set = data::load(&scan, &cache, 16, &|_, _| true).unwrap();
        assert!(set.skipped.is_empty());
        assert_eq!(set.labels().map(|labels| labels.len()), Some(set.len()));
    }

    #[test]
    fn shapes_are_distinguishable() {
        // The same placement for every class: what is left to differ is the shape.
        let size = 32;
        let placement = Placement::new((16.0, 16.0), 14.0, 0.0);
        let masks: Vec<Vec<f32>> = SHAPES
            .iter()
            .map(|&shape| {
                (0..size * size)
                    .map(|i| placement.coverage(shape, i % size, i / size))
                    .collect()
            })
            .collect();
        for (i, a) in masks.iter().enumerate() {
            assert!(
                a.iter().sum::<f32>() > 20.0,
                "{} is nearly empty",
                DEMO_CLASSES[i]
            );
            for (j, b) in masks.iter().enumerate().skip(i + 1) {
                let differing = a.iter().zip(b).map(|(p, q)| (p - q).abs()).sum::<f32>();
                assert!(
                    differing > 0.05 * (size * size) as f32,
                    "{} and {} look alike ({differing} pixels differ)",
                    DEMO_CLASSES[i],
                    DEMO_CLASSES[j]
                );
            }
        }
    }

    #[test]
    fn shapes_stay_inside_the_image() {
        // Random placements never cut a shape off at the border.
        let size = 16;
        for stream in 0..200 {
            let mut rng = ChaCha8Rng::seed_from_u64(7);
            rng.set_stream(stream);
            let shape = SHAPES[usize::try_from(stream).unwrap() % SHAPES.len()];
            let placement = Placement::random(shape, size, &mut rng);
            let (x, y) = placement.center;
            let r = placement.radius;
            assert!(x - r >= 0.0 && y - r >= 0.0 && x + r <= size as f32 && y + r <= size as f32);
        }
    }

    #[test]
    fn bad_specs_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let bad = [
            DemoSpec {
                classes: 0,
                ..small(0)
            },
            DemoSpec {
                classes: 1,
                ..small(0)
            },
            DemoSpec {
                classes: DEMO_CLASSES.len() + 1,
                ..small(0)
            },
            DemoSpec {
                train_per_class: 0,
                ..small(0)
            },
            DemoSpec {
                test_per_class: MAX_PER_CLASS + 1,
                ..small(0)
            },
            DemoSpec {
                size: 4,
                ..small(0)
            },
        ];
        for spec in bad {
            let err = generate(dir.path(), &spec).unwrap_err();
            assert!(matches!(err, DemoError::InvalidSpec(_)), "{spec:?}: {err}");
        }
        assert!(
            fs::read_dir(dir.path()).unwrap().next().is_none(),
            "nothing written"
        );
    }

    #[test]
    fn write_failures_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("blocker");
        fs::write(&blocker, "a file, not a folder").unwrap();
        let err = generate(&blocker, &small(0)).unwrap_err();
        assert!(matches!(err, DemoError::Io { .. }), "{err}");
        assert!(
            err.to_string().contains(&blocker.display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn existing_files_are_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        generate(dir.path(), &small(0)).unwrap();
        let test_dir = tempfile::tempdir().unwrap();
        fs::create_dir(test_dir.path().join("test")).unwrap();
        fs::write(test_dir.path().join("test/mine.png"), "").unwrap();
        let err = generate(test_dir.path(), &small(0)).unwrap_err();
        assert!(matches!(err, DemoError::NotEmpty(_)), "{err}");
        assert!(
            !test_dir.path().join("train").exists(),
            "a refusal writes nothing"
        );
        let err = generate(dir.path(), &small(1)).unwrap_err();
        assert!(
            matches!(err, DemoError::NotEmpty(ref path) if path == &dir.path().join("train")),
            "{err}"
        );
    }

    #[test]
    fn the_test_split_may_be_empty() {
        let dir = tempfile::tempdir().unwrap();
        let spec = DemoSpec {
            test_per_class: 0,
            ..small(0)
        };
        let folders = generate(dir.path(), &spec).unwrap();
        assert!(folders.test.is_dir());
        assert!(files(&folders.test).is_empty());
        assert_eq!(files(&folders.train).len(), 3 * 4);
    }

    #[test]
    fn default_spec_is_valid() {
        assert!(validate(&DemoSpec::default()).is_ok());
    }
}
