//! A folder cache's index file: what the cache knows about each file of the folder (its pixels,
//! or why it could not be decoded and by which version of the decoder), in a checksummed binary
//! format, and the generations of the data file it points into (a fresh generation when the old
//! one is damaged or mostly garbage, so an open image set never reads a file that is being
//! rewritten).

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::binary::{Bytes, Reader, checked};
use super::store::{DataWriter, Encoding, Location, read_exact_at};
use crate::augment::ChannelTotals;
use crate::data::DataError;
use crate::data::decode::DECODER_VERSION;
use crate::data::scan::FileStamp;

const INDEX_MAGIC: &[u8; 8] = b"SPXCIDX1";
/// Record tags: a failure as releases before decoder versions wrote it (read as version 0), a raw
/// or JPEG image, a failure with the decoder version that gave it. Only new tags were added, so
/// this release reads every index an earlier one wrote: their images are kept, their failures
/// tried again (an earlier release reading this one's index rebuilds the cache).
const FAILED_UNVERSIONED: u8 = 0;
const RAW: u8 = 1;
const JPEG: u8 = 2;
const FAILED: u8 = 3;

/// What the cache knows about one file.
#[derive(Debug, Clone)]
pub(super) struct Record {
    pub(super) relative: Vec<u8>,
    pub(super) stamp: FileStamp,
    pub(super) content: Content,
}

/// A file's pixels, or why it could not be decoded.
#[derive(Debug, Clone)]
pub(super) enum Content {
    Image {
        location: Location,
        original: (u32, u32),
        totals: ChannelTotals,
    },
    /// A verdict on the file's content by the decoder of version `decoder`
    /// ([`DECODER_VERSION`]).
    Failed { reason: String, decoder: u32 },
}

impl Content {
    /// A failure this release's decoder may not repeat, so the file is decoded again.
    pub(super) fn is_stale_failure(&self) -> bool {
        matches!(self, Self::Failed { decoder, .. } if *decoder != DECODER_VERSION)
    }
}

/// A folder cache's index file.
#[derive(Debug)]
pub(super) struct Index {
    pub(super) side: u32,
    pub(super) folder: PathBuf,
    pub(super) generation: u64,
    pub(super) data_len: u64,
    pub(super) records: Vec<Record>,
}

impl Index {
    pub(super) fn live_bytes(&self) -> u64 {
        self.records
            .iter()
            .map(|record| match &record.content {
                Content::Image { location, .. } => u64::from(location.len),
                Content::Failed { .. } => 0,
            })
            .sum()
    }

    pub(super) fn dead_bytes(&self) -> u64 {
        self.data_len - self.live_bytes()
    }

    /// Copies the live entries into the next generation's data file, in record order.
    pub(super) fn compact(&mut self, dir: &Path) -> Result<(), DataError> {
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

    pub(super) fn write(&self, path: &Path) -> Result<(), DataError> {
        let mut out = Bytes(Vec::with_capacity(64 + self.records.len() * 96));
        out.0.extend_from_slice(INDEX_MAGIC);
        out.u32(self.side);
        out.u64(self.generation);
        out.u64(self.data_len);
        out.bytes(&crate::support::paths::os_bytes(self.folder.as_os_str()));
        out.u64(self.records.len() as u64);
        for record in &self.records {
            out.bytes(&record.relative);
            out.u64(record.stamp.size);
            out.0
                .extend_from_slice(&record.stamp.modified_ns.to_le_bytes());
            match &record.content {
                Content::Failed { reason, decoder } => {
                    out.0.push(FAILED);
                    out.u32(*decoder);
                    out.bytes(reason.as_bytes());
                }
                Content::Image {
                    location,
                    original,
                    totals,
                } => {
                    out.0.push(match location.encoding {
                        Encoding::Raw => RAW,
                        Encoding::Jpeg => JPEG,
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
        crate::support::atomic_file::write(path, &out.with_checksum()).map_err(|err| {
            DataError::Cache {
                path: path.to_path_buf(),
                reason: format!("cannot write the cache index: {err}"),
            }
        })
    }

    /// The index at `path`; `None` when missing, from another version, damaged, or when its data
    /// file does not hold the bytes it counts (the cache is then rebuilt, which costs time but
    /// never a wrong image).
    pub(super) fn read(path: &Path) -> Option<Self> {
        let bytes = fs::read(path).ok()?;
        let Some(body) = checked(&bytes) else {
            tracing::warn!("{} is damaged; its folder is decoded again", path.display());
            return None;
        };
        let mut input = Reader(body.strip_prefix(INDEX_MAGIC)?);
        let side = input.u32()?;
        let generation = input.u64()?;
        let data_len = input.u64()?;
        let folder = crate::support::paths::from_os_bytes(input.bytes()?);
        let count = input.u64()?;
        // The count is read from disk before any record is: a damaged or hostile file could claim
        // 2^64 records and abort the process on allocation. Reserving at most 16 M (far above any
        // real folder) bounds that; a true count beyond it only grows the vector, and a false one
        // runs out of input and returns `None`.
        let mut records = Vec::with_capacity(count.min(1 << 24) as usize);
        for _ in 0..count {
            let relative = input.bytes()?.to_vec();
            let size = input.u64()?;
            let modified_ns = i128::from_le_bytes(input.take(16)?.try_into().ok()?);
            let content = match input.take(1)?[0] {
                tag @ (FAILED_UNVERSIONED | FAILED) => {
                    let decoder = if tag == FAILED { input.u32()? } else { 0 };
                    let reason = String::from_utf8_lossy(input.bytes()?).into_owned();
                    Content::Failed { reason, decoder }
                }
                tag @ (RAW | JPEG) => {
                    let location = Location {
                        encoding: if tag == RAW {
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
        // A missing or short data file (deleted to free space, restored from a partial backup)
        // would otherwise be zero-extended by the next fill and read back as black images.
        let data_path = path.with_file_name(data_file_name(generation));
        if !fs::metadata(&data_path).is_ok_and(|data| data.len() >= data_len) {
            tracing::warn!(
                "{} is missing or shorter than its index says; its folder is decoded again",
                data_path.display()
            );
            return None;
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

/// Whether `path` starts like an index file: how clearing the cache tells a folder cache from a
/// folder it must not touch (a damaged index still marks a cache).
pub(super) fn has_magic(path: &Path) -> bool {
    let mut start = [0; INDEX_MAGIC.len()];
    File::open(path).is_ok_and(|mut file| {
        std::io::Read::read_exact(&mut file, &mut start).is_ok() && &start == INDEX_MAGIC
    })
}

/// One past the highest data file generation in `dir` (0 in an empty folder).
pub(super) fn next_generation(dir: &Path) -> u64 {
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

pub(super) fn data_file_name(generation: u64) -> String {
    format!("pixels-{generation}.bin")
}

/// Deletes data files of earlier generations (on Windows one still open elsewhere stays until a
/// later fill).
pub(super) fn remove_old_generations(dir: &Path, current: u64) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_from_before_decoder_versions_keeps_its_images_and_retries_its_failures() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index");
        fs::write(dir.path().join(data_file_name(0)), [9; 12]).unwrap();
        // The layout those releases wrote: one failure (tag 0, no version), one 2×2 raw image.
        let mut out = Bytes(INDEX_MAGIC.to_vec());
        out.u32(48);
        out.u64(0);
        out.u64(12);
        out.bytes(b"/photos");
        out.u64(2);
        for (name, tag) in [
            (&b"renamed.jpg"[..], FAILED_UNVERSIONED),
            (b"read.png", RAW),
        ] {
            out.bytes(name);
            out.u64(100);
            out.0.extend_from_slice(&5i128.to_le_bytes());
            out.0.push(tag);
            if tag == FAILED_UNVERSIONED {
                out.bytes(b"unsupported image format");
            } else {
                out.u64(0);
                for value in [12, 2, 2, 2, 2] {
                    out.u32(value);
                }
                for value in [1, 2, 3, 4, 5, 6, 4] {
                    out.u64(value);
                }
            }
        }
        fs::write(&path, out.with_checksum()).unwrap();

        for round in ["as written then", "as this release writes it back"] {
            let index = Index::read(&path).expect("an old index is read, not rebuilt");
            let [failed, image] = &index.records[..] else {
                panic!("{round}: {:?}", index.records)
            };
            assert!(
                matches!(&failed.content, Content::Failed { reason, decoder: 0 } if reason == "unsupported image format"),
                "{round}: {failed:?}"
            );
            assert!(failed.content.is_stale_failure(), "{round}");
            assert!(
                matches!(image.content, Content::Image { location, totals, .. } if location.len == 12 && totals.pixels == 4),
                "{round}: {image:?}"
            );
            assert!(!image.content.is_stale_failure());
            index.write(&path).unwrap();
        }
    }
}
