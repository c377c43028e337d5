//! Little-endian fields and a trailing xxh3 checksum: the framing the cache's two binary files
//! (a folder's index, kept embeddings) share. A file whose checksum does not match is treated as
//! absent, so damage costs recomputation, never a wrong answer.

/// Little-endian writing of a cache file.
pub(super) struct Bytes(pub(super) Vec<u8>);

impl Bytes {
    pub(super) fn u32(&mut self, value: u32) {
        self.0.extend_from_slice(&value.to_le_bytes());
    }
    pub(super) fn u64(&mut self, value: u64) {
        self.0.extend_from_slice(&value.to_le_bytes());
    }
    pub(super) fn bytes(&mut self, value: &[u8]) {
        self.u32(u32::try_from(value.len()).expect("index fields are short"));
        self.0.extend_from_slice(value);
    }

    /// What was written, followed by its checksum: the file's bytes.
    pub(super) fn with_checksum(mut self) -> Vec<u8> {
        let checksum = xxhash_rust::xxh3::xxh3_64(&self.0);
        self.u64(checksum);
        self.0
    }
}

/// The contents of a file [`Bytes::with_checksum`] wrote, without its checksum; `None` when it is
/// too short for one or the checksum does not match.
pub(super) fn checked(bytes: &[u8]) -> Option<&[u8]> {
    let (body, checksum) = bytes.split_at_checked(bytes.len().checked_sub(8)?)?;
    (xxhash_rust::xxh3::xxh3_64(body) == u64::from_le_bytes(checksum.try_into().ok()?))
        .then_some(body)
}

/// Little-endian reading of a cache file; `None` when it ends early.
pub(super) struct Reader<'a>(pub(super) &'a [u8]);

impl<'a> Reader<'a> {
    pub(super) fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(len)?;
        self.0 = rest;
        Some(head)
    }
    pub(super) fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    pub(super) fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    pub(super) fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = self.u32()? as usize;
        self.take(len)
    }
}
