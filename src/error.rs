//! One error type for the whole crate: every message says what was wrong and what to do.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "no GPU adapter was found. Install a Vulkan driver: on Debian/Ubuntu `apt-get install \
         mesa-vulkan-drivers libvulkan1` gives the software device lavapipe; on a machine with a \
         GPU install its vendor's Vulkan driver"
    )]
    NoAdapter,

    #[error("no adapter matches {requested:?}; available adapters: {available}. Run `taming devices` to list them")]
    AdapterNotFound {
        requested: String,
        available: String,
    },

    #[error("could not open the device on adapter {adapter:?}: {reason}")]
    RequestDevice { adapter: String, reason: String },

    #[error(
        "{what} needs {bytes} bytes, but the adapter {adapter:?} allows at most {limit} bytes in one \
         storage binding; use a smaller batch or shape"
    )]
    TooLarge {
        what: String,
        bytes: u64,
        limit: u64,
        adapter: String,
    },

    #[error("{op}: {detail}")]
    Shape { op: &'static str, detail: String },

    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    #[error("training diverged: {0}")]
    Diverged(String),

    #[error("download failed: {0}")]
    Download(String),

    #[error("GPU error: {0}")]
    Gpu(String),

    #[error("{path}: {detail}")]
    File { path: PathBuf, detail: String },

    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl Error {
    pub fn shape(op: &'static str, detail: impl Into<String>) -> Self {
        Error::Shape {
            op,
            detail: detail.into(),
        }
    }
}
