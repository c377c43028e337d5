//! The persistent preprocessed cache: each folder's images decoded once per resolution, kept on
//! disk, and read back in any order without decoding the originals again (the approach of FFCV's
//! dataset files).
//!
//! One folder cache is a directory under the cache root, named from the folder's canonical path
//! and the cached side, holding
//! - `pixels-<generation>.bin`: the images one after another, raw RGB where small, JPEG (quality
//!   95) where raw would be large, so 100 000 photos cached for 224 px training stay near 10 GB;
//! - `index`: for every file of the folder, its relative path (exact bytes), size and modification
//!   time, and where its pixels are (or why it could not be decoded), plus its channel sums so the
//!   input normalisation needs no pass over the pixels; rewritten atomically, checksummed;
//! - `lock`: held while a process fills the cache, so two never write at once.
//!
//! A file whose size or modification time changed is decoded again; so is one the index does not
//! know, and one it records as refused by another version of the decoder (a file that could not
//! be read at all is not recorded, see `fill`). An interrupted fill keeps what it had written at
//! its last index checkpoint. Images are read with positioned reads through the operating system's
//! page cache rather than by mapping the file: mapped pages that were touched count as the
//! process's resident memory, and one epoch touches them all, while the page cache gives the same
//! reuse and stays out of the budget.
//!
//! This module is the cache as a whole (where it lives, what it holds); `fill` brings one folder
//! cache up to date, `index` and `store` own its two files (`binary` is their shared framing),
//! `embeddings` is a second cache kept under the same root, and `clear` deletes what the cache
//! wrote there, recognising each entry by its own names and content, never by a folder's name.

mod binary;
mod clear;
mod embeddings;
mod fill;
mod index;
mod store;

use std::fs;
use std::path::{Path, PathBuf};

use super::DataError;
use crate::support::paths::disk_use;
pub use fill::WAITING;
pub(crate) use fill::fill;
use index::Index;
pub(crate) use store::{Location, Store};

/// The shorter side images are cached at for training at `image_size`: 1.5× the training size,
/// so RandomResizedCrop's small crops are cut from real pixels rather than upsampled from a few
/// dozen (never above a file's own size).
pub fn cached_side(image_size: u32) -> u32 {
    (3 * image_size).div_ceil(2)
}

/// Where folder caches live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PixelCache {
    root: PathBuf,
}

/// One folder's cache, for the app's list of what the cache holds.
#[derive(Debug, Clone, serde::Serialize, ts_rs::TS)]
pub struct CachedFolder {
    /// The image folder it caches.
    #[serde(with = "crate::support::paths")]
    #[ts(type = "string")]
    pub folder: PathBuf,
    /// Shorter side of its images, in pixels.
    pub side: u32,
    /// Files it knows (decoded or failed).
    pub files: usize,
    /// Disk space it takes.
    pub bytes: u64,
}

impl PixelCache {
    /// A cache kept under `root` (created when first filled).
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The per-user cache folder (`~/.cache/spreadout/pixels` on Linux), shared by the CLI and
    /// the app.
    pub fn default_location() -> Self {
        Self::at(crate::support::paths::default_cache_dir().join("pixels"))
    }

    /// The folder holding every folder cache.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// What the cache holds, largest first.
    pub fn usage(&self) -> Vec<CachedFolder> {
        let Ok(listing) = fs::read_dir(&self.root) else {
            return Vec::new();
        };
        let mut folders: Vec<CachedFolder> = listing
            .flatten()
            .filter_map(|item| {
                let dir = item.path();
                let index = Index::read(&dir.join("index"))?;
                let bytes = disk_use(&dir);
                Some(CachedFolder {
                    folder: index.folder,
                    side: index.side,
                    files: index.records.len(),
                    bytes,
                })
            })
            .collect();
        folders.sort_by_key(|folder| std::cmp::Reverse(folder.bytes));
        folders
    }

    /// Disk space of everything in the cache: folder caches, kept embeddings and the app's
    /// thumbnails.
    pub fn disk_bytes(&self) -> u64 {
        disk_use(&self.root)
    }

    /// The folder cache of `folder` at `side`, named from its canonical path so that two ways of
    /// writing one folder share a cache.
    fn folder_dir(&self, folder: &Path, side: u32) -> Result<PathBuf, DataError> {
        let canonical = fs::canonicalize(folder).map_err(|source| DataError::Io {
            path: folder.to_path_buf(),
            source,
        })?;
        let digest =
            xxhash_rust::xxh3::xxh3_64(&crate::support::paths::os_bytes(canonical.as_os_str()));
        Ok(self.root.join(format!("{digest:016x}-{side}px")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{ImageSource, load, scan};
    use image::RgbImage;
    use std::fs::File;

    pub(super) fn photo(width: u32, height: u32, shade: u8) -> RgbImage {
        RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([shade, (x * 255 / width) as u8, (y * 255 / height) as u8])
        })
    }

    pub(super) fn no_progress(_: usize, _: usize) -> bool {
        true
    }

    #[test]
    fn a_second_load_decodes_nothing_and_a_changed_file_is_decoded_again() {
        let photos = tempfile::tempdir().unwrap();
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = PixelCache::at(cache_dir.path());
        for i in 0..5u8 {
            photo(300, 200, i * 40)
                .save(photos.path().join(format!("{i}.png")))
                .unwrap();
        }
        // Big enough to be stored as JPEG: 1.5 × 128 = 192 px shorter side.
        photo(600, 400, 9)
            .save(photos.path().join("big.jpg"))
            .unwrap();
        std::fs::write(photos.path().join("broken.png"), b"not a png").unwrap();

        let first = load(&scan(photos.path()).unwrap(), &cache, 128, &no_progress).unwrap();
        assert_eq!((first.len(), first.decoded, first.skipped.len()), (6, 7, 1));
        let second = load(&scan(photos.path()).unwrap(), &cache, 128, &no_progress).unwrap();
        assert_eq!(
            second.decoded, 0,
            "everything, the broken file too, came from the cache"
        );
        assert_eq!(second.skipped, first.skipped);
        for i in 0..first.len() {
            assert_eq!(first.image(i).unwrap(), second.image(i).unwrap());
        }
        assert_eq!(first.image(0).unwrap().dimensions(), (288, 192));
        assert_eq!(first.normalization(), second.normalization());

        // Same name, new content (and so a new size and time): only that file is decoded.
        std::thread::sleep(std::time::Duration::from_millis(20));
        photo(330, 200, 250)
            .save(photos.path().join("2.png"))
            .unwrap();
        let third = load(&scan(photos.path()).unwrap(), &cache, 128, &no_progress).unwrap();
        assert_eq!(third.decoded, 1);
        let changed = third
            .entries
            .iter()
            .position(|e| e.path.ends_with("2.png"))
            .unwrap();
        assert_eq!(third.image(changed).unwrap().get_pixel(0, 0).0[0], 250);

        // Another resolution is another cache; the first stays.
        let other = load(&scan(photos.path()).unwrap(), &cache, 32, &no_progress).unwrap();
        assert_eq!(other.decoded, 7);
        let usage = cache.usage();
        assert_eq!(usage.len(), 2);
        assert!(
            usage
                .iter()
                .all(|folder| folder.files == 7 && folder.bytes > 0)
        );
        // The sets still read their data files, and where deleting an open file waits for its
        // last handle (Windows on FAT and exFAT, Wine) their folders would stay; clearing a cache
        // in use is clear.rs's test.
        drop((first, second, third, other));
        assert!(cache.clear().unwrap() > 0);
        assert!(cache.usage().is_empty());
    }

    #[test]
    fn a_stopped_fill_keeps_its_work_and_a_damaged_index_is_rebuilt() {
        let photos = tempfile::tempdir().unwrap();
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = PixelCache::at(cache_dir.path());
        for i in 0..300u32 {
            photo(8, 8, (i % 250) as u8)
                .save(photos.path().join(format!("{i:03}.png")))
                .unwrap();
        }
        let listed = scan(photos.path()).unwrap();
        let stopped = load(&listed, &cache, 8, &|done, _| done < 100);
        assert!(matches!(stopped, Err(DataError::Canceled(_))));
        let resumed = load(&listed, &cache, 8, &no_progress).unwrap();
        assert!(resumed.decoded < 300, "decoded {} again", resumed.decoded);

        let dir = cache.folder_dir(photos.path(), cached_side(8)).unwrap();
        let index = dir.join("index");
        let mut bytes = std::fs::read(&index).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xFF;
        std::fs::write(&index, bytes).unwrap();
        let rebuilt = load(&listed, &cache, 8, &no_progress).unwrap();
        assert_eq!(rebuilt.decoded, 300);
        assert_eq!(rebuilt.image(7).unwrap(), resumed.image(7).unwrap());
    }

    #[test]
    fn a_missing_or_short_data_file_is_decoded_again_never_read_as_black() {
        let photos = tempfile::tempdir().unwrap();
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = PixelCache::at(cache_dir.path());
        for i in 0..8u8 {
            photo(8, 8, 100 + i)
                .save(photos.path().join(format!("{i}.png")))
                .unwrap();
        }
        let listed = scan(photos.path()).unwrap();
        let first = load(&listed, &cache, 8, &no_progress).unwrap();
        let expected: Vec<RgbImage> = (0..8)
            .map(|i| first.image(i).unwrap().into_owned())
            .collect();
        let dir = cache.folder_dir(photos.path(), cached_side(8)).unwrap();
        // The current generation's: an earlier one that an open set still reads may be listed
        // until that set closes it where deleting an open file waits (Windows on FAT, Wine).
        let data_file = || {
            std::fs::read_dir(&dir)
                .unwrap()
                .flatten()
                .map(|item| item.path())
                .filter(|path| path.to_string_lossy().ends_with(".bin"))
                .max_by_key(|path| {
                    let name = path.file_name().unwrap().to_string_lossy().into_owned();
                    name.trim_start_matches("pixels-")
                        .trim_end_matches(".bin")
                        .parse::<u64>()
                        .unwrap()
                })
                .unwrap()
        };

        let short = std::fs::OpenOptions::new()
            .write(true)
            .open(data_file())
            .unwrap();
        short.set_len(short.metadata().unwrap().len() / 2).unwrap();
        drop(short);
        let after_short = load(&listed, &cache, 8, &no_progress).unwrap();
        assert_eq!(after_short.decoded, 8);
        for (i, image) in expected.iter().enumerate() {
            assert_eq!(after_short.image(i).unwrap().as_ref(), image);
        }

        // Closed first: where deleting an open file waits for its last handle (Windows on FAT,
        // Wine), the file would stay, whole, under its name.
        drop((first, after_short));
        std::fs::remove_file(data_file()).unwrap();
        let after_missing = load(&listed, &cache, 8, &no_progress).unwrap();
        assert_eq!(after_missing.decoded, 8);
        for (i, image) in expected.iter().enumerate() {
            assert_eq!(after_missing.image(i).unwrap().as_ref(), image);
        }
    }

    #[test]
    fn waiting_for_another_fill_can_be_cancelled() {
        let photos = tempfile::tempdir().unwrap();
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = PixelCache::at(cache_dir.path());
        for i in 0..2u8 {
            photo(8, 8, i)
                .save(photos.path().join(format!("{i}.png")))
                .unwrap();
        }
        let dir = cache.folder_dir(photos.path(), cached_side(8)).unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        let other_fill = File::create(dir.join("lock")).unwrap();
        other_fill.lock().unwrap();

        let listed = scan(photos.path()).unwrap();
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let calls = std::sync::atomic::AtomicUsize::new(0);
            // Told again and again that it waits; the third time, the person stops it.
            let result = load(&listed, &cache, 8, &|done, _| {
                assert_eq!(done, WAITING);
                calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < 2
            });
            sender.send(result.map(|_| ())).unwrap();
        });
        let result = receiver
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the wait for the other fill was not cancelled");
        assert!(matches!(result, Err(DataError::Canceled(_))), "{result:?}");
    }

    #[test]
    fn removed_files_leave_the_index_and_their_space_is_reclaimed() {
        let photos = tempfile::tempdir().unwrap();
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = PixelCache::at(cache_dir.path());
        for i in 0..4u8 {
            photo(1200, 800, i * 60)
                .save(photos.path().join(format!("{i}.png")))
                .unwrap();
        }
        load(&scan(photos.path()).unwrap(), &cache, 512, &no_progress).unwrap();
        for i in 0..3u8 {
            std::fs::remove_file(photos.path().join(format!("{i}.png"))).unwrap();
        }
        photo(1200, 800, 1)
            .save(photos.path().join("new.png"))
            .unwrap();
        let after = load(&scan(photos.path()).unwrap(), &cache, 512, &no_progress).unwrap();
        assert_eq!((after.len(), after.decoded), (2, 1));
        let dir = cache.folder_dir(photos.path(), cached_side(512)).unwrap();
        let index = Index::read(&dir.join("index")).unwrap();
        assert_eq!(index.records.len(), 2);
        assert_eq!(
            index.generation, 1,
            "three of four entries were dead: compacted"
        );
        assert_eq!(index.dead_bytes(), 0);
        assert!(after.image(0).is_ok() && after.image(1).is_ok());
    }
}
