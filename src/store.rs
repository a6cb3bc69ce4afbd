//! The model store: where hearth keeps model files on this machine.
//!
//! `$HEARTH_MODELS` wins; otherwise `<user cache folder>/hearth/models` (on Linux
//! `$XDG_CACHE_HOME/hearth/models` or `~/.cache/hearth/models`), the folder
//! `scripts/fetch-models.sh` fills.

use std::path::PathBuf;

/// The folder hearth's models live in. `None` only when neither `$HEARTH_MODELS` is set nor a
/// cache folder can be found for this user.
pub fn model_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("HEARTH_MODELS").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    dirs::cache_dir().map(|c| c.join("hearth").join("models"))
}
