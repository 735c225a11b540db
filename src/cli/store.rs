//! Opening the store the way every command does: `--root`, else `CAIRN_ROOT`, else the
//! default (`/var/lib/cairn` as root, `$XDG_DATA_HOME/cairn` otherwise).

use anyhow::{Context, Result};
use cairn_driver::Store;
use cairn_driver::archive::tar_in::ImportLimits;
use cairn_driver::images::ImageStore;

/// The image store at the chosen root, with the import limits of the environment
/// (`CAIRN_MAX_EXPAND`, `CAIRN_MAX_LAYER_SIZE`).
pub fn open_images(root: Option<&str>) -> Result<ImageStore> {
    let root = match root {
        Some(r) => r.into(),
        None => Store::default_root()?,
    };
    let store =
        Store::open(&root).with_context(|| format!("opening the store at {}", root.display()))?;
    let limits = ImportLimits::from_env()?;
    Ok(ImageStore::new(store).with_import_limits(limits))
}
