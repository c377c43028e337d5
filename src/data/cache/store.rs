//! A folder cache's data file (`pixels-<generation>.bin`): entries appended one after another
//! and read back by position. Kept apart from the index so that reading, which every training
//! step does from many threads, needs nothing but an open file and a [`Location`].

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use image::RgbImage;

use super::fill::Encoded;
use crate::data::DataError;

/// How an entry's bytes encode its pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Encoding {
    Raw,
    Jpeg,
}

/// Where one image's pixels are in a folder cache's data file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Location {
    pub(super) encoding: Encoding,
    pub(super) offset: u64,
    pub(super) len: u32,
    pub(super) width: u32,
    pub(super) height: u32,
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
    pub(super) file: File,
    pub(super) path: PathBuf,
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

/// Reads `buf.len()` bytes at `offset` without moving a shared file position, so threads can
/// read one file at once.
#[cfg(unix)]
pub(super) fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(windows)]
pub(super) fn read_exact_at(
    file: &File,
    mut buf: &mut [u8],
    mut offset: u64,
) -> std::io::Result<()> {
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

/// Appends entries to a data file.
pub(super) struct DataWriter {
    pub(super) file: BufWriter<File>,
    /// Bytes in the file: where the next entry goes.
    pub(super) len: u64,
}

impl DataWriter {
    pub(super) fn append(&mut self, encoded: &Encoded) -> std::io::Result<Location> {
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
    pub(super) fn sync(&mut self) -> std::io::Result<()> {
        self.file.flush()?;
        self.file.get_ref().sync_data()
    }
}
