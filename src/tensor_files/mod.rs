//! Tensors on disk, below everything that keeps them: safetensors files by name in plain host
//! memory (`safetensors_io`), PyTorch's own checkpoints read without Python (`pytorch_file`), and
//! Burn's module tree walked to and from named tensors (`module_tensors`). Models, optimiser
//! state, memory banks, checkpoints and embeddings files all go through here, and every failure
//! to write or read one of them is a [`FileError`] naming the file.

use crate::support::error_kind::ErrorKind;
use std::path::{Path, PathBuf};

mod module_tensors;
mod pytorch_file;
mod safetensors_io;

pub use module_tensors::{load_module_tensors, module_tensors};
pub use pytorch_file::{is_pytorch_file, read_pytorch_tensors};
pub use safetensors_io::{
    NamedTensor, TensorValues, TensorsByName, parse_tensors, read_header, read_tensors,
    write_atomically, write_tensors,
};

/// Why a file could not be written or read back.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file system refused.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not what it should be.
    #[error("{}: {message}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A model would replace a file of the same name that Spreadout did not write.
    #[error(
        "{} was not written by Spreadout, so nothing was written and it was left as it was; choose an empty folder, or one holding only a model Spreadout exported",
        path.display()
    )]
    Foreign {
        /// The file left as it was.
        path: PathBuf,
    },
}

impl FileError {
    /// The kind of this error, which each shell keys its remedy on.
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::Files
    }
}

impl FileError {
    pub(crate) fn format(path: &Path, message: impl ToString) -> Self {
        FileError::Format {
            path: path.to_owned(),
            message: message.to_string(),
        }
    }

    pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| FileError::Io {
            path: path.to_owned(),
            source,
        }
    }
}
