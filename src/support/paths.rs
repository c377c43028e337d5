//! File paths where they leave the process: as JSON (run folders, the app's IPC) and as bytes
//! (cache keys, fingerprints).
//!
//! serde's own `PathBuf` support fails on a name that is not valid UTF-8 (old Latin-1 archives,
//! Samba shares), and one such file among 100 000 must not stop a run. Paths are written as text
//! ([`to_text`]): each byte that is not UTF-8 becomes a private-use character (U+F780–U+F7FF, the
//! mapping Samba and macOS use for unrepresentable bytes), which displays as a placeholder and
//! converts back to the exact bytes ([`from_text`]), so a file the UI names (a thumbnail, a
//! preview) is the file that was scanned. Windows names are UTF-16 and may hold a lone surrogate
//! (a half of a pair, which no Unicode text can carry); each becomes a character of the
//! supplementary private-use area (U+F0000 + its offset from 0xD800) and converts back the same
//! way.
//!
//! The places themselves (the per-user cache folder, a folder's disk use) are in `places`.

mod places;

use std::borrow::Cow;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

pub use places::{default_cache_dir, default_data_dir, disk_use, private_data_dir};

/// Byte `b` (0x80–0xFF, never a whole UTF-8 character) is written as U+F700 + `b`.
#[cfg(unix)]
const ESCAPE_BASE: u32 = 0xF700;
/// The escaped range of a Unix name's stray bytes.
#[cfg(unix)]
const ESCAPED: std::ops::RangeInclusive<u32> = ESCAPE_BASE + 0x80..=ESCAPE_BASE + 0xFF;

/// A lone surrogate `u` (0xD800–0xDFFF) of a Windows name is written as U+F0000 + (`u` − 0xD800).
#[cfg(windows)]
const SURROGATE_BASE: u32 = 0xF0000;
#[cfg(windows)]
const ESCAPED: std::ops::RangeInclusive<u32> = SURROGATE_BASE..=SURROGATE_BASE + 0x7FF;

/// `path` as text: unchanged when it is Unicode, otherwise with each stray byte (Unix) or lone
/// surrogate (Windows) escaped as a private-use character.
pub fn to_text(path: &Path) -> Cow<'_, str> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let bytes = path.as_os_str().as_bytes();
        if let Ok(text) = std::str::from_utf8(bytes) {
            return Cow::Borrowed(text);
        }
        let mut text = String::with_capacity(bytes.len() + 8);
        for chunk in bytes.utf8_chunks() {
            text.push_str(chunk.valid());
            for &byte in chunk.invalid() {
                text.push(
                    char::from_u32(ESCAPE_BASE + u32::from(byte)).expect("a private-use character"),
                );
            }
        }
        Cow::Owned(text)
    }
    #[cfg(windows)]
    {
        use std::os::windows::ffi::OsStrExt;
        if let Some(text) = path.to_str() {
            return Cow::Borrowed(text);
        }
        let escape = |lone: std::char::DecodeUtf16Error| {
            let offset = u32::from(lone.unpaired_surrogate()) - 0xD800;
            char::from_u32(SURROGATE_BASE + offset).expect("a private-use character")
        };
        Cow::Owned(
            char::decode_utf16(path.as_os_str().encode_wide())
                .map(|unit| unit.unwrap_or_else(escape))
                .collect(),
        )
    }
}

/// The path [`to_text`] wrote (a plain path when it holds no escapes).
pub fn from_text(text: &str) -> PathBuf {
    let escaped = |c: char| ESCAPED.contains(&u32::from(c));
    #[cfg(unix)]
    if text.chars().any(escaped) {
        let mut bytes = Vec::with_capacity(text.len());
        for c in text.chars() {
            if escaped(c) {
                bytes.push((u32::from(c) - ESCAPE_BASE) as u8);
            } else {
                bytes.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
            }
        }
        return from_os_bytes(&bytes);
    }
    #[cfg(windows)]
    if text.chars().any(escaped) {
        use std::os::windows::ffi::OsStringExt;
        let mut wide = Vec::with_capacity(text.len());
        for c in text.chars() {
            if escaped(c) {
                wide.push((u32::from(c) - SURROGATE_BASE + 0xD800) as u16);
            } else {
                wide.extend_from_slice(c.encode_utf16(&mut [0; 2]));
            }
        }
        return PathBuf::from(std::ffi::OsString::from_wide(&wide));
    }
    PathBuf::from(text)
}

use serde::{Deserialize, Deserializer, Serializer};

/// `#[serde(with = "crate::support::paths")]` for a `PathBuf` field.
pub fn serialize<S: Serializer>(path: &Path, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&to_text(path))
}

/// Reads what [`serialize`] wrote.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<PathBuf, D::Error> {
    Ok(from_text(&String::deserialize(deserializer)?))
}

/// `#[serde(with = "crate::support::paths::option")]` for an `Option<PathBuf>` field.
pub mod option {
    use super::*;

    /// Writes `None` as null and a path as [`super::serialize`] does.
    pub fn serialize<S: Serializer>(
        path: &Option<PathBuf>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match path {
            Some(path) => super::serialize(path, serializer),
            None => serializer.serialize_none(),
        }
    }

    /// Reads what [`serialize`] wrote.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<PathBuf>, D::Error> {
        Ok(Option::<String>::deserialize(deserializer)?.map(|text| from_text(&text)))
    }
}

/// `#[serde(with = "crate::support::paths::list")]` for a `Vec<PathBuf>` field.
pub mod list {
    use super::*;
    use serde::ser::SerializeSeq;

    /// Writes each path as [`super::serialize`] does.
    pub fn serialize<S: Serializer>(paths: &[PathBuf], serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(paths.len()))?;
        for path in paths {
            seq.serialize_element(&to_text(path))?;
        }
        seq.end()
    }

    /// Reads what [`serialize`] wrote.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<PathBuf>, D::Error> {
        Ok(Vec::<String>::deserialize(deserializer)?
            .iter()
            .map(|text| from_text(text))
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

/// Where `path` really is (links and `..` resolved), or `path` itself when that cannot be told
/// (a file since removed): for asking whether two names are the same file.
pub fn real(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize)]
    struct Record {
        #[serde(with = "crate::support::paths")]
        path: PathBuf,
    }

    #[cfg(unix)]
    #[test]
    fn a_name_that_is_not_utf8_round_trips_exactly_through_text() {
        use std::os::unix::ffi::OsStrExt;
        let path = PathBuf::from(OsStr::from_bytes(b"photos/caf\xe9 \xff.jpg"));
        let json = serde_json::to_string(&Record { path: path.clone() }).unwrap();
        assert_eq!(json, "{\"path\":\"photos/caf\u{f7e9} \u{f7ff}.jpg\"}");
        let back: Record = serde_json::from_str(&json).unwrap();
        assert_eq!(back.path, path);
        assert_eq!(from_text(&to_text(&path)), path);
        assert_eq!(from_os_bytes(&os_bytes(path.as_os_str())), path);
        // Ordinary names are untouched.
        assert_eq!(to_text(Path::new("a/é.png")), "a/é.png");
        assert_eq!(from_text("a/é.png"), PathBuf::from("a/é.png"));
    }

    #[cfg(windows)]
    #[test]
    fn a_name_that_is_not_unicode_round_trips_exactly_through_text() {
        use std::os::windows::ffi::OsStringExt;
        // "café" with a lone high and a lone low surrogate, then a real pair (U+1F600).
        let wide = [0x63, 0x61, 0x66, 0xE9, 0xD800, 0x20, 0xDFFF, 0xD83D, 0xDE00];
        let name = std::ffi::OsString::from_wide(&wide);
        let path = Path::new("photos").join(&name);
        let json = serde_json::to_string(&Record { path: path.clone() }).unwrap();
        assert_eq!(
            json,
            "{\"path\":\"photos\\\\café\u{f0000} \u{f07ff}\u{1f600}\"}"
        );
        let back: Record = serde_json::from_str(&json).unwrap();
        assert_eq!(back.path, path);
        assert_eq!(from_os_bytes(&os_bytes(path.as_os_str())), path);
        assert_eq!(to_text(Path::new("a\\é.png")), "a\\é.png");
        assert_eq!(from_text("a\\é.png"), PathBuf::from("a\\é.png"));
    }
}
