//! Why a CPU limit could not be read, set or restored: one error type for
//! every way of limiting.

use std::path::Path;

/// Why a limit could not be read, set or restored.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LimitError {
    #[error("{path}: {msg}")]
    Io { path: String, msg: String },
    #[error("cannot parse {path}: {detail}")]
    Parse { path: String, detail: String },
    #[error("{0}")]
    Unsupported(String),
    #[error("process {pid} is gone")]
    Gone { pid: u32 },
    #[error("Docker: {0}")]
    Docker(String),
}

impl LimitError {
    pub(crate) fn io(path: &Path, e: &std::io::Error) -> Self {
        LimitError::Io {
            path: path.display().to_string(),
            msg: e.to_string(),
        }
    }
}
