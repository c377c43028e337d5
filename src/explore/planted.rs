//! Folders with planted edited copies, and their ground truth: what the duplicate finder is
//! measured on.
//!
//! [`plant_copies`] copies a folder of images and, beside a seeded sample of them, writes one edited
//! copy each, cycling through the edits a photo library is full of: re-encoded at low JPEG
//! quality, downscaled, cropped, brightened, noised. `planted-copies.csv` lists every
//! `original,copy,edit` (paths relative to the folder), which [`score_pairs`] compares with the
//! groups [`crate::explore::duplicates`] finds.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use image::codecs::jpeg::JpegEncoder;
use image::{RgbImage, imageops};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use rayon::prelude::*;

use crate::data::{self, DataError};
use crate::support::csv_text::{self, CsvText};
use crate::support::error_kind::ErrorKind;
use crate::support::{atomic_file, paths};

/// The ground-truth file [`plant_copies`] writes at the top of the folder.
pub const TRUTH_FILE: &str = "planted-copies.csv";

/// How strong an edit is: 1 for the planted copies; the duplicate finder's threshold calibration
/// uses milder edits (see [`crate::explore::duplicates`]).
///
/// At strength `s`: JPEG quality `100 − 85 s` (15 at full strength), `1 − s/2` of the width and
/// height, the centre `1 − s/5` of each side, channels × `(1 + 0.3 s)`, Gaussian noise of
/// `12 s` levels.
pub type Strength = f32;

fn jpeg_quality(strength: Strength) -> u8 {
    (100.0 - 85.0 * strength).round().clamp(1.0, 100.0) as u8
}

/// One way a copy differs from its original.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Edit {
    /// Re-encoded as JPEG at low quality (15 when planted).
    Jpeg,
    /// Smaller (half the width and height when planted).
    Downscale,
    /// The centre of the image (80 % of each side when planted).
    Crop,
    /// Brighter (every channel × 1.3 when planted).
    Brighten,
    /// Gaussian noise (σ = 12 levels when planted).
    Noise,
}

impl Edit {
    /// Every edit, in the order copies cycle through them.
    pub const ALL: [Edit; 5] = [
        Edit::Jpeg,
        Edit::Downscale,
        Edit::Crop,
        Edit::Brighten,
        Edit::Noise,
    ];

    /// The name in the ground-truth file.
    pub fn name(self) -> &'static str {
        match self {
            Edit::Jpeg => "jpeg",
            Edit::Downscale => "downscale",
            Edit::Crop => "crop",
            Edit::Brighten => "brighten",
            Edit::Noise => "noise",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|edit| edit.name() == name)
    }

    /// The pixels of an edited copy at `strength`; a JPEG copy's pixels are those of the
    /// original until it is encoded ([`Edit::edited`] does both).
    fn apply(self, image: &RgbImage, strength: Strength, rng: &mut ChaCha8Rng) -> RgbImage {
        let (width, height) = image.dimensions();
        let scaled = |side: u32, fraction: f32| ((side as f32 * fraction).round() as u32).max(1);
        match self {
            Edit::Jpeg => image.clone(),
            Edit::Downscale => {
                let fraction = 1.0 - 0.5 * strength;
                imageops::resize(
                    image,
                    scaled(width, fraction),
                    scaled(height, fraction),
                    imageops::FilterType::Triangle,
                )
            }
            Edit::Crop => {
                let fraction = 1.0 - 0.2 * strength;
                let (w, h) = (scaled(width, fraction), scaled(height, fraction));
                imageops::crop_imm(image, (width - w) / 2, (height - h) / 2, w, h).to_image()
            }
            Edit::Brighten => map_channels(image, |v| v * (1.0 + 0.3 * strength)),
            Edit::Noise => map_channels(image, |v| v + 12.0 * strength * standard_normal(rng)),
        }
    }

    /// An edited copy of `image` at `strength`, in memory (a JPEG copy encoded and decoded).
    pub fn edited(self, image: &RgbImage, strength: Strength, rng: &mut ChaCha8Rng) -> RgbImage {
        let pixels = self.apply(image, strength, rng);
        if self != Edit::Jpeg {
            return pixels;
        }
        let mut bytes = Vec::new();
        JpegEncoder::new_with_quality(&mut bytes, jpeg_quality(strength))
            .encode_image(&pixels)
            .and_then(|()| image::load_from_memory(&bytes))
            .map(|decoded| decoded.to_rgb8())
            // Encoding RGB pixels to memory cannot fail; keep the unencoded pixels if it ever does.
            .unwrap_or(pixels)
    }
}

fn map_channels(image: &RgbImage, mut f: impl FnMut(f32) -> f32) -> RgbImage {
    let mut out = image.clone();
    for value in out.iter_mut() {
        *value = f(f32::from(*value)).round().clamp(0.0, 255.0) as u8;
    }
    out
}

/// One standard normal draw (the noise edit's, and test data elsewhere).
pub(crate) fn standard_normal(rng: &mut ChaCha8Rng) -> f32 {
    rng.sample(StandardNormal)
}

/// An original and its planted copy, relative to the folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlantedCopy {
    /// The unedited image.
    pub original: PathBuf,
    /// The edited copy beside it.
    pub copy: PathBuf,
    /// How the copy was edited.
    pub edit: Edit,
}

/// Why a planted-copies folder could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum PlantError {
    /// The source folder could not be scanned.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The fraction is not in (0, 1].
    #[error("the fraction of images to copy must be above 0 and at most 1, not {0}")]
    Fraction(f64),
    /// The output folder already holds files; nothing is overwritten.
    #[error("{} is not empty; choose a new folder for the planted copies", .0.display())]
    NotEmpty(PathBuf),
    /// An original chosen for a copy cannot be decoded; nothing was written.
    #[error(
        "{source}; nothing was written to {}: move that file out of the folder, or convert it, and run again",
        .out.display()
    )]
    Original {
        /// The decoder's error, naming the file.
        source: DataError,
        /// The output folder, left as it was.
        out: PathBuf,
    },
    /// A file could not be read, written or encoded.
    #[error("{}: {message}", .path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A line of the ground-truth file is not `original,copy,edit`.
    #[error("{}: line {line} is not original,copy,edit with a known edit", .path.display())]
    Truth {
        /// The ground-truth file.
        path: PathBuf,
        /// Its line number, from 1.
        line: usize,
    },
}

impl PlantError {
    /// The kind of this error, which each shell keys its remedy on.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Data(error) => error.kind(),
            Self::Fraction(_) | Self::NotEmpty(_) => ErrorKind::Config,
            Self::Original { .. } | Self::File { .. } | Self::Truth { .. } => ErrorKind::Files,
        }
    }
}

fn file_error(path: &Path, error: impl std::fmt::Display) -> PlantError {
    PlantError::File {
        path: path.to_owned(),
        message: error.to_string(),
    }
}

/// An image size whose cached side (1.5 times it) no image reaches: [`data::load_image`] then
/// keeps every pixel (it never enlarges, and refuses sides above 16 384), so the edits are sized
/// from the original itself.
const FULL_RESOLUTION: u32 = u32::MAX / 3;

/// An original as the duplicate finder sees it: decoded by the engine's decoder (upright by its
/// EXIF orientation, raw files through their preview, HEIC, HEIF and AVIF), at full resolution.
fn decode_original(file: &Path) -> Result<RgbImage, DataError> {
    data::load_image(file, FULL_RESOLUTION)
}

/// Copies every image of `source` into `out` (same relative paths) and writes an edited copy
/// beside `fraction` of them (a seeded sample), named `<stem>-copy-<edit>.<jpg|png>`; writes
/// [`TRUTH_FILE`] and returns its rows.
///
/// The sample is chosen and every original in it decoded before anything is written, so an
/// original the engine cannot read leaves `out` as it was. Each is decoded once more when its copy
/// is made: holding them all would take memory in proportion to the sample.
///
/// # Errors
/// [`PlantError::NotEmpty`] when `out` holds anything (nothing is overwritten),
/// [`PlantError::Original`] naming a chosen original that cannot be decoded, and errors naming
/// the file that could not be read or written.
pub fn plant_copies(
    source: &Path,
    out: &Path,
    fraction: f64,
    seed: u64,
) -> Result<Vec<PlantedCopy>, PlantError> {
    if !(fraction > 0.0 && fraction <= 1.0) {
        return Err(PlantError::Fraction(fraction));
    }
    if fs::read_dir(out).is_ok_and(|mut listing| listing.next().is_some()) {
        return Err(PlantError::NotEmpty(out.to_owned()));
    }
    let scan = data::scan(source)?;
    let relative: Vec<PathBuf> = scan
        .entries
        .iter()
        .map(|entry| {
            entry
                .path
                .strip_prefix(&scan.root)
                .unwrap_or(&entry.path)
                .to_owned()
        })
        .collect();
    let count = ((relative.len() as f64 * fraction).round() as usize).clamp(1, relative.len());
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut chosen = rand::seq::index::sample(&mut rng, relative.len(), count).into_vec();
    chosen.sort_unstable();
    chosen.par_iter().try_for_each(|&row| {
        decode_original(&scan.root.join(&relative[row]))
            .map(drop)
            .map_err(|source| PlantError::Original {
                source,
                out: out.to_owned(),
            })
    })?;
    relative.par_iter().try_for_each(|path| {
        let target = out.join(path);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(|error| file_error(parent, error))?;
        }
        fs::copy(scan.root.join(path), &target).map_err(|error| file_error(&target, error))?;
        Ok::<_, PlantError>(())
    })?;
    let planted: Vec<PlantedCopy> = chosen
        .par_iter()
        .enumerate()
        .map(|(i, &row)| {
            let edit = Edit::ALL[i % Edit::ALL.len()];
            let original = &relative[row];
            let image = decode_original(&scan.root.join(original))?;
            // Each copy draws from its own stream, so the output does not depend on thread order.
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (row as u64).wrapping_mul(0x9e37_79b9));
            let edited = edit.apply(&image, 1.0, &mut rng);
            let stem = original.file_stem().unwrap_or_default().to_string_lossy();
            let extension = if edit == Edit::Jpeg { "jpg" } else { "png" };
            let copy = original.with_file_name(format!("{stem}-copy-{}.{extension}", edit.name()));
            let target = out.join(&copy);
            write_image(&edited, &target, edit == Edit::Jpeg)?;
            Ok(PlantedCopy {
                original: original.clone(),
                copy,
                edit,
            })
        })
        .collect::<Result<_, PlantError>>()?;
    write_truth(&out.join(TRUTH_FILE), &planted)?;
    Ok(planted)
}

fn write_image(image: &RgbImage, path: &Path, jpeg: bool) -> Result<(), PlantError> {
    if jpeg {
        let file = fs::File::create(path).map_err(|error| file_error(path, error))?;
        let mut encoder =
            JpegEncoder::new_with_quality(std::io::BufWriter::new(file), jpeg_quality(1.0));
        encoder
            .encode_image(image)
            .map_err(|error| file_error(path, error))
    } else {
        image.save(path).map_err(|error| file_error(path, error))
    }
}

/// Paths in the ground-truth file use `/` on every platform, each name as [`paths::to_text`]
/// writes it, so a name that is not UTF-8 reads back as the same file.
fn portable(path: &Path) -> String {
    path.components()
        .map(|part| paths::to_text(Path::new(part.as_os_str())).into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

fn write_truth(path: &Path, planted: &[PlantedCopy]) -> Result<(), PlantError> {
    let mut csv = CsvText::new(&["original", "copy", "edit"]);
    for row in planted {
        csv.record(&[
            portable(&row.original).as_str(),
            portable(&row.copy).as_str(),
            row.edit.name(),
        ]);
    }
    atomic_file::write(path, csv.into_string().as_bytes()).map_err(|error| file_error(path, error))
}

/// Reads a [`TRUTH_FILE`]; paths come back joined to the folder holding it.
///
/// # Errors
/// [`PlantError::File`] when it cannot be read, [`PlantError::Truth`] naming a malformed line.
pub fn read_truth(path: &Path) -> Result<Vec<PlantedCopy>, PlantError> {
    let text = fs::read_to_string(path).map_err(|error| file_error(path, error))?;
    let folder = path.parent().unwrap_or(Path::new(""));
    csv_text::records(&text)
        .iter()
        .enumerate()
        .skip(1)
        .map(|(i, record)| {
            match record.as_slice() {
                [original, copy, edit] => Edit::parse(edit.trim()).map(|edit| PlantedCopy {
                    original: folder.join(paths::from_text(original)),
                    copy: folder.join(paths::from_text(copy)),
                    edit,
                }),
                _ => None,
            }
            .ok_or_else(|| PlantError::Truth {
                path: path.to_owned(),
                line: i + 1,
            })
        })
        .collect()
}

/// How well groups of near-duplicates recover the planted pairs.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PairScore {
    /// Pairs of images that share a group.
    pub found_pairs: usize,
    /// Planted pairs.
    pub planted_pairs: usize,
    /// Found pairs that are planted pairs.
    pub correct: usize,
    /// `correct / found_pairs` (1 when nothing was found).
    pub precision: f64,
    /// `correct / planted_pairs`.
    pub recall: f64,
    /// Recall per edit, in [`Edit::ALL`] order.
    pub recall_per_edit: Vec<(Edit, f64)>,
    /// Per edit, in [`Edit::ALL`] order: of the planted pairs found, those whose group keeps
    /// the original ([`super::DuplicateGroup::keep`]), and all found.
    pub kept_original_per_edit: Vec<(Edit, usize, usize)>,
}

/// Scores `groups` (each a list of image paths, with the path of the copy it keeps) against the
/// ground truth in `truth` (a [`TRUTH_FILE`]), comparing where the files really are: the groups
/// may name the folder by another path (relative, through a link) than the truth file does.
///
/// # Errors
/// Those of [`read_truth`].
pub fn score_groups(
    groups: &[(Vec<PathBuf>, Option<PathBuf>)],
    truth: &Path,
) -> Result<PairScore, PlantError> {
    let planted: Vec<PlantedCopy> = read_truth(truth)?
        .into_iter()
        .map(|row| PlantedCopy {
            original: paths::real(&row.original),
            copy: paths::real(&row.copy),
            edit: row.edit,
        })
        .collect();
    let found: Vec<(Vec<PathBuf>, Option<PathBuf>)> = groups
        .iter()
        .map(|(group, keep)| {
            (
                group.iter().map(|path| paths::real(path)).collect(),
                keep.as_deref().map(paths::real),
            )
        })
        .collect();
    Ok(score_pairs(&found, &planted))
}

/// Scores `groups` (each a list of image paths and the one it keeps) against the planted pairs:
/// every pair of images sharing a group is a found pair; precision and recall are over pairs.
fn score_pairs(groups: &[(Vec<PathBuf>, Option<PathBuf>)], planted: &[PlantedCopy]) -> PairScore {
    let key = |a: &Path, b: &Path| {
        if a <= b {
            (a.to_owned(), b.to_owned())
        } else {
            (b.to_owned(), a.to_owned())
        }
    };
    let mut found = HashSet::new();
    let mut kept = HashSet::new();
    for (group, keep) in groups {
        kept.extend(keep.iter().cloned());
        for (i, a) in group.iter().enumerate() {
            for b in &group[i + 1..] {
                found.insert(key(a, b));
            }
        }
    }
    let hit = |row: &PlantedCopy| found.contains(&key(&row.original, &row.copy));
    let kept_original_per_edit = Edit::ALL
        .into_iter()
        .map(|edit| {
            let rows = planted.iter().filter(|row| row.edit == edit && hit(row));
            let (keeping, all) = rows.fold((0, 0), |(keeping, all), row| {
                (keeping + usize::from(kept.contains(&row.original)), all + 1)
            });
            (edit, keeping, all)
        })
        .filter(|&(_, _, all)| all > 0)
        .collect();
    let correct = planted.iter().filter(|row| hit(row)).count();
    let ratio = |a: usize, b: usize| if b == 0 { 1.0 } else { a as f64 / b as f64 };
    let recall_per_edit = Edit::ALL
        .into_iter()
        .filter_map(|edit| {
            let rows: Vec<_> = planted.iter().filter(|row| row.edit == edit).collect();
            (!rows.is_empty()).then(|| {
                (
                    edit,
                    ratio(rows.iter().filter(|row| hit(row)).count(), rows.len()),
                )
            })
        })
        .collect();
    PairScore {
        found_pairs: found.len(),
        planted_pairs: planted.len(),
        correct,
        precision: ratio(correct, found.len()),
        recall: ratio(correct, planted.len()),
        recall_per_edit,
        kept_original_per_edit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::demo::{self, DemoSpec};

    #[test]
    fn copies_are_planted_beside_their_originals_and_listed() {
        let dir = tempfile::tempdir().unwrap();
        let spec = DemoSpec {
            classes: 2,
            train_per_class: 10,
            test_per_class: 0,
            size: 20,
            seed: 3,
        };
        let folders = demo::generate(&dir.path().join("demo"), &spec).unwrap();
        let out = dir.path().join("planted");
        let planted = plant_copies(&folders.train, &out, 0.5, 7).unwrap();
        assert_eq!(planted.len(), 10);
        let edits: HashSet<Edit> = planted.iter().map(|row| row.edit).collect();
        assert_eq!(edits.len(), 5, "every edit is used");
        for row in &planted {
            assert_eq!(row.copy.parent(), row.original.parent());
            let copy = image::open(out.join(&row.copy)).unwrap();
            let expected = match row.edit {
                Edit::Downscale => (10, 10),
                Edit::Crop => (16, 16),
                _ => (20, 20),
            };
            assert_eq!((copy.width(), copy.height()), expected, "{:?}", row.edit);
        }
        assert_eq!(data::scan(&out).unwrap().entries.len(), 30);
        let read = read_truth(&out.join(TRUTH_FILE)).unwrap();
        assert_eq!(read.len(), 10);
        assert_eq!(read[0].original, out.join(&planted[0].original));
        assert!(matches!(
            plant_copies(&folders.train, &out, 0.5, 7),
            Err(PlantError::NotEmpty(_))
        ));
    }

    #[test]
    fn originals_are_decoded_as_the_finder_reads_them_and_a_bad_one_leaves_out_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let spec = DemoSpec {
            classes: 2,
            train_per_class: 2,
            test_per_class: 0,
            size: 20,
            seed: 3,
        };
        let folders = demo::generate(&dir.path().join("demo"), &spec).unwrap();
        let class = fs::read_dir(&folders.train)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        // A PNG named .jpg: the engine reads it by its content, as the duplicate finder does.
        fs::copy(class.join("0000.png"), class.join("renamed.jpg")).unwrap();
        let planted = plant_copies(&folders.train, &dir.path().join("first"), 1.0, 7).unwrap();
        assert_eq!(planted.len(), 5);
        // A file no decoder reads among the chosen originals: refused before anything is
        // written, naming the file.
        fs::write(class.join("broken.jpg"), b"not an image at all").unwrap();
        let out = dir.path().join("second");
        fs::create_dir(&out).unwrap();
        let error = plant_copies(&folders.train, &out, 1.0, 7).unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, PlantError::Original { .. }), "{message}");
        assert!(
            message.contains("broken.jpg") && message.contains("nothing was written"),
            "{message}"
        );
        assert_eq!(fs::read_dir(&out).unwrap().count(), 0, "out left as it was");
        let missing = dir.path().join("third");
        assert!(plant_copies(&folders.train, &missing, 1.0, 7).is_err());
        assert!(!missing.exists(), "no folder made");
    }

    #[test]
    fn pairs_are_scored_over_every_pair_in_a_group() {
        let p = |name: &str| PathBuf::from(name);
        let planted = vec![
            PlantedCopy {
                original: p("a"),
                copy: p("a-copy"),
                edit: Edit::Jpeg,
            },
            PlantedCopy {
                original: p("b"),
                copy: p("b-copy"),
                edit: Edit::Crop,
            },
        ];
        // One right group with an intruder (3 pairs, 1 right); b's copy is missed.
        let groups = vec![(vec![p("a-copy"), p("x"), p("a")], Some(p("a")))];
        let score = score_pairs(&groups, &planted);
        assert_eq!(score.kept_original_per_edit, vec![(Edit::Jpeg, 1, 1)]);
        let copy_kept = score_pairs(&[(groups[0].0.clone(), Some(p("a-copy")))], &planted);
        assert_eq!(copy_kept.kept_original_per_edit, vec![(Edit::Jpeg, 0, 1)]);
        assert_eq!((score.found_pairs, score.correct), (3, 1));
        assert!((score.precision - 1.0 / 3.0).abs() < 1e-12);
        assert!((score.recall - 0.5).abs() < 1e-12);
        assert_eq!(
            score.recall_per_edit,
            vec![(Edit::Jpeg, 1.0), (Edit::Crop, 0.0)]
        );
    }

    #[test]
    fn names_with_commas_and_quotes_round_trip_through_the_truth_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(TRUTH_FILE);
        #[cfg(unix)]
        let odd = {
            use std::os::unix::ffi::OsStrExt;
            PathBuf::from(std::ffi::OsStr::from_bytes(b"caf\xe9/x.png"))
        };
        #[cfg(not(unix))]
        let odd = PathBuf::from("café/x.png");
        let planted = vec![
            PlantedCopy {
                original: PathBuf::from("Paris, 2019/IMG_1, copy.jpg"),
                copy: PathBuf::from("Paris, 2019/the \"best\" one.png"),
                edit: Edit::Crop,
            },
            PlantedCopy {
                original: odd.clone(),
                copy: odd.with_file_name("x-copy-noise.png"),
                edit: Edit::Noise,
            },
        ];
        write_truth(&path, &planted).unwrap();
        let read = read_truth(&path).unwrap();
        let expected: Vec<PlantedCopy> = planted
            .iter()
            .map(|row| PlantedCopy {
                original: dir.path().join(&row.original),
                copy: dir.path().join(&row.copy),
                edit: row.edit,
            })
            .collect();
        assert_eq!(read, expected);
    }

    #[test]
    fn a_malformed_truth_line_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(TRUTH_FILE);
        fs::write(
            &path,
            "original,copy,edit\na.png,b.png,jpeg\na.png,b.png,blur\n",
        )
        .unwrap();
        let error = read_truth(&path).unwrap_err();
        assert!(
            matches!(error, PlantError::Truth { line: 3, .. }),
            "{error}"
        );
    }
}
