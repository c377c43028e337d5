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
//! know. An interrupted fill keeps what it had written at its last index checkpoint. Images are
//! read with positioned reads through the operating system's page cache rather than by mapping
//! the file: mapped pages that were touched count as the process's resident memory, and one epoch
//! touches them all, while the page cache gives the same reuse and stays out of the budget.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use image::RgbImage;
use rayon::prelude::*;

use super::DataError;
use super::decode::decode;
use super::scan::{FileStamp, Scan};
use crate::augment::ChannelTotals;

/// Images whose raw pixels take at most this are stored raw (CIFAR's 32 px: 3 KiB).
const RAW_MAX_BYTES: usize = 64 * 1024;
/// JPEG quality of re-encoded entries: differences from the raw pixels stay around one level.
const JPEG_QUALITY: u8 = 95;
/// How often a long fill writes its index, so an interruption loses at most this much work.
const INDEX_CHECKPOINT: Duration = Duration::from_secs(20);
const INDEX_MAGIC: &[u8; 8] = b"SPXCIDX1";
const EMBEDDINGS_MAGIC: &[u8; 8] = b"SPXCEMB1";

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
    #[serde(with = "crate::paths")]
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
        Self::at(crate::device::default_cache_dir().join("pixels"))
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
                let bytes = disk_size(&dir);
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
        disk_size(&self.root)
    }

    /// Deletes every folder cache that no process is filling; returns the bytes freed. Caches in
    /// use by a fill are left and named in the error.
    ///
    /// # Errors
    /// [`DataError::Cache`] naming what could not be deleted.
    pub fn clear(&self) -> Result<u64, DataError> {
        let Ok(listing) = fs::read_dir(&self.root) else {
            return Ok(0);
        };
        let mut freed = 0;
        for item in listing.flatten() {
            let dir = item.path();
            let lock = File::options()
                .create(true)
                .append(true)
                .open(dir.join("lock"));
            if let Ok(lock) = &lock
                && lock.try_lock().is_err()
            {
                return Err(DataError::Cache {
                    path: dir,
                    reason: "another Spreadout process is filling it; try again when it is done"
                        .to_owned(),
                });
            }
            let size = disk_size(&dir);
            drop(lock);
            fs::remove_dir_all(&dir).map_err(|err| DataError::Cache {
                path: dir.clone(),
                reason: format!("cannot delete it: {err}"),
            })?;
            freed += size;
        }
        Ok(freed)
    }

    /// Embeddings kept by [`PixelCache::keep_embeddings`] under `key`, if they have `rows` rows
    /// of `dim` values.
    pub fn embeddings(&self, key: &str, rows: usize, dim: usize) -> Option<Vec<f32>> {
        let bytes = fs::read(self.embeddings_path(key)).ok()?;
        let (body, checksum) = bytes.split_at_checked(bytes.len().checked_sub(8)?)?;
        if xxhash_rust::xxh3::xxh3_64(body) != u64::from_le_bytes(checksum.try_into().ok()?) {
            return None;
        }
        let mut input = Reader(body.strip_prefix(EMBEDDINGS_MAGIC)?);
        if input.u64()? != rows as u64 || input.u64()? != dim as u64 {
            return None;
        }
        let values = input.take(rows * dim * 4)?;
        Some(
            values
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        )
    }

    /// Keeps `embeddings` (row-major, `dim` per row) under `key`, atomically.
    ///
    /// # Errors
    /// [`DataError::Cache`] when the file cannot be written.
    pub fn keep_embeddings(
        &self,
        key: &str,
        embeddings: &[f32],
        dim: usize,
    ) -> Result<(), DataError> {
        let mut out = Bytes(Vec::with_capacity(32 + embeddings.len() * 4));
        out.0.extend_from_slice(EMBEDDINGS_MAGIC);
        out.u64((embeddings.len() / dim.max(1)) as u64);
        out.u64(dim as u64);
        for value in embeddings {
            out.0.extend_from_slice(&value.to_le_bytes());
        }
        let checksum = xxhash_rust::xxh3::xxh3_64(&out.0);
        out.u64(checksum);
        let path = self.embeddings_path(key);
        crate::atomic_file::write(&path, &out.0).map_err(|err| DataError::Cache {
            path,
            reason: format!("cannot keep the embeddings: {err}"),
        })
    }

    fn embeddings_path(&self, key: &str) -> PathBuf {
        let digest = xxhash_rust::xxh3::xxh3_128(key.as_bytes());
        self.root
            .join("embeddings")
            .join(format!("{digest:032x}.bin"))
    }

    fn folder_dir(&self, folder: &Path, side: u32) -> Result<PathBuf, DataError> {
        let canonical = fs::canonicalize(folder).map_err(|source| DataError::Io {
            path: folder.to_path_buf(),
            source,
        })?;
        let digest = xxhash_rust::xxh3::xxh3_64(&crate::paths::os_bytes(canonical.as_os_str()));
        Ok(self.root.join(format!("{digest:016x}-{side}px")))
    }
}

/// How an entry's bytes encode its pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Raw,
    Jpeg,
}

/// Where one image's pixels are in a folder cache's data file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Location {
    encoding: Encoding,
    offset: u64,
    len: u32,
    width: u32,
    height: u32,
}

impl Location {
    /// Width and height of the cached image.
    pub(crate) fn dimensions(&self) -> (u32, u32) {
        (self.width, self.height)
    }
}

/// A folder cache's data file, open for reading.
#[derive(Debug)]
pub(crate) struct Store {
    file: File,
    path: PathBuf,
}

impl Store {
    /// The pixels at `location`.
    pub(crate) fn read(&self, location: &Location) -> Result<RgbImage, DataError> {
        let corrupt = |reason: String| DataError::Cache {
            path: self.path.clone(),
            reason,
        };
        let mut bytes = vec![0; location.len as usize];
        read_exact_at(&self.file, &mut bytes, location.offset)
            .map_err(|err| corrupt(format!("cannot read an entry: {err}")))?;
        let image = match location.encoding {
            Encoding::Raw => RgbImage::from_raw(location.width, location.height, bytes),
            Encoding::Jpeg => image::load_from_memory_with_format(&bytes, image::ImageFormat::Jpeg)
                .ok()
                .map(image::DynamicImage::into_rgb8),
        };
        image
            .filter(|image| image.dimensions() == location.dimensions())
            .ok_or_else(|| {
                corrupt("an entry does not decode; clear the cache to rebuild it".to_owned())
            })
    }
}

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(windows)]
fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    while !buf.is_empty() {
        match std::os::windows::fs::FileExt::seek_read(file, buf, offset)? {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            read => {
                buf = &mut buf[read..];
                offset += read as u64;
            }
        }
    }
    Ok(())
}

/// What the cache knows about one file.
#[derive(Debug, Clone)]
struct Record {
    relative: Vec<u8>,
    stamp: FileStamp,
    content: Content,
}

#[derive(Debug, Clone)]
enum Content {
    Image {
        location: Location,
        original: (u32, u32),
        totals: ChannelTotals,
    },
    Failed(String),
}

/// A cached image or the reason a file was skipped, per scan entry.
pub(crate) type EntryResult = Result<CachedImage, String>;

/// One usable image in the cache.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CachedImage {
    pub(crate) location: Location,
    pub(crate) totals: ChannelTotals,
}

/// The outcome of [`fill`]: the data file and, per scan entry, its image or why it was skipped.
pub(crate) struct Filled {
    pub(crate) store: Arc<Store>,
    pub(crate) results: Vec<EntryResult>,
    /// Entries that had to be decoded (the rest came from the cache).
    pub(crate) decoded: usize,
}

/// Brings the cache of `scan`'s folder at `side` up to date and opens it: files it knows with the
/// same size and modification time are reused, the others decoded in parallel. `progress(done,
/// total)` is called on this thread; `false` stops the fill, keeping what was cached so far.
pub(crate) fn fill(
    cache: &PixelCache,
    scan: &Scan,
    side: u32,
    progress: &(dyn Fn(usize, usize) -> bool + Sync),
) -> Result<Filled, DataError> {
    let dir = cache.folder_dir(&scan.root, side)?;
    let cache_error = |path: &Path| {
        let path = path.to_path_buf();
        move |err: std::io::Error| DataError::Cache {
            path,
            reason: format!(
                "{err}; pass another cache folder (--cache-dir) if this one cannot be written"
            ),
        }
    };
    fs::create_dir_all(&dir).map_err(cache_error(&dir))?;
    let lock_path = dir.join("lock");
    let lock = File::options()
        .create(true)
        .append(true)
        .open(&lock_path)
        .map_err(cache_error(&lock_path))?;
    if lock.try_lock().is_err() {
        tracing::info!(
            "waiting for another Spreadout process to finish filling {}",
            dir.display()
        );
        lock.lock().map_err(cache_error(&lock_path))?;
    }

    let index_path = dir.join("index");
    let mut index = match Index::read(&index_path) {
        Some(index) if index.side == side => index,
        // A fresh data file, never one an open image set may still be reading from.
        _ => Index {
            side,
            folder: scan.root.clone(),
            generation: next_generation(&dir),
            data_len: 0,
            records: Vec::new(),
        },
    };
    index.folder = scan.root.clone();
    remove_old_generations(&dir, index.generation);
    let data_path = dir.join(data_file_name(index.generation));
    let data = OpenOptions::new()
        .create(true)
        .read(true)
        .write(true)
        .truncate(false)
        .open(&data_path)
        .map_err(cache_error(&data_path))?;
    // Bytes past the index's end come from a fill that stopped before its next checkpoint.
    data.set_len(index.data_len)
        .map_err(cache_error(&data_path))?;

    let known_count = index.records.len();
    let known: HashMap<Vec<u8>, Record> = std::mem::take(&mut index.records)
        .into_iter()
        .map(|record| (record.relative.clone(), record))
        .collect();
    let total = scan.entries.len();
    let relative: Vec<Vec<u8>> = scan
        .entries
        .iter()
        .map(|entry| {
            let path = entry.path.strip_prefix(&scan.root).unwrap_or(&entry.path);
            crate::paths::os_bytes(path.as_os_str())
        })
        .collect();
    let mut records: Vec<Option<Record>> = vec![None; total];
    let mut misses = Vec::new();
    for (i, entry) in scan.entries.iter().enumerate() {
        match known.get(&relative[i]) {
            Some(record) if record.stamp == entry.stamp => records[i] = Some(record.clone()),
            _ => misses.push(i),
        }
    }
    drop(known);

    let hits = total - misses.len();
    let prior_records = known_count;
    let mut writer = DataWriter {
        file: BufWriter::new(data),
        len: index.data_len,
    };
    let mut done = hits;
    let mut last_checkpoint = Instant::now();
    let stop = AtomicBool::new(!progress(
        if misses.is_empty() { total } else { hits },
        total,
    ));
    let step = (total / 100).max(1);
    let write_result: Result<(), DataError> = std::thread::scope(|scope| {
        let (sender, receiver) = std::sync::mpsc::sync_channel(64);
        let stop = &stop;
        let misses = &misses;
        scope.spawn(move || {
            misses.par_iter().for_each_with(sender, |sender, &i| {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let _ = sender.send((i, encode(&scan.entries[i].path, side)));
            });
        });
        for (i, encoded) in receiver {
            let content = match encoded {
                Ok(encoded) => Content::Image {
                    location: writer.append(&encoded).map_err(cache_error(&data_path))?,
                    original: encoded.original,
                    totals: encoded.totals,
                },
                Err(reason) => Content::Failed(reason),
            };
            records[i] = Some(Record {
                relative: relative[i].clone(),
                stamp: scan.entries[i].stamp,
                content,
            });
            done += 1;
            if !stop.load(Ordering::Relaxed)
                && (done.is_multiple_of(step) || done == total)
                && !progress(done, total)
            {
                stop.store(true, Ordering::Relaxed);
            }
            if last_checkpoint.elapsed() > INDEX_CHECKPOINT {
                writer.sync().map_err(cache_error(&data_path))?;
                index.data_len = writer.len;
                index.records = records.iter().flatten().cloned().collect();
                index.write(&index_path)?;
                last_checkpoint = Instant::now();
            }
        }
        Ok(())
    });
    write_result?;
    let cancelled = stop.load(Ordering::Relaxed);
    writer.sync().map_err(cache_error(&data_path))?;
    index.data_len = writer.len;
    drop(writer);
    index.records = records.iter().flatten().cloned().collect();
    if !misses.is_empty() || index.records.len() != prior_records {
        index.write(&index_path)?;
    }
    if cancelled {
        return Err(DataError::Cancelled(scan.root.clone()));
    }
    // More garbage than images: copy the images into a fresh file (cheap next to decoding them).
    if index.dead_bytes() > index.live_bytes() {
        index.compact(&dir)?;
        index.write(&index_path)?;
        remove_old_generations(&dir, index.generation);
    }

    let data_path = dir.join(data_file_name(index.generation));
    let store = Store {
        file: File::open(&data_path).map_err(cache_error(&data_path))?,
        path: data_path,
    };
    let by_path: HashMap<&[u8], &Record> = index
        .records
        .iter()
        .map(|record| (record.relative.as_slice(), record))
        .collect();
    let results = relative
        .iter()
        .map(
            |key| match by_path.get(key.as_slice()).map(|record| &record.content) {
                Some(Content::Image {
                    location, totals, ..
                }) => Ok(CachedImage {
                    location: *location,
                    totals: *totals,
                }),
                Some(Content::Failed(reason)) => Err(reason.clone()),
                None => Err("it was not decoded (the cache fill stopped early)".to_owned()),
            },
        )
        .collect();
    drop(lock);
    Ok(Filled {
        store: Arc::new(store),
        results,
        decoded: misses.len(),
    })
}

/// One past the highest data file generation in `dir` (0 in an empty folder).
fn next_generation(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|item| {
            let name = item.file_name();
            name.to_str()?
                .strip_prefix("pixels-")?
                .strip_suffix(".bin")?
                .parse::<u64>()
                .ok()
        })
        .max()
        .map_or(0, |highest| highest + 1)
}

/// Bytes of the files at or below `path` (links not followed).
fn disk_size(path: &Path) -> u64 {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::read_dir(path)
            .map(|items| items.flatten().map(|item| disk_size(&item.path())).sum())
            .unwrap_or(0),
        Ok(meta) => meta.len(),
        Err(_) => 0,
    }
}

fn data_file_name(generation: u64) -> String {
    format!("pixels-{generation}.bin")
}

/// Deletes data files of earlier generations (on Windows one still open elsewhere stays until a
/// later fill).
fn remove_old_generations(dir: &Path, current: u64) {
    let Ok(listing) = fs::read_dir(dir) else {
        return;
    };
    for item in listing.flatten() {
        let name = item.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("pixels-") && name != data_file_name(current) {
            let _ = fs::remove_file(item.path());
        }
    }
}

/// One file decoded and encoded for the cache.
struct Encoded {
    bytes: Vec<u8>,
    encoding: Encoding,
    width: u32,
    height: u32,
    original: (u32, u32),
    totals: ChannelTotals,
}

fn encode(path: &Path, side: u32) -> Result<Encoded, String> {
    let decoded = decode(path, side)?;
    let image = decoded.image;
    let (width, height) = image.dimensions();
    let totals = ChannelTotals::of(std::slice::from_ref(&image));
    let (bytes, encoding) = if image.as_raw().len() <= RAW_MAX_BYTES {
        (image.into_raw(), Encoding::Raw)
    } else {
        let mut bytes = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, JPEG_QUALITY)
            .encode_image(&image)
            .map_err(|err| format!("cannot encode its cache entry: {err}"))?;
        (bytes, Encoding::Jpeg)
    };
    Ok(Encoded {
        bytes,
        encoding,
        width,
        height,
        original: decoded.original,
        totals,
    })
}

/// Appends entries to a data file.
struct DataWriter {
    file: BufWriter<File>,
    len: u64,
}

impl DataWriter {
    fn append(&mut self, encoded: &Encoded) -> std::io::Result<Location> {
        use std::io::Seek;
        if self.file.stream_position()? != self.len {
            self.file.seek(std::io::SeekFrom::Start(self.len))?;
        }
        self.file.write_all(&encoded.bytes)?;
        let location = Location {
            encoding: encoded.encoding,
            offset: self.len,
            len: u32::try_from(encoded.bytes.len()).map_err(std::io::Error::other)?,
            width: encoded.width,
            height: encoded.height,
        };
        self.len += encoded.bytes.len() as u64;
        Ok(location)
    }

    /// Makes everything appended durable, before an index may point at it.
    fn sync(&mut self) -> std::io::Result<()> {
        self.file.flush()?;
        self.file.get_ref().sync_data()
    }
}

/// A folder cache's index file.
#[derive(Debug)]
struct Index {
    side: u32,
    folder: PathBuf,
    generation: u64,
    data_len: u64,
    records: Vec<Record>,
}

impl Index {
    fn live_bytes(&self) -> u64 {
        self.records
            .iter()
            .map(|record| match &record.content {
                Content::Image { location, .. } => u64::from(location.len),
                Content::Failed(_) => 0,
            })
            .sum()
    }

    fn dead_bytes(&self) -> u64 {
        self.data_len - self.live_bytes()
    }

    /// Copies the live entries into the next generation's data file, in record order.
    fn compact(&mut self, dir: &Path) -> Result<(), DataError> {
        let old_path = dir.join(data_file_name(self.generation));
        let new_path = dir.join(data_file_name(self.generation + 1));
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |err: std::io::Error| DataError::Cache {
                path,
                reason: format!("cannot compact the cache: {err}"),
            }
        };
        let old = File::open(&old_path).map_err(io(&old_path))?;
        let mut writer = DataWriter {
            file: BufWriter::new(File::create(&new_path).map_err(io(&new_path))?),
            len: 0,
        };
        for record in &mut self.records {
            if let Content::Image { location, .. } = &mut record.content {
                let mut bytes = vec![0; location.len as usize];
                read_exact_at(&old, &mut bytes, location.offset).map_err(io(&old_path))?;
                location.offset = writer.len;
                writer.file.write_all(&bytes).map_err(io(&new_path))?;
                writer.len += bytes.len() as u64;
            }
        }
        writer.sync().map_err(io(&new_path))?;
        self.generation += 1;
        self.data_len = writer.len;
        Ok(())
    }

    fn write(&self, path: &Path) -> Result<(), DataError> {
        let mut out = Bytes(Vec::with_capacity(64 + self.records.len() * 96));
        out.0.extend_from_slice(INDEX_MAGIC);
        out.u32(self.side);
        out.u64(self.generation);
        out.u64(self.data_len);
        out.bytes(&crate::paths::os_bytes(self.folder.as_os_str()));
        out.u64(self.records.len() as u64);
        for record in &self.records {
            out.bytes(&record.relative);
            out.u64(record.stamp.size);
            out.0
                .extend_from_slice(&record.stamp.modified_ns.to_le_bytes());
            match &record.content {
                Content::Failed(reason) => {
                    out.0.push(0);
                    out.bytes(reason.as_bytes());
                }
                Content::Image {
                    location,
                    original,
                    totals,
                } => {
                    out.0.push(match location.encoding {
                        Encoding::Raw => 1,
                        Encoding::Jpeg => 2,
                    });
                    out.u64(location.offset);
                    out.u32(location.len);
                    out.u32(location.width);
                    out.u32(location.height);
                    out.u32(original.0);
                    out.u32(original.1);
                    for value in totals.sum.iter().chain(&totals.sum_of_squares) {
                        out.u64(*value);
                    }
                    out.u64(totals.pixels);
                }
            }
        }
        let checksum = xxhash_rust::xxh3::xxh3_64(&out.0);
        out.u64(checksum);
        crate::atomic_file::write(path, &out.0).map_err(|err| DataError::Cache {
            path: path.to_path_buf(),
            reason: format!("cannot write the cache index: {err}"),
        })
    }

    /// The index at `path`; `None` when missing, from another version, or damaged (the cache is
    /// then rebuilt, which costs time but never a wrong image).
    fn read(path: &Path) -> Option<Self> {
        let bytes = fs::read(path).ok()?;
        let (body, checksum) = bytes.split_at_checked(bytes.len().checked_sub(8)?)?;
        if xxhash_rust::xxh3::xxh3_64(body) != u64::from_le_bytes(checksum.try_into().ok()?) {
            tracing::warn!("{} is damaged; its folder is decoded again", path.display());
            return None;
        }
        let mut input = Reader(body.strip_prefix(INDEX_MAGIC)?);
        let side = input.u32()?;
        let generation = input.u64()?;
        let data_len = input.u64()?;
        let folder = crate::paths::from_os_bytes(input.bytes()?);
        let count = input.u64()?;
        let mut records = Vec::with_capacity(count.min(1 << 24) as usize);
        for _ in 0..count {
            let relative = input.bytes()?.to_vec();
            let size = input.u64()?;
            let modified_ns = i128::from_le_bytes(input.take(16)?.try_into().ok()?);
            let content = match input.take(1)?[0] {
                0 => Content::Failed(String::from_utf8_lossy(input.bytes()?).into_owned()),
                tag @ (1 | 2) => {
                    let location = Location {
                        encoding: if tag == 1 {
                            Encoding::Raw
                        } else {
                            Encoding::Jpeg
                        },
                        offset: input.u64()?,
                        len: input.u32()?,
                        width: input.u32()?,
                        height: input.u32()?,
                    };
                    let original = (input.u32()?, input.u32()?);
                    let mut totals = ChannelTotals::default();
                    for value in totals.sum.iter_mut().chain(&mut totals.sum_of_squares) {
                        *value = input.u64()?;
                    }
                    totals.pixels = input.u64()?;
                    if location.offset + u64::from(location.len) > data_len {
                        return None;
                    }
                    Content::Image {
                        location,
                        original,
                        totals,
                    }
                }
                _ => return None,
            };
            records.push(Record {
                relative,
                stamp: FileStamp { size, modified_ns },
                content,
            });
        }
        Some(Self {
            side,
            folder,
            generation,
            data_len,
            records,
        })
    }
}

/// Little-endian writing of the index.
struct Bytes(Vec<u8>);

impl Bytes {
    fn u32(&mut self, value: u32) {
        self.0.extend_from_slice(&value.to_le_bytes());
    }
    fn u64(&mut self, value: u64) {
        self.0.extend_from_slice(&value.to_le_bytes());
    }
    fn bytes(&mut self, value: &[u8]) {
        self.u32(u32::try_from(value.len()).expect("index fields are short"));
        self.0.extend_from_slice(value);
    }
}

/// Little-endian reading of the index; `None` when it ends early.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(len)?;
        self.0 = rest;
        Some(head)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = self.u32()? as usize;
        self.take(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{ImageSource, load, scan};

    fn photo(width: u32, height: u32, shade: u8) -> RgbImage {
        RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([shade, (x * 255 / width) as u8, (y * 255 / height) as u8])
        })
    }

    fn no_progress(_: usize, _: usize) -> bool {
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
        assert!(matches!(stopped, Err(DataError::Cancelled(_))));
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
