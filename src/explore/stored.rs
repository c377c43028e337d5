//! `spreadout neighbors`' two sources answered alike: an embeddings file written earlier by
//! `spreadout embed` (its rows read back; its model loaded only for a query from outside it), or
//! a [`Collection`] embedded now. A query that is one of the collection's own files is looked up
//! rather than embedded again, and left out of its own answer.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::tensor::Device;

use crate::embed::{self, EmbeddingsFile};
use crate::eval::{self, Embeddings};
use crate::model_files;
use crate::support::paths;

use super::{Collection, ExploreError, Neighbor};

/// The row of `query` among `files`, comparing where the files really are (a relative path, or a
/// path through a linked folder, names the same file). Each folder is resolved once, not each
/// file: a collection has a few folders and up to 100 000 files. A file that is itself a link is
/// compared by its own name, not its target's.
pub fn row_of<'a>(files: impl IntoIterator<Item = &'a Path>, query: &Path) -> Option<usize> {
    let mut folders: HashMap<&Path, PathBuf> = HashMap::new();
    let mut real = |path: &'a Path| -> Option<PathBuf> {
        let folder = path.parent().filter(|p| !p.as_os_str().is_empty());
        let folder = folders
            .entry(folder.unwrap_or(Path::new(".")))
            .or_insert_with_key(|folder| paths::real(folder));
        Some(folder.join(path.file_name()?))
    };
    // The query's own folder, resolved the same way (it outlives the map's borrows).
    let wanted = paths::real(
        query
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new(".")),
    )
    .join(query.file_name()?);
    files
        .into_iter()
        .position(|file| real(file).is_some_and(|file| file == wanted))
}

/// The `k` files of `file` most similar to the image `query`, best first. A query that is one
/// of its rows ([`row_of`]) is answered from the file alone; any other image is embedded with the
/// model the file names, loaded onto `device`.
///
/// # Errors
/// [`ExploreError::Model`] when the model is needed and cannot be loaded, [`ExploreError::Data`]
/// when the query cannot be decoded.
pub fn nearest_in_file(
    file: &EmbeddingsFile,
    query: &Path,
    k: usize,
    device: &Device,
) -> Result<Vec<Neighbor>, ExploreError> {
    let all = Embeddings::new(&file.embeddings, file.dim)?;
    let hits = match row_of(file.paths.iter().map(PathBuf::as_path), query) {
        Some(row) => eval::nearest(all.row(row), all, k, Some(row))?,
        None => {
            let model = model_files::load_model(&file.model, device)?;
            let features = embed::embed_file(&model, query)?;
            eval::nearest(&features, all, k, None)?
        }
    };
    Ok(hits
        .into_iter()
        .map(|(row, score)| Neighbor {
            path: file.paths[row].clone(),
            score,
            same_label: None,
        })
        .collect())
}

impl Collection {
    /// The `k` images most similar to the image `query`: its neighbours when it is one of the
    /// collection's files ([`row_of`]), else those of an outside image.
    ///
    /// # Errors
    /// Those of [`Collection::neighbours`] and [`Collection::query_file`].
    pub fn nearest_to(&self, query: &Path, k: usize) -> Result<Vec<Neighbor>, ExploreError> {
        match row_of(self.entries().iter().map(|e| e.path.as_path()), query) {
            Some(row) => self.neighbors(row, k),
            None => self.query_file(query, k),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_found_by_any_path_to_its_folder() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("photos");
        std::fs::create_dir(&folder).unwrap();
        let files = [folder.join("a.png"), folder.join("b.png")];
        let rows = || files.iter().map(PathBuf::as_path);
        assert_eq!(row_of(rows(), &files[1]), Some(1));
        assert_eq!(row_of(rows(), &folder.join("../photos/b.png")), Some(1));
        #[cfg(unix)]
        {
            let link = dir.path().join("link");
            std::os::unix::fs::symlink(&folder, &link).unwrap();
            assert_eq!(row_of(rows(), &link.join("a.png")), Some(0));
        }
        assert_eq!(row_of(rows(), &folder.join("c.png")), None);
        assert_eq!(row_of(rows(), dir.path()), None);
    }
}
