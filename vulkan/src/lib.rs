//! hearth-vulkan: the optional GPU backend, on wgpu (Vulkan on Linux and Windows, Metal on macOS).
//!
//! The kernels are WGSL compute shaders (`src/shaders`) that keep the weights quantized in GPU
//! memory and dequantize them while multiplying, with the same block layouts as hearth-quant's
//! scalar reference (`decode.wgsl` mirrors each `dequantize_block`). A forward pass records every
//! op of its layers into one command buffer and submits it once ([`layers::GpuLayers`]).
//!
//! Nothing here panics on a missing or failing GPU: [`Gpu::open`] and every run return
//! [`GpuError`], and the caller falls back to the CPU.

mod device;
mod kernels;
pub mod layers;
mod tensor;

pub use device::{list_adapters, AdapterSummary, Gpu};
pub use kernels::{matmul_once, supported, Kernels};
pub use tensor::{GpuMatrix, WeightRef};

/// Why the GPU cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    #[error("no GPU adapter found (Vulkan or Metal){0}")]
    NoAdapter(String),
    #[error("HEARTH_GPU={index}: there are only {count} GPU adapters (see `hearth info --gpus`)")]
    BadIndex { index: usize, count: usize },
    #[error("opening the GPU failed: {0}")]
    Device(String),
    #[error("the GPU cannot run {0}")]
    Unsupported(String),
    #[error("the GPU is too small: {0}")]
    TooSmall(String),
    #[error("the GPU failed: {0}")]
    Runtime(String),
}

/// Poll a future to completion on this thread. wgpu's native futures are ready as soon as the
/// device has been polled, so this only spins briefly.
pub(crate) fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    loop {
        if let std::task::Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
}
