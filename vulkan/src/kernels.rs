//! The compute pipelines, and the dispatch list a forward pass is recorded from.

use std::collections::HashMap;

use hearth_quant::GgmlType;
use wgpu::util::DeviceExt;

use crate::{Gpu, GpuError};

const STEP: &str = include_str!("shaders/step.wgsl");
const DECODE: &str = include_str!("shaders/decode.wgsl");

const MATMUL: &str = include_str!("shaders/matmul.wgsl");

/// Most workgroups along one dispatch dimension (WebGPU's minimum limit).
const MAX_GROUPS: u32 = 65535;

/// The weight types the GPU multiplies by, with their section name in decode.wgsl.
const TYPES: [(GgmlType, &str); 9] = [
    (GgmlType::F32, "F32"),
    (GgmlType::F16, "F16"),
    (GgmlType::Q4_0, "Q4_0"),
    (GgmlType::Q4_1, "Q4_1"),
    (GgmlType::Q5_0, "Q5_0"),
    (GgmlType::Q8_0, "Q8_0"),
    (GgmlType::Q4K, "Q4_K"),
    (GgmlType::Q5K, "Q5_K"),
    (GgmlType::Q6K, "Q6_K"),
];

/// Whether the GPU kernels can multiply by weights of type `ty`.
pub fn supported(ty: GgmlType) -> bool {
    TYPES.iter().any(|&(t, _)| t == ty)
}

/// The decode.wgsl section of one type: from its `// type: NAME` line to the next one.
fn decoder(name: &str) -> Option<&'static str> {
    let start = DECODE.find(&format!("// type: {name}\n"))?;
    let rest = &DECODE[start..];
    let end = rest[1..].find("// type: ").map_or(rest.len(), |e| e + 1);
    Some(&rest[..end])
}

/// Every pipeline of the forward pass; matmul ones for the weight types asked for.
pub struct Kernels {
    matmul: HashMap<GgmlType, wgpu::ComputePipeline>,
    pub(crate) rms_norm: wgpu::ComputePipeline,
    pub(crate) rope: wgpu::ComputePipeline,
    pub(crate) add: wgpu::ComputePipeline,
    pub(crate) swiglu: wgpu::ComputePipeline,
    pub(crate) kv_write: wgpu::ComputePipeline,
    pub(crate) attention: wgpu::ComputePipeline,
}

fn pipeline(gpu: &Gpu, label: &str, src: &str) -> wgpu::ComputePipeline {
    let module = gpu
        .device
        .create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(label),
            source: wgpu::ShaderSource::Wgsl(src.into()),
        });
    gpu.device
        .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(label),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        })
}

impl Kernels {
    /// Compile the kernels; matmul for each of `types` (each must be [`supported`]).
    pub fn new(gpu: &Gpu, types: &[GgmlType]) -> Result<Kernels, GpuError> {
        let mut matmul = HashMap::new();
        for &ty in types {
            if matmul.contains_key(&ty) {
                continue;
            }
            let name = TYPES
                .iter()
                .find(|&&(t, _)| t == ty)
                .map(|&(_, n)| n)
                .ok_or_else(|| GpuError::Unsupported(format!("{ty} weights")))?;
            let dec = decoder(name)
                .ok_or_else(|| GpuError::Unsupported(format!("{ty} weights (no decoder)")))?;
            let src = format!("{dec}\n{MATMUL}");
            matmul.insert(ty, pipeline(gpu, &format!("matmul {name}"), &src));
        }
        let with_step = |label: &str, body: &str| pipeline(gpu, label, &format!("{STEP}\n{body}"));
        let k = Kernels {
            matmul,
            rms_norm: with_step("rms_norm", include_str!("shaders/rms_norm.wgsl")),
            rope: with_step("rope", include_str!("shaders/rope.wgsl")),
            add: with_step("add", include_str!("shaders/add.wgsl")),
            swiglu: with_step("swiglu", include_str!("shaders/swiglu.wgsl")),
            kv_write: with_step("kv_write", include_str!("shaders/kv_write.wgsl")),
            attention: with_step("attention", include_str!("shaders/attention.wgsl")),
        };
        gpu.wait()
            .map_err(|e| GpuError::Unsupported(format!("hearth's shaders: {e}")))?;
        Ok(k)
    }

    pub(crate) fn matmul(&self, ty: GgmlType) -> Result<&wgpu::ComputePipeline, GpuError> {
        self.matmul
            .get(&ty)
            .ok_or_else(|| GpuError::Unsupported(format!("{ty} weights")))
    }
}

/// How many workgroups a dispatch needs, given the call's token counts.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Grid {
    /// `(x, n)`: one workgroup (row) per x, one per token.
    Tokens(u32),
    /// `(x, n)` over the output head's tokens.
    HeadTokens(u32),
    /// `(x, ceil(n / 4))`: matmul row groups by tiles of 4 tokens (`TN` of matmul.wgsl).
    Tiles(u32),
    /// Matmul tiles over the output head's tokens.
    HeadTiles(u32),
    /// `per_token * n` elements, 256 per workgroup.
    Elems(u32),
}

/// One recorded kernel launch.
pub(crate) struct Dispatch {
    pub pipeline: wgpu::ComputePipeline,
    pub bind: wgpu::BindGroup,
    pub grid: Grid,
}

impl Dispatch {
    fn groups(&self, n: u32, out_n: u32) -> (u32, u32) {
        match self.grid {
            Grid::Tokens(x) => (x, n),
            Grid::HeadTokens(x) => (x, out_n),
            Grid::Tiles(x) => (x, n.div_ceil(4)),
            Grid::HeadTiles(x) => (x, out_n.div_ceil(4)),
            Grid::Elems(per) => {
                let g = (per * n).div_ceil(256);
                (g.min(MAX_GROUPS), g.div_ceil(MAX_GROUPS))
            }
        }
    }
}

/// Record `list` into `pass` for `n` tokens (`out_n` of them through the output head).
pub(crate) fn record(pass: &mut wgpu::ComputePass<'_>, list: &[Dispatch], n: u32, out_n: u32) {
    for d in list {
        let (x, y) = d.groups(n, out_n);
        if x == 0 || y == 0 {
            continue;
        }
        pass.set_pipeline(&d.pipeline);
        pass.set_bind_group(0, &d.bind, &[]);
        pass.dispatch_workgroups(x, y, 1);
    }
}

/// A small uniform buffer of u32/f32 words (a kernel's fixed parameters).
pub(crate) fn uniform(gpu: &Gpu, words: &[u32]) -> wgpu::Buffer {
    let mut w = words.to_vec();
    w.resize(w.len().div_ceil(4) * 4, 0);
    gpu.device
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("params"),
            contents: bytemuck::cast_slice(&w),
            usage: wgpu::BufferUsages::UNIFORM,
        })
}

/// A bind group of `buffers` at bindings 0.. for `pipeline`.
pub(crate) fn bind(
    gpu: &Gpu,
    pipeline: &wgpu::ComputePipeline,
    buffers: &[&wgpu::Buffer],
) -> wgpu::BindGroup {
    let layout = pipeline.get_bind_group_layout(0);
    let entries: Vec<wgpu::BindGroupEntry> = buffers
        .iter()
        .enumerate()
        .map(|(i, b)| wgpu::BindGroupEntry {
            binding: i as u32,
            resource: b.as_entire_binding(),
        })
        .collect();
    gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout: &layout,
        entries: &entries,
    })
}

/// `w · x` for `n` tokens on the GPU, alone (tests and benches; the forward pass records its
/// matmuls with the rest of the layer). Returns `(n, w.rows)`.
pub fn matmul_once(
    gpu: &Gpu,
    w: &crate::WeightRef,
    x: &[f32],
    n: usize,
) -> Result<Vec<f32>, GpuError> {
    if x.len() != n * w.cols || n == 0 {
        return Err(GpuError::Runtime(format!(
            "{} activations for {n} tokens of {}",
            x.len(),
            w.cols
        )));
    }
    let k = Kernels::new(gpu, &[w.ty])?;
    let m = crate::GpuMatrix::upload(gpu, w)?;
    let pl = k.matmul(w.ty)?;
    let xb = crate::tensor::f32_buffer(gpu, "x", x);
    let y = crate::tensor::scratch(gpu, "y", n * w.rows);
    let step = uniform(gpu, &[n as u32, 0, 0, 0]);
    let list: Vec<Dispatch> = m
        .parts
        .iter()
        .map(|part| {
            let p = uniform(
                gpu,
                &[
                    part.rows as u32,
                    w.cols as u32,
                    m.row_bytes as u32,
                    w.rows as u32,
                    part.row0 as u32,
                    0,
                ],
            );
            Dispatch {
                pipeline: pl.clone(),
                bind: bind(gpu, pl, &[&part.buffer, &xb, &y, &p, &step]),
                grid: Grid::Tiles(part.rows.div_ceil(64) as u32),
            }
        })
        .collect();
    read_after(gpu, &list, n as u32, &y, n * w.rows)
}

/// Run `list` for `n` tokens in one submission and read `len` f32 of `src` back.
pub(crate) fn read_after(
    gpu: &Gpu,
    list: &[Dispatch],
    n: u32,
    src: &wgpu::Buffer,
    len: usize,
) -> Result<Vec<f32>, GpuError> {
    let bytes = (len * 4) as u64;
    let rb = gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("readback"),
        size: bytes.max(4),
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut enc = gpu.device.create_command_encoder(&Default::default());
    {
        let mut pass = enc.begin_compute_pass(&Default::default());
        record(&mut pass, list, n, 0);
    }
    enc.copy_buffer_to_buffer(src, 0, &rb, 0, bytes);
    gpu.queue.submit([enc.finish()]);
    let slice = rb.slice(..bytes);
    let (tx, rx) = std::sync::mpsc::channel();
    slice.map_async(wgpu::MapMode::Read, move |r| {
        let _ = tx.send(r);
    });
    gpu.wait()?;
    match rx.try_recv() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(GpuError::Runtime(format!("reading back: {e}"))),
        Err(_) => return Err(GpuError::Runtime("reading back: no answer".into())),
    }
    let out = {
        let view = slice
            .get_mapped_range()
            .map_err(|e| GpuError::Runtime(format!("reading back: {e}")))?;
        bytemuck::cast_slice::<u8, f32>(&view).to_vec()
    };
    rb.unmap();
    Ok(out)
}
