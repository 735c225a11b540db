//! cairn-build: `cairn build` — a Dockerfile built into an image on the engine and runtime.
//! It knows nothing of FUSE: RUN steps are containers the runtime runs on the parent image,
//! every filesystem-changing step commits a layer, metadata steps add a history entry.
//!
//! - [`parser`]: Dockerfile text → instructions (directives, continuations, heredocs, flags);
//! - [`vars`]: variable substitution and word splitting;
//! - [`stages`]: the stage graph, global ARGs, which stages a target needs;
//! - [`context`]: the build context (directory or tar) and `.dockerignore`;
//! - [`config`]: the image config a step derives from its parent's;
//! - [`copy`]: COPY/ADD sources → a layer tar;
//! - [`cache`]: the content-keyed step cache;
//! - [`mounts`]: `RUN --mount` (cache, bind, secret, tmpfs);
//! - [`work`]: the containers of RUN and of the file-writing steps;
//! - [`builder`]: runs the steps.

pub mod builder;
pub mod cache;
pub mod config;
pub mod context;
pub mod copy;
pub mod mounts;
pub mod parser;
pub mod stages;
pub mod steps;
pub mod vars;
pub mod work;

use std::path::PathBuf;

pub use builder::{BuildOptions, Event, build};

/// Errors of a build.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Dockerfile does not parse.
    #[error("dockerfile parse error on line {line} column {column}: {message}")]
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("failed to process \"{text}\": {what}")]
    Substitution { text: String, what: String },
    /// An instruction's arguments are wrong (line named).
    #[error("Dockerfile line {line}: {message}")]
    Instruction { line: usize, message: String },
    #[error("target stage \"{0}\" could not be found")]
    NoTarget(String),
    /// A RUN step's command failed.
    #[error("The command '{command}' returned a non-zero code: {code}")]
    RunFailed { command: String, code: i32 },
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "COPY failed: file not found in build context or excluded by .dockerignore: stat {0}: file does not exist"
    )]
    NoSource(String),
    #[error("invalid .dockerignore pattern {pattern:?}: {source}")]
    Ignore {
        pattern: String,
        #[source]
        source: globset::Error,
    },
    #[error(transparent)]
    Engine(#[from] cairn_engine::Error),
    #[error(transparent)]
    Images(#[from] cairn_driver::images::ImagesError),
    #[error(transparent)]
    Store(#[from] cairn_driver::Error),
    #[error(transparent)]
    Runtime(#[from] cairn_runtime::Error),
}

impl Error {
    pub(crate) fn io(
        what: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { what, path, source }
    }

    pub(crate) fn at(line: usize, message: impl Into<String>) -> Error {
        Error::Instruction {
            line,
            message: message.into(),
        }
    }
}

/// Result of a build.
pub type Result<T> = std::result::Result<T, Error>;
