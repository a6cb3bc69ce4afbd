//! Where a file's bytes live: a read-only memory map, or (for `from_bytes`) an owned buffer
//! aligned like a mapping would be, so code that casts tensor data to wider types behaves the
//! same on both.

use std::fs::File;
use std::io;

use memmap2::Mmap;

/// The alignment of owned buffers: a cache line, enough for any SIMD load and any block type.
const OWNED_ALIGN: usize = 64;

#[derive(Clone, Copy)]
#[repr(C, align(64))]
pub(crate) struct Chunk([u8; OWNED_ALIGN]);

pub(crate) enum Storage {
    Mapped(Mmap),
    Owned { chunks: Vec<Chunk>, len: usize },
}

impl Storage {
    /// Maps the whole file read-only.
    pub(crate) fn map(file: &File) -> io::Result<Storage> {
        // SAFETY: the mapping is read-only and private to this process's view; memmap2 checks
        // the length and handles empty files. The remaining hazard, another process truncating
        // or rewriting the file while it is mapped, cannot be excluded by any check here; it is
        // documented in the module docs (same exposure as llama.cpp's mmap loader).
        let map = unsafe { Mmap::map(file)? };
        Ok(Storage::Mapped(map))
    }

    /// Copies `bytes` into a 64-byte aligned buffer.
    pub(crate) fn owned(bytes: &[u8]) -> Storage {
        let mut chunks = vec![Chunk([0; OWNED_ALIGN]); bytes.len().div_ceil(OWNED_ALIGN)];
        for (chunk, src) in chunks.iter_mut().zip(bytes.chunks(OWNED_ALIGN)) {
            if let Some(dst) = chunk.0.get_mut(..src.len()) {
                dst.copy_from_slice(src);
            }
        }
        Storage::Owned {
            chunks,
            len: bytes.len(),
        }
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Storage::Mapped(map) => map,
            Storage::Owned { chunks, len } => {
                let len = (*len).min(chunks.len() * OWNED_ALIGN);
                // SAFETY: `Chunk` is `repr(C)` around a `[u8; 64]` with no padding (size 64,
                // align 64), so the Vec's buffer is `chunks.len() * 64` initialized bytes; `len`
                // is clamped to that; `u8` has alignment 1; the slice borrows `self`, which owns
                // the Vec, so it cannot outlive or alias a mutation of it.
                unsafe { std::slice::from_raw_parts(chunks.as_ptr().cast::<u8>(), len) }
            }
        }
    }
}
