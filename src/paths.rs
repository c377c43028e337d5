//! File paths where they leave the process: as JSON (run folders, the app's IPC) and as bytes
//! (cache keys, fingerprints).
//!
//! serde's own `PathBuf` support fails on a name that is not valid UTF-8 (old Latin-1 archives,
//! Samba shares), and one such file among 100 000 must not stop a run. Paths are written as text,
//! lossily where they have to be (the bad bytes become U+FFFD), which is what any display of them
//! shows too; the process itself keeps using the exact `PathBuf` it scanned.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serializer};

/// `#[serde(with = "crate::paths")]` for a `PathBuf` field.
pub fn serialize<S: Serializer>(path: &Path, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&path.to_string_lossy())
}

/// Reads what [`serialize`] wrote.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<PathBuf, D::Error> {
    Ok(PathBuf::from(String::deserialize(deserializer)?))
}

/// `#[serde(with = "crate::paths::option")]` for an `Option<PathBuf>` field.
pub mod option {
    use super::*;

    /// Writes `None` as null and a path as [`super::serialize`] does.
    pub fn serialize<S: Serializer>(path: &Option<PathBuf>, serializer: S) -> Result<S::Ok, S::Error> {
        match path {
            Some(path) => super::serialize(path, serializer),
            None => serializer.serialize_none(),
        }
    }

    /// Reads what [`serialize`] wrote.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<PathBuf>, D::Error> {
        Ok(Option::<String>::deserialize(deserializer)?.map(PathBuf::from))
    }
}

/// `#[serde(with = "crate::paths::list")]` for a `Vec<PathBuf>` field.
pub mod list {
    use super::*;
    use serde::ser::SerializeSeq;

    /// Writes each path as [`super::serialize`] does.
    pub fn serialize<S: Serializer>(paths: &[PathBuf], serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(paths.len()))?;
        for path in paths {
            seq.serialize_element(&path.to_string_lossy())?;
        }
        seq.end()
    }

    /// Reads what [`serialize`] wrote.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<PathBuf>, D::Error> {
        Ok(Vec::<String>::deserialize(deserializer)?
            .into_iter()
            .map(PathBuf::from)
            .collect())
    }
}

/// The exact bytes of a path component or path, for keys and digests: the OS bytes on Unix, the
/// UTF-16 code units (little-endian) on Windows, so two names never share a key.
pub fn os_bytes(name: &OsStr) -> Vec<u8> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        name.as_bytes().to_vec()
    }
    #[cfg(windows)]
    {
        use std::os::windows::ffi::OsStrExt;
        name.encode_wide().flat_map(u16::to_le_bytes).collect()
    }
}

/// The inverse of [`os_bytes`].
pub fn from_os_bytes(bytes: &[u8]) -> PathBuf {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        PathBuf::from(OsStr::from_bytes(bytes))
    }
    #[cfg(windows)]
    {
        use std::os::windows::ffi::OsStringExt;
        let wide: Vec<u16> = bytes
            .chunks_exact(2)
            .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
            .collect();
        PathBuf::from(std::ffi::OsString::from_wide(&wide))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize)]
    struct Record {
        #[serde(with = "crate::paths")]
        path: PathBuf,
    }

    #[cfg(unix)]
    #[test]
    fn a_name_that_is_not_utf8_serialises_lossily_and_keys_exactly() {
        use std::os::unix::ffi::OsStrExt;
        let path = PathBuf::from(OsStr::from_bytes(b"photos/caf\xe9.jpg"));
        let json = serde_json::to_string(&Record { path: path.clone() }).unwrap();
        assert_eq!(json, "{\"path\":\"photos/caf\u{fffd}.jpg\"}");
        assert_eq!(from_os_bytes(&os_bytes(path.as_os_str())), path);
    }
}
