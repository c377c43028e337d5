//! Filling a folder cache: one process at a time (a lock file), the files the index does not know
//! or that changed decoded in parallel, appended to the data file on this thread, and the index
//! written at checkpoints so an interrupted fill keeps its work.
//!
//! A file that cannot be decoded is recorded only when that is a verdict on its content, with the
//! decoder's version ([`DECODER_VERSION`]): a failure recorded by another version is tried again
//! (a newer release may read what an older one refused), and a file that could not be read at all
//! (no permission, an I/O error on a network share) is not recorded, so the next fill tries it
//! again however long its size and modification time stay the same.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::BufWriter;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rayon::prelude::*;

use super::PixelCache;
use super::index::{
    Content, Index, Record, data_file_name, next_generation, remove_old_generations,
};
use super::store::{DataWriter, Encoding, Location, Store};
use crate::augment::ChannelTotals;
use crate::data::DataError;
use crate::data::decode::{DECODER_VERSION, decode};
use crate::data::scan::Scan;

/// Images whose raw pixels take at most this are stored raw (CIFAR's 32 px: 3 KiB).
const RAW_MAX_BYTES: usize = 64 * 1024;
/// JPEG quality of re-encoded entries: differences from the raw pixels stay around one level.
const JPEG_QUALITY: u8 = 95;
/// How often a long fill writes its index, so an interruption loses at most this much work.
const INDEX_CHECKPOINT: Duration = Duration::from_secs(20);
/// How often a fill waiting for another one's lock asks its caller whether to go on waiting.
const LOCK_POLL: Duration = Duration::from_millis(100);

/// A cached image or the reason a file was skipped, per scan entry.
pub(crate) type EntryResult = Result<CachedImage, String>;

/// One usable image in the cache.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CachedImage {
    pub(crate) location: Location,
    pub(crate) totals: ChannelTotals,
    /// Width and height of the file's own (upright) image.
    pub(crate) original: (u32, u32),
}

/// The outcome of [`fill`]: the data file and, per scan entry, its image or why it was skipped.
pub(crate) struct Filled {
    pub(crate) store: Arc<Store>,
    pub(crate) results: Vec<EntryResult>,
    /// Entries that had to be decoded (the rest came from the cache).
    pub(crate) decoded: usize,
    /// Of those, entries the cache had recorded as failed by an older decoder.
    pub(crate) retried: usize,
}

/// Brings the cache of `scan`'s folder at `side` up to date and opens it: files it knows with the
/// same size and modification time are reused (save failures an older decoder recorded), the
/// others decoded in parallel. `progress(done, total)` is called on this thread; `false` stops
/// the fill, keeping what was cached so far.
pub(crate) fn fill(
    cache: &PixelCache,
    scan: &Scan,
    side: u32,
    progress: &(dyn Fn(usize, usize) -> bool + Sync),
) -> Result<Filled, DataError> {
    let dir = cache.folder_dir(&scan.root, side)?;
    let total = scan.entries.len();
    let lock = lock_folder(&dir, scan, total, progress)?;

    let index_path = dir.join("index");
    let mut index = current_index(&dir, &index_path, scan, side);
    let data_path = dir.join(data_file_name(index.generation));
    let writer = open_data(&data_path, index.data_len)?;

    let prior_records = index.records.len();
    let mut triage = Triage::of(scan, std::mem::take(&mut index.records));
    let folder = FolderFill {
        scan,
        side,
        index_path: &index_path,
        data_path: &data_path,
        progress,
    };
    let canceled = folder.decode(&mut triage, &mut index, writer)?;
    index.records = triage.records.iter().flatten().cloned().collect();
    if !triage.misses.is_empty() || index.records.len() != prior_records {
        index.write(&index_path)?;
    }
    if canceled {
        return Err(DataError::Canceled(scan.root.clone()));
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
    let results = entry_results(&index, &triage.relative, triage.unreadable);
    drop(lock);
    Ok(Filled {
        store: Arc::new(store),
        results,
        decoded: triage.misses.len(),
        retried: triage.retried,
    })
}

/// The folder's index at `side` as the cache holds it, or a fresh one, with the data files of
/// its other generations removed.
fn current_index(dir: &Path, index_path: &Path, scan: &Scan, side: u32) -> Index {
    let mut index = match Index::read(index_path) {
        Some(index) if index.side == side => index,
        // A fresh data file, never one an open image set may still be reading from.
        _ => Index {
            side,
            folder: scan.root.clone(),
            generation: next_generation(dir),
            data_len: 0,
            records: Vec::new(),
        },
    };
    index.folder = scan.root.clone();
    remove_old_generations(dir, index.generation);
    index
}

/// The data file at `path`, opened to append after the `len` bytes its index covers.
fn open_data(path: &Path, len: u64) -> Result<DataWriter, DataError> {
    let data = OpenOptions::new()
        .create(true)
        .read(true)
        .write(true)
        .truncate(false)
        .open(path)
        .map_err(cache_error(path))?;
    // Bytes past the index's end come from a fill that stopped before its next checkpoint.
    data.set_len(len).map_err(cache_error(path))?;
    Ok(DataWriter {
        file: BufWriter::new(data),
        len,
    })
}

/// A scan's entries sorted by what the cache knows of them: the records still good, and the
/// entries to decode.
struct Triage {
    /// Each entry's path relative to the folder, the key the index records it under.
    relative: Vec<Vec<u8>>,
    /// Each entry's record, once known good or decoded (none for a file that could not be read).
    records: Vec<Option<Record>>,
    /// Entries to decode: new, changed, or failed under an older decoder.
    misses: Vec<usize>,
    /// Of those, entries the cache had recorded as failed by an older decoder.
    retried: usize,
    /// Why each file that could not be read was skipped: reported, never recorded.
    unreadable: HashMap<usize, String>,
}

impl Triage {
    /// `scan`'s entries against the records the cache had: one with the same size and
    /// modification time keeps its record, unless that is a failure an older decoder recorded.
    fn of(scan: &Scan, known: Vec<Record>) -> Self {
        let known: HashMap<Vec<u8>, Record> = known
            .into_iter()
            .map(|record| (record.relative.clone(), record))
            .collect();
        let relative: Vec<Vec<u8>> = scan
            .entries
            .iter()
            .map(|entry| {
                let path = entry.path.strip_prefix(&scan.root).unwrap_or(&entry.path);
                crate::support::paths::os_bytes(path.as_os_str())
            })
            .collect();
        let mut records: Vec<Option<Record>> = vec![None; scan.entries.len()];
        let mut misses = Vec::new();
        let mut retried = 0;
        for (i, entry) in scan.entries.iter().enumerate() {
            match known
                .get(&relative[i])
                .filter(|record| record.stamp == entry.stamp)
            {
                Some(record) if record.content.is_stale_failure() => {
                    retried += 1;
                    misses.push(i);
                }
                Some(record) => records[i] = Some(record.clone()),
                None => misses.push(i),
            }
        }
        Self {
            relative,
            records,
            misses,
            retried,
            unreadable: HashMap::new(),
        }
    }
}

/// What the decoding of a fill's misses works with: the folder's scan, the cache's files and the
/// caller's progress.
struct FolderFill<'a> {
    scan: &'a Scan,
    side: u32,
    index_path: &'a Path,
    data_path: &'a Path,
    progress: &'a (dyn Fn(usize, usize) -> bool + Sync),
}

impl FolderFill<'_> {
    /// Decodes `triage`'s misses in parallel and, on this thread as each comes, appends it to the
    /// data file with `writer` and records it in `triage`, reporting progress and writing `index`
    /// every [`INDEX_CHECKPOINT`] so an interruption keeps the work. Whether the caller stopped
    /// the fill.
    fn decode(
        &self,
        triage: &mut Triage,
        index: &mut Index,
        mut writer: DataWriter,
    ) -> Result<bool, DataError> {
        let total = self.scan.entries.len();
        let hits = total - triage.misses.len();
        let mut done = hits;
        let mut last_checkpoint = Instant::now();
        let stop = AtomicBool::new(!(self.progress)(
            if triage.misses.is_empty() {
                total
            } else {
                hits
            },
            total,
        ));
        let step = (total / 100).max(1);
        decode_into(
            &triage.misses,
            &stop,
            |i| encode(&self.scan.entries[i].path, self.side),
            |i, encoded| {
                let content = match encoded {
                    Ok(encoded) => Some(Content::Image {
                        location: writer
                            .append(&encoded)
                            .map_err(cache_error(self.data_path))?,
                        original: encoded.original,
                        totals: encoded.totals,
                    }),
                    Err(Failure::Verdict(reason)) => Some(Content::Failed {
                        reason,
                        decoder: DECODER_VERSION,
                    }),
                    Err(Failure::Unreadable(reason)) => {
                        triage.unreadable.insert(i, reason);
                        None
                    }
                };
                triage.records[i] = content.map(|content| Record {
                    relative: triage.relative[i].clone(),
                    stamp: self.scan.entries[i].stamp,
                    content,
                });
                done += 1;
                if !stop.load(Ordering::Relaxed)
                    && (done.is_multiple_of(step) || done == total)
                    && !(self.progress)(done, total)
                {
                    stop.store(true, Ordering::Relaxed);
                }
                if last_checkpoint.elapsed() > INDEX_CHECKPOINT {
                    writer.sync().map_err(cache_error(self.data_path))?;
                    index.data_len = writer.len;
                    index.records = triage.records.iter().flatten().cloned().collect();
                    index.write(self.index_path)?;
                    last_checkpoint = Instant::now();
                }
                Ok(())
            },
        )?;
        let canceled = stop.load(Ordering::Relaxed);
        writer.sync().map_err(cache_error(self.data_path))?;
        index.data_len = writer.len;
        Ok(canceled)
    }
}

/// Each scan entry's image in the cache, or why it has none: the reason recorded, the read
/// error, or that the fill stopped before reaching it.
fn entry_results(
    index: &Index,
    relative: &[Vec<u8>],
    mut unreadable: HashMap<usize, String>,
) -> Vec<EntryResult> {
    let by_path: HashMap<&[u8], &Record> = index
        .records
        .iter()
        .map(|record| (record.relative.as_slice(), record))
        .collect();
    relative
        .iter()
        .enumerate()
        .map(
            |(i, key)| match by_path.get(key.as_slice()).map(|record| &record.content) {
                Some(Content::Image {
                    location,
                    totals,
                    original,
                }) => Ok(CachedImage {
                    location: *location,
                    totals: *totals,
                    original: *original,
                }),
                Some(Content::Failed { reason, .. }) => Err(reason.clone()),
                None => Err(unreadable.remove(&i).unwrap_or_else(|| {
                    "it was not decoded (the cache fill stopped early)".to_owned()
                })),
            },
        )
        .collect()
}

/// An I/O error on `path` (each shell adds how to choose another cache folder).
fn cache_error(path: &Path) -> impl FnOnce(std::io::Error) -> DataError {
    let path = path.to_path_buf();
    move |err| DataError::Cache {
        path,
        reason: err.to_string(),
    }
}

/// What a fill's `progress` hears as `done` while it waits for another fill of the same folder:
/// no count moves then, and a shell says why (a busy lock looks like a hang otherwise).
pub const WAITING: usize = usize::MAX;

/// Takes `dir`'s lock (creating the folder), waiting while another fill holds it. The wait polls,
/// so that `progress` (called with nothing done) can cancel it, and it is announced, so a person
/// knows why nothing moves.
fn lock_folder(
    dir: &Path,
    scan: &Scan,
    total: usize,
    progress: &(dyn Fn(usize, usize) -> bool + Sync),
) -> Result<File, DataError> {
    let lock_path = dir.join("lock");
    let mut announced = false;
    loop {
        fs::create_dir_all(dir).map_err(cache_error(dir))?;
        let lock = File::options()
            .create(true)
            .append(true)
            .open(&lock_path)
            .map_err(cache_error(&lock_path))?;
        match lock.try_lock() {
            Ok(()) if lock_path.exists() => return Ok(lock),
            // A cache clear deleted the folder while this waited: lock the one made anew.
            Ok(()) => continue,
            Err(std::fs::TryLockError::WouldBlock) => {}
            Err(std::fs::TryLockError::Error(err)) => return Err(cache_error(&lock_path)(err)),
        }
        if !announced {
            tracing::warn!(
                "waiting for another fill of this folder ({}) to finish",
                scan.root.display()
            );
            announced = true;
        }
        if !progress(WAITING, total) {
            return Err(DataError::Canceled(scan.root.clone()));
        }
        std::thread::sleep(LOCK_POLL);
    }
}

/// Runs `encode` on every miss in parallel and hands each result to `consume` on this thread, as
/// they come. No new miss is started once `stop` is set or `consume` fails (its error is
/// returned): a fill that cannot write would otherwise decode the rest of the folder, minutes to
/// hours, before saying so.
fn decode_into<T: Send, E>(
    misses: &[usize],
    stop: &AtomicBool,
    encode: impl Fn(usize) -> T + Sync,
    mut consume: impl FnMut(usize, T) -> Result<(), E>,
) -> Result<(), E> {
    std::thread::scope(|scope| {
        let (sender, receiver) = std::sync::mpsc::sync_channel(64);
        let encode = &encode;
        scope.spawn(move || {
            misses.par_iter().for_each_with(sender, |sender, &i| {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                if sender.send((i, encode(i))).is_err() {
                    stop.store(true, Ordering::Relaxed);
                }
            });
        });
        let consumed = receiver
            .into_iter()
            .try_for_each(|(i, item)| consume(i, item));
        if consumed.is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        consumed
    })
}

/// One file decoded and encoded for the cache.
pub(super) struct Encoded {
    pub(super) bytes: Vec<u8>,
    pub(super) encoding: Encoding,
    pub(super) width: u32,
    pub(super) height: u32,
    pub(super) original: (u32, u32),
    pub(super) totals: ChannelTotals,
}

/// Why a file has no image in the cache.
enum Failure {
    /// A verdict on the file's content: recorded, and repeated while the file and the decoder stay
    /// the same.
    Verdict(String),
    /// The file could not be read now: reported, and tried again by the next fill.
    Unreadable(String),
}

fn encode(path: &Path, side: u32) -> Result<Encoded, Failure> {
    let decoded = decode(path, side).map_err(|reason| judge(path, reason))?;
    let image = decoded.image;
    let (width, height) = image.dimensions();
    let totals = ChannelTotals::of(std::slice::from_ref(&image));
    let (bytes, encoding) = if image.as_raw().len() <= RAW_MAX_BYTES {
        (image.into_raw(), Encoding::Raw)
    } else {
        let mut bytes = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, JPEG_QUALITY)
            .encode_image(&image)
            .map_err(|err| Failure::Verdict(format!("cannot encode its cache entry: {err}")))?;
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

/// Whether the decoder's `reason` for refusing `path` is a verdict on its content. The reason is
/// words, so the file is read once more, whole: a verdict if that succeeds, a failure that may
/// pass (permission denied, an I/O error) if it fails too. This costs a read of the files that
/// fail, once each, since verdicts are then recorded.
fn judge(path: &Path, reason: String) -> Failure {
    let read = File::open(path).and_then(|mut file| std::io::copy(&mut file, &mut std::io::sink()));
    match read {
        Ok(_) => Failure::Verdict(reason),
        Err(_) => Failure::Unreadable(reason),
    }
}

#[cfg(test)]
mod tests {
    use super::super::cached_side;
    use super::super::tests::{no_progress, photo};
    use super::*;
    use crate::data::{load, scan};
    use crate::support::paths::os_bytes;
    use std::sync::atomic::AtomicUsize;

    /// The files `set` skipped.
    fn skipped(set: &crate::data::ImageSet) -> Vec<&Path> {
        set.skipped.iter().map(|file| file.path.as_path()).collect()
    }

    #[test]
    fn a_failure_an_older_decoder_recorded_is_tried_again_and_the_rest_kept() {
        let photos = tempfile::tempdir().unwrap();
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = PixelCache::at(cache_dir.path());
        for name in ["a", "b", "c"] {
            photo(8, 8, 40)
                .save(photos.path().join(format!("{name}.png")))
                .unwrap();
        }
        load(&scan(photos.path()).unwrap(), &cache, 8, &no_progress).unwrap();
        // As a release before this decoder would have left it: `c.png` refused, and a failure of
        // this decoder's (`d.png`, a verdict that stands).
        std::fs::write(photos.path().join("d.png"), b"not a png").unwrap();
        load(&scan(photos.path()).unwrap(), &cache, 8, &no_progress).unwrap();
        let index_path = cache
            .folder_dir(photos.path(), cached_side(8))
            .unwrap()
            .join("index");
        let mut index = Index::read(&index_path).unwrap();
        let refused = index
            .records
            .iter_mut()
            .find(|record| record.relative == os_bytes("c.png".as_ref()))
            .unwrap();
        refused.content = Content::Failed {
            reason: "an older release could not read it".to_owned(),
            decoder: 0,
        };
        index.write(&index_path).unwrap();

        let set = load(&scan(photos.path()).unwrap(), &cache, 8, &no_progress).unwrap();
        assert_eq!((set.decoded, set.retried), (1, 1), "only c.png was decoded");
        assert_eq!(set.len(), 3);
        let broken = photos.path().join("d.png");
        assert_eq!(skipped(&set), [&broken]);
        let again = load(&scan(photos.path()).unwrap(), &cache, 8, &no_progress).unwrap();
        assert_eq!((again.decoded, again.retried), (0, 0));
        assert_eq!(skipped(&again), [&broken]);
    }

    #[cfg(unix)]
    #[test]
    fn a_file_that_could_not_be_read_is_read_once_it_can_be() {
        use std::os::unix::fs::PermissionsExt;
        let photos = tempfile::tempdir().unwrap();
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = PixelCache::at(cache_dir.path());
        for name in ["a", "b", "locked"] {
            photo(8, 8, 90)
                .save(photos.path().join(format!("{name}.png")))
                .unwrap();
        }
        let locked = photos.path().join("locked.png");
        let permissions = |mode| {
            std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        permissions(0o000);
        if File::open(&locked).is_ok() {
            // Running as root, whom permissions do not stop: nothing to test, and said so.
            permissions(0o644);
            return crate::skip::because("running as root: file permissions do not stop root");
        }
        let listed = scan(photos.path()).unwrap();
        let denied = load(&listed, &cache, 8, &no_progress).unwrap();
        permissions(0o644);
        assert_eq!(skipped(&denied), [&locked]);
        assert!(
            denied.skipped[0].reason.contains("ermission denied"),
            "{}",
            denied.skipped[0].reason
        );

        let relisted = scan(photos.path()).unwrap();
        let stamps = |scan: &Scan| {
            scan.entries
                .iter()
                .map(|entry| entry.stamp)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            stamps(&relisted),
            stamps(&listed),
            "chmod changed no size or modification time"
        );
        let readable = load(&relisted, &cache, 8, &no_progress).unwrap();
        assert!(readable.skipped.is_empty(), "{:?}", readable.skipped);
        assert_eq!((readable.len(), readable.decoded), (3, 1));
    }

    #[test]
    fn a_write_error_stops_the_decoding() {
        let misses: Vec<usize> = (0..100_000).collect();
        let encoded = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let result = decode_into(
            &misses,
            &stop,
            |i| {
                encoded.fetch_add(1, Ordering::Relaxed);
                i
            },
            |_, _| Err("the disk is full"),
        );
        assert_eq!(result, Err("the disk is full"));
        // What was already in flight: the channel's 64 and one per worker, not the folder.
        let encoded = encoded.load(Ordering::Relaxed);
        assert!(encoded < 1_000, "{encoded} misses decoded after the error");
    }
}
