//! Near-duplicate groups a person has dealt with: marked resolved, with the copy they keep, so
//! that the next search of the folder (in the app or the CLI) sets them aside rather than asking
//! again. A group comes back when it gains a member, since a new copy is new work. Decisions are
//! a person's work, not a cache: they live in the per-user data folder (not beside the images,
//! which Spreadout never writes to, nor in the cache, which may be cleared), one JSON file per
//! folder, replaced atomically.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::{DuplicateGroup, KeepSuggestion};
use crate::data::ImageEntry;
use crate::support::error_kind::ErrorKind;

/// The version of the file's layout, written into it.
const VERSION: u32 = 1;

/// Where decisions about each folder's near-duplicates are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedStore {
    root: PathBuf,
}

/// The decisions file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} {path}: {reason}")]
pub struct ResolvedError {
    action: &'static str,
    path: PathBuf,
    reason: String,
}

impl ResolvedError {
    /// The kind each shell keys its remedy on.
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::Files
    }
}

/// One folder's decisions, as the file holds them.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Decisions {
    version: u32,
    /// The folder, for a person reading the file.
    #[serde(with = "crate::support::paths")]
    folder: PathBuf,
    groups: Vec<Resolution>,
}

/// A group marked resolved: its members' paths, sorted, and the copy kept.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Resolution {
    #[serde(with = "crate::support::paths::list")]
    members: Vec<PathBuf>,
    #[serde(with = "crate::support::paths::option")]
    keep: Option<PathBuf>,
}

impl Resolution {
    /// Whether every one of `paths` is a member: the group found is this one, or part of it.
    fn covers(&self, paths: &BTreeSet<&Path>) -> bool {
        paths.iter().all(|path| {
            self.members
                .binary_search_by(|m| m.as_path().cmp(path))
                .is_ok()
        })
    }
}

/// The paths of rows `members`, sorted.
fn member_paths<'a>(members: &[usize], entries: &'a [ImageEntry]) -> BTreeSet<&'a Path> {
    members
        .iter()
        .map(|&row| entries[row].path.as_path())
        .collect()
}

impl ResolvedStore {
    /// Decisions kept under `root`.
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The one both shells use, so that a group resolved in the app stays resolved in the CLI:
    /// `resolved-duplicates` in `$SPREADOUT_DATA_DIR` where set (the tests' throw-away folder, as
    /// the app's), else in the per-user data folder (`~/.local/share/spreadout` on Linux).
    pub fn default_location() -> Self {
        let data = std::env::var_os("SPREADOUT_DATA_DIR")
            .map_or_else(crate::support::paths::default_data_dir, PathBuf::from);
        Self::at(data.join("resolved-duplicates"))
    }

    /// The file of `folder`: named from its real path, so two ways of writing one folder share it.
    fn file(&self, folder: &Path) -> PathBuf {
        let real = crate::support::paths::real(folder);
        let bytes = crate::support::paths::os_bytes(real.as_os_str());
        self.root
            .join(format!("{:032x}.json", xxhash_rust::xxh3::xxh3_128(&bytes)))
    }

    /// `folder`'s decisions; none where it has no file yet.
    fn read(&self, folder: &Path) -> Result<Decisions, ResolvedError> {
        let path = self.file(folder);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Decisions {
                    version: VERSION,
                    folder: folder.to_path_buf(),
                    groups: Vec::new(),
                });
            }
            Err(error) => {
                return Err(ResolvedError {
                    action: "read",
                    path,
                    reason: error.to_string(),
                });
            }
        };
        // A damaged file is reported, never replaced: it holds a person's decisions.
        serde_json::from_str(&text).map_err(|error| ResolvedError {
            action: "read",
            path,
            reason: format!("{error} (the file is left as it is; move it away to start afresh)"),
        })
    }

    /// Sets [`DuplicateGroup::resolved`] on each of `groups` (rows of `entries`, images of
    /// `folder`) that a person marked resolved: a decision covering every member.
    ///
    /// # Errors
    /// [`ResolvedError`] naming the decisions file when it cannot be read.
    pub fn apply(
        &self,
        folder: &Path,
        groups: &mut [DuplicateGroup],
        entries: &[ImageEntry],
    ) -> Result<(), ResolvedError> {
        let decisions = self.read(folder)?;
        for group in groups {
            let paths = member_paths(&group.members, entries);
            let Some(resolution) = decisions.groups.iter().find(|r| r.covers(&paths)) else {
                group.resolved = false;
                continue;
            };
            group.resolved = true;
            // The copy the person kept, where it is still one of the group.
            let kept = group
                .members
                .iter()
                .find(|&&row| Some(&entries[row].path) == resolution.keep.as_ref());
            if let Some(&row) = kept {
                group.keep = Some(KeepSuggestion {
                    row,
                    reason: "kept when marked resolved".to_owned(),
                });
            }
        }
        Ok(())
    }

    /// Marks the group of rows `members` resolved (keeping `keep`, one of them) or, with `keep`
    /// `None`, no longer resolved, and writes the folder's file. A resolution replaces any it
    /// covers (an earlier decision about part of the group).
    ///
    /// # Errors
    /// [`ResolvedError`] naming the file when it cannot be read or written.
    pub fn mark(
        &self,
        folder: &Path,
        members: &[usize],
        entries: &[ImageEntry],
        keep: Option<usize>,
    ) -> Result<(), ResolvedError> {
        let mut decisions = self.read(folder)?;
        let paths = member_paths(members, entries);
        match keep {
            Some(row) => {
                let members: Vec<PathBuf> = paths.iter().map(|p| p.to_path_buf()).collect();
                decisions
                    .groups
                    .retain(|r| !r.members.iter().all(|m| members.binary_search(m).is_ok()));
                decisions.groups.push(Resolution {
                    members,
                    keep: Some(entries[row].path.clone()),
                });
            }
            None => decisions.groups.retain(|r| !r.covers(&paths)),
        }
        decisions.version = VERSION;
        decisions.folder = folder.to_path_buf();
        let path = self.file(folder);
        let text = serde_json::to_string_pretty(&decisions).expect("decisions serialise");
        crate::support::atomic_file::write(&path, text.as_bytes()).map_err(|error| ResolvedError {
            action: "write",
            path,
            reason: error.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::FileStamp;

    fn entries(names: &[&str]) -> Vec<ImageEntry> {
        names
            .iter()
            .map(|name| ImageEntry {
                path: PathBuf::from("/photos").join(name),
                label: None,
                stamp: FileStamp::default(),
            })
            .collect()
    }

    fn group(members: &[usize]) -> DuplicateGroup {
        DuplicateGroup {
            members: members.to_vec(),
            similarities: vec![1.0; members.len()],
            weakest_link: 1.0,
            links: Vec::new(),
            keep: None,
            resolved: false,
        }
    }

    #[test]
    fn a_resolved_group_stays_resolved_until_it_gains_a_member_or_is_reopened() {
        let dir = tempfile::tempdir().unwrap();
        let store = ResolvedStore::at(dir.path().join("decisions"));
        let folder = dir.path();
        let entries = entries(&["a.jpg", "b.jpg", "c.jpg", "d.jpg"]);
        store.mark(folder, &[0, 1, 2], &entries, Some(1)).unwrap();

        // The next search: the same group, part of it, and the group grown by a new copy.
        let mut found = vec![group(&[0, 1, 2]), group(&[0, 2]), group(&[1, 2, 3])];
        store.apply(folder, &mut found, &entries).unwrap();
        let resolved: Vec<bool> = found.iter().map(|g| g.resolved).collect();
        assert_eq!(resolved, [true, true, false]);

        assert_eq!(
            found[0].keep.as_ref().map(|k| k.row),
            Some(1),
            "the kept copy"
        );

        // Another store over the same folder (the CLI after the app) reads the same file.
        let again = ResolvedStore::at(dir.path().join("decisions"));
        let mut found = vec![group(&[0, 1, 2])];
        again.apply(folder, &mut found, &entries).unwrap();
        assert!(found[0].resolved);

        // Resolving the grown group replaces the decision it covers; reopening removes it.
        store.mark(folder, &[1, 2, 3], &entries, Some(3)).unwrap();
        assert_eq!(store.read(folder).unwrap().groups.len(), 2);
        store
            .mark(folder, &[0, 1, 2, 3], &entries, Some(3))
            .unwrap();
        assert_eq!(store.read(folder).unwrap().groups.len(), 1);
        store.mark(folder, &[0, 2], &entries, None).unwrap();
        let mut found = vec![group(&[0, 1, 2, 3])];
        store.apply(folder, &mut found, &entries).unwrap();
        assert!(!found[0].resolved);
    }

    #[test]
    fn a_damaged_file_is_reported_and_left_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let store = ResolvedStore::at(dir.path());
        let file = store.file(Path::new("/photos"));
        std::fs::write(&file, "{ not json").unwrap();
        let entries = entries(&["a.jpg", "b.jpg"]);
        let error = store
            .mark(Path::new("/photos"), &[0, 1], &entries, Some(0))
            .unwrap_err();
        let message = error.to_string();
        assert!(message.contains(&file.display().to_string()), "{message}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "{ not json");
    }
}
