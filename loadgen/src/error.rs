//! Why a run could not happen at all (exit code 2), as opposed to a run whose gates failed.

/// Why a run could not happen (exit code 2), as opposed to a run whose gates failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Setup(String),
    #[error("goose: {0}")]
    Goose(String),
}
