//! Rows computed from a folder's pixels and kept beside the folder caches, so that they cost
//! nothing the second time: embeddings (embedding the same folder with the same model again,
//! [`crate::embed::embed_folder`], runs no forward pass) and perceptual hashes (the near-duplicate
//! finder's hash stage). A second cache, independent of the pixels: one file per kind and key (the
//! caller's, naming model or method and folder content) under `<cache root>/embeddings/`, written
//! atomically and checksummed; a damaged or mismatched file reads as absent.

use std::fs;
use std::path::PathBuf;

use super::PixelCache;
use super::binary::{Bytes, Reader, checked};
use crate::data::DataError;
use crate::phash::{COLOR_BYTES, ImageHash};

const EMBEDDINGS_MAGIC: &[u8; 8] = b"SPXCEMB1";
const HASHES_MAGIC: &[u8; 8] = b"SPXCHSH2";
/// How every kept file starts: clearing the cache deletes only files that do.
pub(super) const KEPT_MAGICS: [&[u8]; 2] = [EMBEDDINGS_MAGIC, HASHES_MAGIC];
/// The folder under the cache root holding the kept files.
pub(super) const KEPT_DIR: &str = "embeddings";
/// Bytes of one kept hash: the DCT bits, those of the mirror image, the colour signature.
const HASH_BYTES: usize = 16 + COLOR_BYTES;

impl PixelCache {
    /// Embeddings kept by [`PixelCache::keep_embeddings`] under `key`, if they have `rows` rows
    /// of `dim` values.
    pub fn embeddings(&self, key: &str, rows: usize, dim: usize) -> Option<Vec<f32>> {
        let values = self.kept_rows(EMBEDDINGS_MAGIC, key, rows, dim * 4)?;
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
        let values: Vec<u8> = embeddings.iter().flat_map(|v| v.to_le_bytes()).collect();
        let rows = embeddings.len() / dim.max(1);
        self.keep_rows(EMBEDDINGS_MAGIC, key, rows, dim * 4, &values, "embeddings")
    }

    /// Perceptual hashes kept by [`PixelCache::keep_hashes`] under `key`, if there are `rows`.
    pub fn hashes(&self, key: &str, rows: usize) -> Option<Vec<ImageHash>> {
        let values = self.kept_rows(HASHES_MAGIC, key, rows, HASH_BYTES)?;
        values
            .chunks_exact(HASH_BYTES)
            .map(|row| {
                let (dct, rest) = row.split_at(8);
                let (mirrored, color) = rest.split_at(8);
                Some(ImageHash {
                    dct: u64::from_le_bytes(dct.try_into().ok()?),
                    mirrored: u64::from_le_bytes(mirrored.try_into().ok()?),
                    color: color.try_into().ok()?,
                })
            })
            .collect()
    }

    /// Keeps `hashes` under `key`, atomically.
    ///
    /// # Errors
    /// [`DataError::Cache`] when the file cannot be written.
    pub fn keep_hashes(&self, key: &str, hashes: &[ImageHash]) -> Result<(), DataError> {
        let values: Vec<u8> = hashes
            .iter()
            .flat_map(|hash| {
                hash.dct
                    .to_le_bytes()
                    .into_iter()
                    .chain(hash.mirrored.to_le_bytes())
                    .chain(hash.color)
            })
            .collect();
        self.keep_rows(
            HASHES_MAGIC,
            key,
            hashes.len(),
            HASH_BYTES,
            &values,
            "hashes",
        )
    }

    /// The `rows × row_bytes` bytes of the file of kind `magic` kept under `key`, if it holds
    /// exactly that many.
    fn kept_rows(
        &self,
        magic: &[u8; 8],
        key: &str,
        rows: usize,
        row_bytes: usize,
    ) -> Option<Vec<u8>> {
        let bytes = fs::read(self.kept_path(key)).ok()?;
        let mut input = Reader(checked(&bytes)?.strip_prefix(magic)?);
        if input.u64()? != rows as u64 || input.u64()? != row_bytes as u64 {
            return None;
        }
        let values = input.take(rows * row_bytes)?;
        input.0.is_empty().then(|| values.to_vec())
    }

    fn keep_rows(
        &self,
        magic: &[u8; 8],
        key: &str,
        rows: usize,
        row_bytes: usize,
        values: &[u8],
        what: &str,
    ) -> Result<(), DataError> {
        let mut out = Bytes(Vec::with_capacity(32 + values.len()));
        out.0.extend_from_slice(magic);
        out.u64(rows as u64);
        out.u64(row_bytes as u64);
        out.0.extend_from_slice(values);
        let path = self.kept_path(key);
        crate::support::atomic_file::write(&path, &out.with_checksum()).map_err(|err| {
            DataError::Cache {
                path,
                reason: format!("cannot keep the {what}: {err}"),
            }
        })
    }

    fn kept_path(&self, key: &str) -> PathBuf {
        let digest = xxhash_rust::xxh3::xxh3_128(key.as_bytes());
        self.root.join(KEPT_DIR).join(format!("{digest:032x}.bin"))
    }
}

/// Whether `name` is one [`PixelCache::kept_path`] gives: `<32 hex digits>.bin`.
pub(super) fn is_kept_name(name: &str) -> bool {
    name.strip_suffix(".bin")
        .is_some_and(|digest| super::clear::is_digest(digest, 32))
}
