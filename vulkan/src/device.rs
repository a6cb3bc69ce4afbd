//! Finding and opening a GPU: an integrated one first (it shares the laptop's memory, which is
//! what hearth targets), then a discrete one, then anything else (Mesa's lavapipe, a CPU
//! emulation, in tests). `HEARTH_GPU=N` picks adapter N of [`list_adapters`].

use std::sync::{Arc, Mutex};

use crate::{block_on, GpuError};

/// One adapter as `hearth info --gpus` shows it.
#[derive(Clone, Debug)]
pub struct AdapterSummary {
    pub index: usize,
    pub name: String,
    pub kind: String,
    pub backend: String,
    pub driver: String,
    /// Largest single buffer, and largest storage binding (tensors are split to fit it).
    pub max_buffer: u64,
    pub max_binding: u64,
    /// Whether the adapter can run hearth's kernels (compute shaders and the limits they need).
    pub usable: bool,
    pub features: String,
}

fn instance() -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = wgpu::Backends::VULKAN | wgpu::Backends::METAL;
    wgpu::Instance::new(desc)
}

fn adapters(instance: &wgpu::Instance) -> Vec<wgpu::Adapter> {
    block_on(instance.enumerate_adapters(wgpu::Backends::VULKAN | wgpu::Backends::METAL))
}

fn kind_name(t: wgpu::DeviceType) -> &'static str {
    match t {
        wgpu::DeviceType::IntegratedGpu => "integrated GPU",
        wgpu::DeviceType::DiscreteGpu => "discrete GPU",
        wgpu::DeviceType::VirtualGpu => "virtual GPU",
        wgpu::DeviceType::Cpu => "CPU (software)",
        wgpu::DeviceType::Other => "other",
    }
}

/// The order in which adapters are preferred (lower first).
fn rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::IntegratedGpu => 0,
        wgpu::DeviceType::DiscreteGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

fn usable(a: &wgpu::Adapter) -> bool {
    let l = a.limits();
    a.get_downlevel_capabilities()
        .flags
        .contains(wgpu::DownlevelFlags::COMPUTE_SHADERS)
        && l.max_storage_buffers_per_shader_stage >= 5
        && l.max_compute_workgroup_size_x >= 256
        && l.max_compute_invocations_per_workgroup >= 256
}

/// Every Vulkan/Metal adapter of this machine.
pub fn list_adapters() -> Vec<AdapterSummary> {
    adapters(&instance())
        .iter()
        .enumerate()
        .map(|(index, a)| {
            let info = a.get_info();
            let l = a.limits();
            let f = a.features();
            let mut features = Vec::new();
            if f.contains(wgpu::Features::SHADER_F16) {
                features.push("shader-f16");
            }
            if f.contains(wgpu::Features::SUBGROUP) {
                features.push("subgroups");
            }
            if f.contains(wgpu::Features::IMMEDIATES) {
                features.push("immediates");
            }
            AdapterSummary {
                index,
                name: info.name.clone(),
                kind: kind_name(info.device_type).to_string(),
                backend: format!("{:?}", info.backend),
                driver: format!("{} {}", info.driver, info.driver_info)
                    .trim()
                    .to_string(),
                max_buffer: l.max_buffer_size,
                max_binding: l.max_storage_buffer_binding_size,
                usable: usable(a),
                features: features.join(", "),
            }
        })
        .collect()
}

/// An open GPU: the device, its queue and what it can hold.
pub struct Gpu {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    pub(crate) limits: wgpu::Limits,
    pub(crate) errors: Arc<Mutex<Option<String>>>,
    name: String,
    kind: String,
}

impl Gpu {
    /// Open the adapter `HEARTH_GPU` names, or the preferred one.
    pub fn open() -> Result<Gpu, GpuError> {
        let pick = match std::env::var("HEARTH_GPU") {
            Ok(v) if !v.trim().is_empty() => Some(v.trim().parse::<usize>().map_err(|_| {
                GpuError::Device(format!("HEARTH_GPU={v} is not an adapter number"))
            })?),
            _ => None,
        };
        Gpu::open_index(pick)
    }

    /// Open adapter `index` of [`list_adapters`], or the preferred one for `None`.
    pub fn open_index(index: Option<usize>) -> Result<Gpu, GpuError> {
        let instance = instance();
        let mut all = adapters(&instance);
        let adapter = match index {
            Some(i) if i < all.len() => all.swap_remove(i),
            Some(i) => {
                return Err(GpuError::BadIndex {
                    index: i,
                    count: all.len(),
                })
            }
            None => {
                let found = all.len();
                all.retain(usable);
                all.sort_by_key(|a| rank(a.get_info().device_type));
                if all.is_empty() {
                    let why = if found == 0 {
                        " (is a Vulkan driver installed? On Debian: mesa-vulkan-drivers libvulkan1)"
                            .to_string()
                    } else {
                        format!(": {found} adapters, none with the compute support hearth needs")
                    };
                    return Err(GpuError::NoAdapter(why));
                }
                all.swap_remove(0)
            }
        };
        let info = adapter.get_info();
        if !usable(&adapter) {
            return Err(GpuError::Unsupported(format!(
                "hearth's kernels on {} (no compute shaders or too few storage buffers)",
                info.name
            )));
        }
        // Ask for the adapter's own limits: the largest buffers and bindings it allows.
        let limits = adapter.limits();
        let (device, queue) = block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("hearth"),
            required_features: wgpu::Features::empty(),
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .map_err(|e| GpuError::Device(e.to_string()))?;
        let errors = Arc::new(Mutex::new(None));
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut slot) = sink.lock() {
                slot.get_or_insert_with(|| e.to_string());
            }
        }));
        Ok(Gpu {
            device,
            queue,
            limits,
            errors,
            name: info.name.clone(),
            kind: kind_name(info.device_type).to_string(),
        })
    }

    /// The adapter's name and kind, for messages (`llvmpipe (LLVM 15, 256 bits), CPU (software)`).
    pub fn describe(&self) -> String {
        format!("{}, {}", self.name, self.kind)
    }

    /// Largest storage buffer binding: tensors above it are split by rows.
    pub fn max_binding(&self) -> u64 {
        self.limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size)
    }

    /// Cap the storage binding size below the device's (tests use it to exercise the split
    /// of large tensors on any GPU).
    pub fn cap_binding(&mut self, bytes: u64) {
        self.limits.max_storage_buffer_binding_size =
            self.limits.max_storage_buffer_binding_size.min(bytes);
    }

    /// The first error the device reported since the last check, if any.
    pub(crate) fn take_error(&self) -> Result<(), GpuError> {
        match self.errors.lock().ok().and_then(|mut e| e.take()) {
            Some(e) => Err(GpuError::Runtime(e)),
            None => Ok(()),
        }
    }

    /// Wait until the GPU has finished everything submitted.
    pub(crate) fn wait(&self) -> Result<(), GpuError> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| GpuError::Runtime(e.to_string()))?;
        self.take_error()
    }
}
