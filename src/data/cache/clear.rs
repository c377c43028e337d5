//! Clearing the cache: deleting what Spreadout wrote under the cache root, and nothing else.
//!
//! The root may be a folder the person also uses (`--cache-dir`, `SPREADOUT_CACHE_DIR`), so no
//! entry is recognised by its folder's name alone: each is recognised by what the cache itself
//! writes.
//! - A folder cache by its `index` file's magic. Everything in such a folder is the cache's (its
//!   name, index, lock and data files are written by nothing else), so it goes whole, under its
//!   lock, so that no fill writes into it meanwhile.
//! - In `embeddings/`, the files [`PixelCache::keep_embeddings`] and [`PixelCache::keep_hashes`]
//!   write: named `<32 hex digits>.bin` and starting with one of their magics.
//! - In `thumbnails/`, the files the app's thumbnail service writes (`src-tauri/src/thumbnails.rs`):
//!   `<2 hex digits>/<32 hex digits>.jpg`, the name starting with its folder's, starting like a
//!   JPEG.
//! - Beside those files, the temporaries [`crate::support::atomic_file`] names `.<file>.<random>.partial`,
//!   which an interrupted write leaves, once untouched for an hour (a younger one may still be
//!   being written).
//!
//! The thumbnails' subfolders are then removed when empty (so named, they are the app's), and
//! `embeddings/` and `thumbnails/` where that emptied them. Anything else in them, and a folder of
//! those names that held nothing of the cache's (a person's own `thumbnails`, photos and all, or
//! empty), stays; no link is followed or removed: the cache makes none.
//!
//! No marker file is needed: caches written by earlier releases, which wrote none, are recognised
//! exactly as this one's, and a marker would not make a folder's other files the cache's.

use std::fs::{self, DirEntry, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{PixelCache, embeddings, index};
use crate::data::DataError;
use crate::support::paths::disk_use;

/// The folder under the cache root where the app keeps its thumbnails.
const THUMBNAILS_DIR: &str = "thumbnails";
/// How every JPEG starts: the start-of-image marker, then another marker.
const JPEG_START: &[u8] = &[0xFF, 0xD8, 0xFF];
/// Age past which an atomic write's temporary is one a crash left: a write takes seconds.
const STALE_TEMPORARY: Duration = Duration::from_secs(60 * 60);

impl PixelCache {
    /// Deletes what Spreadout keeps under the root: every folder cache no process is filling, the
    /// kept embeddings and hashes, and the app's thumbnails, each recognised by its own names and
    /// content (see the module's documentation); anything else there is left alone, since the
    /// root may be a folder the person also uses. Returns the bytes freed.
    ///
    /// # Errors
    /// [`DataError::CacheLeft`] naming the entries that were left (being filled, or refusing to
    /// be deleted), after everything else was deleted.
    pub fn clear(&self) -> Result<u64, DataError> {
        let Ok(listing) = fs::read_dir(&self.root) else {
            return Ok(0);
        };
        let mut clearing = Clearing::default();
        for item in listing.flatten() {
            // Not followed: a link is never Spreadout's, and what it points to is not ours to delete.
            if !item.file_type().is_ok_and(|kind| kind.is_dir()) {
                continue;
            }
            let dir = item.path();
            let name = item.file_name();
            if name == embeddings::KEPT_DIR {
                if clearing.own_files(&dir, embeddings::is_kept_name, &embeddings::KEPT_MAGICS) {
                    remove_if_empty(&dir);
                }
            } else if name == THUMBNAILS_DIR {
                clearing.thumbnails(&dir);
            } else if index::has_magic(&dir.join("index")) {
                clearing.folder_cache(dir);
            }
        }
        if clearing.left.is_empty() {
            Ok(clearing.freed)
        } else {
            Err(DataError::CacheLeft {
                freed: clearing.freed,
                left: clearing.left,
            })
        }
    }
}

/// What a clear has freed so far, and what it had to leave.
#[derive(Default)]
struct Clearing {
    freed: u64,
    left: Vec<(PathBuf, String)>,
}

impl Clearing {
    /// Deletes a folder cache whole, unless a fill holds its lock.
    fn folder_cache(&mut self, dir: PathBuf) {
        let lock = match File::options()
            .create(true)
            .append(true)
            .open(dir.join("lock"))
        {
            Ok(lock) => lock,
            Err(err) => return self.left.push((dir, format!("cannot lock it: {err}"))),
        };
        if lock.try_lock().is_err() {
            return self.left.push((
                dir,
                "a fill of this folder is running (in this window, another one or a command); try again when it is done"
                    .to_owned(),
            ));
        }
        // The lock is held until the folder is gone, so no fill starts writing into it in between.
        let size = disk_use(&dir);
        let removed = match fs::remove_dir_all(&dir) {
            // Where deleting an open file only marks it for deletion (Windows on FAT, exFAT and
            // network drives; Wine), the lock's own file holds the folder until its handle
            // closes: close it, and remove what is left.
            Err(err) if err.kind() == std::io::ErrorKind::DirectoryNotEmpty => {
                drop(lock);
                fs::remove_dir_all(&dir)
            }
            other => other,
        };
        match removed {
            Ok(()) => self.freed += size,
            Err(err) => self.left.push((dir, format!("cannot delete it: {err}"))),
        }
    }

    /// Deletes the app's thumbnails: in each subfolder named by two hex digits, the JPEGs named by
    /// a digest starting with those digits; then `dir`, if that emptied it.
    fn thumbnails(&mut self, dir: &Path) {
        let mut removed = false;
        for item in read_dir(dir) {
            let name = item.file_name();
            let Some(prefix) = name.to_str().filter(|name| is_digest(name, 2)) else {
                continue;
            };
            if item.file_type().is_ok_and(|kind| kind.is_dir()) {
                let is_thumbnail = |file: &str| {
                    file.strip_suffix(".jpg")
                        .is_some_and(|digest| is_digest(digest, 32) && digest.starts_with(prefix))
                };
                let sub = item.path();
                self.own_files(&sub, is_thumbnail, &[JPEG_START]);
                removed |= remove_if_empty(&sub);
            }
        }
        if removed {
            remove_if_empty(dir);
        }
    }

    /// Deletes the files of `dir` with a name `is_own` accepts and content starting with one of
    /// `magics`, and the stale temporaries of such names. Returns whether it deleted any.
    fn own_files(&mut self, dir: &Path, is_own: impl Fn(&str) -> bool, magics: &[&[u8]]) -> bool {
        let mut deleted = false;
        for item in read_dir(dir) {
            // Links and folders are never the cache's files.
            if !item.file_type().is_ok_and(|kind| kind.is_file()) {
                continue;
            }
            let name = item.file_name();
            let Some(name) = name.to_str() else {
                continue;
            };
            let path = item.path();
            let ours = if is_own(name) {
                starts_with_any(&path, magics)
            } else {
                temporary_target(name).is_some_and(&is_own) && is_stale(&item)
            };
            if ours {
                let size = item.metadata().map_or(0, |meta| meta.len());
                match fs::remove_file(&path) {
                    Ok(()) => {
                        self.freed += size;
                        deleted = true;
                    }
                    Err(err) => self.left.push((path, format!("cannot delete it: {err}"))),
                }
            }
        }
        deleted
    }
}

/// Whether `text` is a digest as the cache writes it: `digits` lower-case hex digits.
pub(super) fn is_digest(text: &str, digits: usize) -> bool {
    text.len() == digits
        && text
            .bytes()
            .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
}

/// The file an atomic write's temporary was to become, from its name `.<file>.<random>.partial`.
fn temporary_target(name: &str) -> Option<&str> {
    let (target, random) = name
        .strip_prefix('.')?
        .strip_suffix(".partial")?
        .rsplit_once('.')?;
    (!random.is_empty() && random.bytes().all(|byte| byte.is_ascii_alphanumeric()))
        .then_some(target)
}

fn is_stale(item: &DirEntry) -> bool {
    item.metadata()
        .and_then(|meta| meta.modified())
        .is_ok_and(|modified| modified.elapsed().is_ok_and(|age| age > STALE_TEMPORARY))
}

fn starts_with_any(path: &Path, magics: &[&[u8]]) -> bool {
    let longest = magics.iter().map(|magic| magic.len()).max().unwrap_or(0);
    let mut start = Vec::with_capacity(longest);
    File::open(path)
        .and_then(|file| file.take(longest as u64).read_to_end(&mut start))
        .is_ok()
        && magics.iter().any(|magic| start.starts_with(magic))
}

/// The entries of `dir` (none when it cannot be listed: nothing of it is then deleted).
fn read_dir(dir: &Path) -> impl Iterator<Item = DirEntry> {
    fs::read_dir(dir).into_iter().flatten().flatten()
}

/// Removes `dir` if it is empty (one still holding anything stays, as it should); whether it did.
fn remove_if_empty(dir: &Path) -> bool {
    fs::remove_dir(dir).is_ok()
}

#[cfg(test)]
mod tests {
    use super::super::cached_side;
    use super::super::tests::{no_progress, photo};
    use super::*;
    use crate::data::{load, scan};

    /// A JPEG's bytes, as the app's thumbnail service keeps them.
    fn jpeg() -> Vec<u8> {
        let mut bytes = Vec::new();
        photo(16, 16, 7)
            .write_to(
                &mut std::io::Cursor::new(&mut bytes),
                image::ImageFormat::Jpeg,
            )
            .unwrap();
        bytes
    }

    /// Where the app keeps a thumbnail with `digest` under `root`.
    fn thumbnail_path(root: &Path, digest: &str) -> PathBuf {
        root.join(THUMBNAILS_DIR)
            .join(&digest[..2])
            .join(format!("{digest}.jpg"))
    }

    /// The files the cache keeps embeddings and hashes in under `root` (with its magic).
    fn kept_files(root: &Path) -> Vec<PathBuf> {
        read_dir(&root.join(embeddings::KEPT_DIR))
            .map(|item| item.path())
            .filter(|path| starts_with_any(path, &embeddings::KEPT_MAGICS))
            .collect()
    }

    fn write(path: &Path, bytes: &[u8]) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, bytes).unwrap();
    }

    fn age(path: &Path) {
        let old = std::time::SystemTime::now() - 2 * STALE_TEMPORARY;
        File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(old)
            .unwrap();
    }

    #[test]
    fn clearing_deletes_only_the_caches_entries_and_names_the_locked_ones() {
        let photos = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let cache = PixelCache::at(root.path());
        for i in 0..3u8 {
            photo(8, 8, i * 60)
                .save(photos.path().join(format!("{i}.png")))
                .unwrap();
        }
        // The person's own things beside the cache: a photo folder, a plain file, a folder with a
        // file called `index` that is not one of ours, and folders of their own called
        // `embeddings` and `thumbnails`, one with a file named as the cache names its own.
        let holiday = root.path().join("holiday");
        fs::create_dir(&holiday).unwrap();
        photo(8, 8, 1).save(holiday.join("beach.png")).unwrap();
        fs::write(root.path().join("README"), "my notes").unwrap();
        let notes = root.path().join("notes");
        fs::create_dir(&notes).unwrap();
        fs::write(notes.join("index"), "chapter 1").unwrap();
        let embeddings_dir = root.path().join(embeddings::KEPT_DIR);
        let thumbnails_dir = root.path().join(THUMBNAILS_DIR);
        let persons = [
            embeddings_dir.join("model.png"),
            embeddings_dir.join(format!("{:032x}.bin", 7)),
            thumbnails_dir.join("a.jpg"),
            thumbnails_dir.join("ab/a.jpg"),
        ];
        let photo_bytes = jpeg();
        for (i, path) in persons.iter().enumerate() {
            write(path, if i == 1 { b"my vectors" } else { &photo_bytes });
        }
        load(&scan(photos.path()).unwrap(), &cache, 8, &no_progress).unwrap();
        load(&scan(photos.path()).unwrap(), &cache, 16, &no_progress).unwrap();
        // The cache's own entries in the same two folders.
        cache.keep_embeddings("model", &[1.0; 4], 2).unwrap();
        let kept = kept_files(root.path());
        assert_eq!(kept.len(), 1);
        let thumbnail = thumbnail_path(root.path(), "ab0123456789abcdef0123456789abcd");
        let other_thumbnail = thumbnail_path(root.path(), "cd0123456789abcdef0123456789abcd");
        write(&thumbnail, &jpeg());
        write(&other_thumbnail, &jpeg());
        let free = cache.folder_dir(photos.path(), cached_side(8)).unwrap();
        let busy = cache.folder_dir(photos.path(), cached_side(16)).unwrap();
        let lock = File::options()
            .append(true)
            .open(busy.join("lock"))
            .unwrap();
        lock.lock().unwrap();

        let err = cache.clear().unwrap_err();
        assert!(
            err.to_string().contains(&busy.display().to_string()),
            "{err}"
        );
        let DataError::CacheLeft { freed, left } = err else {
            panic!("{err}")
        };
        assert!(freed > 0);
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].0, busy);
        for gone in [
            &free,
            &kept[0],
            &thumbnail,
            other_thumbnail.parent().unwrap(),
        ] {
            assert!(!gone.exists(), "{} was left", gone.display());
        }
        let theirs = [
            holiday.join("beach.png"),
            root.path().join("README"),
            notes.join("index"),
        ];
        for path in theirs.iter().chain(&persons) {
            assert!(path.exists(), "{} was deleted", path.display());
        }
        assert!(busy.join("index").exists());

        drop(lock);
        assert!(cache.clear().unwrap() > 0);
        assert!(!busy.exists());
        assert!(holiday.join("beach.png").exists() && notes.join("index").exists());
        assert!(persons.iter().all(|path| path.exists()));
    }

    #[test]
    fn folders_holding_only_cache_entries_go_and_a_write_in_progress_keeps_its_temporary() {
        let root = tempfile::tempdir().unwrap();
        let cache = PixelCache::at(root.path());
        cache.keep_embeddings("model", &[1.0; 4], 2).unwrap();
        cache.keep_hashes("folder", &[]).unwrap();
        let digest = "0f0123456789abcdef0123456789abcd";
        write(&thumbnail_path(root.path(), digest), &jpeg());
        // What an interrupted write leaves, long ago and just now (the latter may be in progress).
        let kept = kept_files(root.path());
        assert_eq!(kept.len(), 2);
        let kept_name = kept[0].file_name().unwrap().to_str().unwrap();
        let stale = root
            .path()
            .join(embeddings::KEPT_DIR)
            .join(format!(".{kept_name}.a1B2c3.partial"));
        write(&stale, b"SPXC");
        age(&stale);
        let fresh = root
            .path()
            .join(THUMBNAILS_DIR)
            .join(&digest[..2])
            .join(format!(".{digest}.jpg.Zz9Yy8.partial"));
        write(&fresh, &[0xFF]);

        assert!(cache.clear().unwrap() > 0);
        assert!(!root.path().join(embeddings::KEPT_DIR).exists());
        assert!(fresh.exists(), "a write in progress lost its temporary");
        fs::remove_file(&fresh).unwrap();
        cache.clear().unwrap();
        assert_eq!(fs::read_dir(root.path()).unwrap().count(), 0);
    }

    #[test]
    fn folders_of_those_names_holding_nothing_of_the_caches_stay_even_empty() {
        let root = tempfile::tempdir().unwrap();
        let folders = [
            root.path().join(embeddings::KEPT_DIR),
            root.path().join(THUMBNAILS_DIR).join("holiday"),
        ];
        for folder in &folders {
            fs::create_dir_all(folder).unwrap();
        }
        assert_eq!(PixelCache::at(root.path()).clear().unwrap(), 0);
        assert!(folders.iter().all(|folder| folder.is_dir()));
    }

    #[cfg(unix)]
    #[test]
    fn links_at_the_cache_root_are_not_followed() {
        let photos = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let other = PixelCache::at(elsewhere.path());
        photo(8, 8, 1).save(photos.path().join("a.png")).unwrap();
        photo(8, 8, 2).save(photos.path().join("b.png")).unwrap();
        load(&scan(photos.path()).unwrap(), &other, 8, &no_progress).unwrap();
        other.keep_embeddings("model", &[1.0; 4], 2).unwrap();
        let folder_cache = other.folder_dir(photos.path(), cached_side(8)).unwrap();

        let root = tempfile::tempdir().unwrap();
        let cache = PixelCache::at(root.path());
        let link = |target: &Path, name: &str| {
            std::os::unix::fs::symlink(target, root.path().join(name)).unwrap();
        };
        link(
            &elsewhere.path().join(embeddings::KEPT_DIR),
            embeddings::KEPT_DIR,
        );
        link(&folder_cache, "0123456789abcdef-12px");
        link(elsewhere.path(), THUMBNAILS_DIR);
        assert_eq!(cache.clear().unwrap(), 0);
        assert_eq!(kept_files(elsewhere.path()).len(), 1);
        assert!(folder_cache.join("index").exists());
        assert_eq!(fs::read_dir(root.path()).unwrap().count(), 3);
    }
}
