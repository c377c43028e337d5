//! Embeddings kept beside the folder caches, so that embedding the same folder with the same model
//! again ([`crate::embed::embed_folder`]) costs no forward pass. A second cache, independent of
//! the pixels: one file per key (the caller's, naming model and folder content) under
//! `<cache root>/embeddings/`, written atomically and checksummed; a damaged or mismatched file
//! reads as absent.

use std::fs;
use std::path::PathBuf;

use super::PixelCache;
use super::binary::{Bytes, Reader, checked};
use crate::data::DataError;

const EMBEDDINGS_MAGIC: &[u8; 8] = b"SPXCEMB1";

impl PixelCache {
    /// Embeddings kept by [`PixelCache::keep_embeddings`] under `key`, if they have `rows` rows
    /// of `dim` values.
    pub fn embeddings(&self, key: &str, rows: usize, dim: usize) -> Option<Vec<f32>> {
        let bytes = fs::read(self.embeddings_path(key)).ok()?;
        let mut input = Reader(checked(&bytes)?.strip_prefix(EMBEDDINGS_MAGIC)?);
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
        let path = self.embeddings_path(key);
        crate::atomic_file::write(&path, &out.with_checksum()).map_err(|err| DataError::Cache {
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
}
