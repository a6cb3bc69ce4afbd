//! Weights on the GPU: uploaded once, kept quantized, split by rows where a tensor is larger
//! than the device's largest storage binding (128 MiB on lavapipe) or than a dispatch's row count.

use hearth_quant::GgmlType;
use wgpu::util::DeviceExt;

use crate::{Gpu, GpuError};

/// A 2-D weight in host memory: `rows` rows of `cols` elements of type `ty`, row after row.
#[derive(Clone, Copy, Debug)]
pub struct WeightRef<'a> {
    pub ty: GgmlType,
    pub rows: usize,
    pub cols: usize,
    pub data: &'a [u8],
}

/// One row range of a weight in its own buffer.
pub(crate) struct Part {
    pub buffer: wgpu::Buffer,
    pub row0: usize,
    pub rows: usize,
}

/// A quantized weight in GPU memory.
pub struct GpuMatrix {
    pub ty: GgmlType,
    pub rows: usize,
    pub cols: usize,
    pub(crate) row_bytes: usize,
    pub(crate) parts: Vec<Part>,
}

/// Rows one matmul dispatch may cover (the x dimension of its grid).
const MAX_ROWS_PER_PART: usize = 65535;

impl GpuMatrix {
    /// Upload `w`, split into parts that each fit one storage binding.
    pub fn upload(gpu: &Gpu, w: &WeightRef) -> Result<GpuMatrix, GpuError> {
        if !crate::kernels::supported(w.ty) {
            return Err(GpuError::Unsupported(format!("{} weights", w.ty)));
        }
        let row_bytes =
            w.ty.bytes_for(w.cols as u64)
                .filter(|_| w.cols.is_multiple_of(32) && w.cols.is_multiple_of(w.ty.block_elems()))
                .ok_or_else(|| GpuError::Unsupported(format!("{} columns of {}", w.cols, w.ty)))?
                as usize;
        if w.data.len() != row_bytes * w.rows {
            return Err(GpuError::Unsupported(format!(
                "a {}x{} {} weight of {} bytes",
                w.rows,
                w.cols,
                w.ty,
                w.data.len()
            )));
        }
        // Each part is padded by a word: the decoders may read one word past a block's end.
        let max = gpu.max_binding().saturating_sub(8) as usize;
        let per_part = (max / row_bytes.max(1)).min(MAX_ROWS_PER_PART);
        if per_part == 0 {
            return Err(GpuError::TooSmall(format!(
                "one row of {row_bytes} bytes exceeds the largest storage binding"
            )));
        }
        let mut parts = Vec::new();
        let mut row0 = 0;
        while row0 < w.rows {
            let rows = per_part.min(w.rows - row0);
            let bytes = &w.data[row0 * row_bytes..(row0 + rows) * row_bytes];
            let mut padded = Vec::with_capacity(bytes.len().div_ceil(4) * 4 + 4);
            padded.extend_from_slice(bytes);
            padded.resize(bytes.len().div_ceil(4) * 4 + 4, 0);
            let buffer = gpu
                .device
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some("weight"),
                    contents: &padded,
                    usage: wgpu::BufferUsages::STORAGE,
                });
            parts.push(Part { buffer, row0, rows });
            row0 += rows;
        }
        Ok(GpuMatrix {
            ty: w.ty,
            rows: w.rows,
            cols: w.cols,
            row_bytes,
            parts,
        })
    }

    /// Buffers the weight was split into.
    pub fn n_parts(&self) -> usize {
        self.parts.len()
    }

    /// Bytes this weight takes on the GPU.
    pub fn bytes(&self) -> u64 {
        (self.row_bytes * self.rows) as u64
    }
}

/// An f32 storage buffer holding `data`.
pub(crate) fn f32_buffer(gpu: &Gpu, label: &str, data: &[f32]) -> wgpu::Buffer {
    gpu.device
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents: bytemuck::cast_slice(data),
            usage: wgpu::BufferUsages::STORAGE,
        })
}

/// A zeroed storage buffer of `len` f32 (or packed f16 pairs), at least one word.
pub(crate) fn scratch(gpu: &Gpu, label: &str, len: usize) -> wgpu::Buffer {
    gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: (len.max(1) * 4) as u64,
        usage: wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_SRC
            | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    })
}
