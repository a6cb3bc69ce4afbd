//! The engine's side of the optional GPU backend (cargo feature `vulkan`): loading the
//! offloaded layers, a GPU state per session, and the fall-back to the CPU. A GPU that is
//! missing, too small or fails while running is a message on stderr and the CPU goes on; a
//! build without the feature refuses `--gpu` / `-ngl` with a clear error.

use hearth_models::kv_cache::KvCache;
use hearth_models::model::{Logits, Model, Scratch};
use hearth_models::ModelError;

#[cfg(feature = "vulkan")]
pub use hearth_models::gpu::{GpuModel as EngineGpu, GpuSession as SessionGpu};

/// The GPU part of a model (none exists in a build without the `vulkan` feature).
#[cfg(not(feature = "vulkan"))]
pub enum EngineGpu {}

/// A session's GPU state (none exists in a build without the `vulkan` feature).
#[cfg(not(feature = "vulkan"))]
pub enum SessionGpu {}

/// What a build without the feature says to `--gpu` and `-ngl`.
pub const NOT_BUILT: &str =
    "this hearth was built without GPU support: --gpu and -ngl need `cargo build --release --features vulkan`";

/// Upload the first `n_layers` layers; `Ok(None)` (after a message) when the GPU cannot be used.
pub fn load(model: &Model, n_layers: usize) -> anyhow::Result<Option<EngineGpu>> {
    #[cfg(feature = "vulkan")]
    {
        let gpu = match hearth_models::gpu::Gpu::open() {
            Ok(g) => std::sync::Arc::new(g),
            Err(e) => {
                eprintln!("hearth: {e}; running on the CPU");
                return Ok(None);
            }
        };
        match EngineGpu::load(model, n_layers, gpu) {
            Ok(g) => {
                eprintln!(
                    "hearth: {} of {} layers on the GPU ({}, {} MiB of weights)",
                    g.n_layers(),
                    model.hp.n_layer,
                    g.describe(),
                    g.weight_bytes() >> 20
                );
                Ok(Some(g))
            }
            Err(e) => {
                eprintln!("hearth: {e}; running on the CPU");
                Ok(None)
            }
        }
    }
    #[cfg(not(feature = "vulkan"))]
    {
        let _ = (model, n_layers);
        anyhow::bail!(NOT_BUILT)
    }
}

/// A session's GPU state, or `None` (after a message) when it does not fit.
pub fn new_session(g: Option<&EngineGpu>, n_ctx: usize) -> Option<SessionGpu> {
    let g = g?;
    #[cfg(feature = "vulkan")]
    {
        match g.new_session(n_ctx) {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("hearth: {e}; this conversation runs on the CPU");
                None
            }
        }
    }
    #[cfg(not(feature = "vulkan"))]
    {
        let _ = n_ctx;
        match *g {}
    }
}

/// The backend in use, for `hearth bench`: `CPU`, or the GPU with its share of the layers.
pub fn describe(g: Option<&EngineGpu>, n_layer: usize) -> String {
    match g {
        None => "CPU".to_string(),
        #[cfg(feature = "vulkan")]
        Some(g) => format!(
            "GPU ({}): {} of {n_layer} layers",
            g.describe(),
            g.n_layers()
        ),
        #[cfg(not(feature = "vulkan"))]
        Some(g) => {
            let _ = n_layer;
            match *g {}
        }
    }
}

/// One forward call of `chunk` after `history` (the tokens the cache holds): on the GPU when
/// the session has a GPU state, else on the CPU. When the GPU fails, the session drops its
/// GPU state and the CPU evaluates the history again, then the chunk. Logits are in `scratch`.
#[allow(clippy::too_many_arguments)]
pub fn forward(
    g: Option<&EngineGpu>,
    gs: &mut Option<SessionGpu>,
    model: &Model,
    history: &[u32],
    chunk: &[u32],
    cache: &mut KvCache,
    want: Logits,
    scratch: &mut Scratch,
    batch: usize,
) -> Result<(), ModelError> {
    #[cfg(feature = "vulkan")]
    if let (Some(g), Some(state)) = (g, gs.as_mut()) {
        match g.forward(model, chunk, cache, want, state, scratch) {
            Ok(_) => return Ok(()),
            Err(ModelError::Gpu(e)) => {
                eprintln!("hearth: the GPU failed ({e}); going on with the CPU");
                *gs = None;
                cache.clear();
                for part in history.chunks(batch.max(1)) {
                    model.forward(part, cache, Logits::None, scratch)?;
                }
            }
            Err(e) => return Err(e),
        }
    }
    #[cfg(not(feature = "vulkan"))]
    let _ = (g, gs, history, batch);
    model.forward(chunk, cache, want, scratch)?;
    Ok(())
}
