//! Opening the engine the way every command does: `--root`, else `CAIRN_ROOT`, else the
//! default (`/var/lib/cairn` as root, `$XDG_DATA_HOME/cairn` otherwise), with the import
//! limits of the environment (`CAIRN_MAX_EXPAND`, `CAIRN_MAX_LAYER_SIZE`).

use anyhow::{Context, Result};
use cairn_driver::archive::tar_in::ImportLimits;
use cairn_engine::{Engine, StoreRoot};

/// The engine on the chosen store.
pub fn open(root: &StoreRoot) -> Result<Engine> {
    let path = root.path()?;
    let engine =
        Engine::open(root).with_context(|| format!("opening the store at {}", path.display()))?;
    Ok(engine.with_import_limits(ImportLimits::from_env()?))
}

/// An engine error as the CLI's error, with the library error it wraps kept downcastable
/// (the exit code and the "Error response from daemon" prefix depend on its type).
pub fn unwrap_err(e: cairn_engine::Error) -> anyhow::Error {
    match e {
        cairn_engine::Error::Runtime(e) => e.into(),
        cairn_engine::Error::Images(e) => e.into(),
        cairn_engine::Error::Store(e) => e.into(),
        e => e.into(),
    }
}
