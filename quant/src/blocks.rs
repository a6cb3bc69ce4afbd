//! The block layouts, byte for byte as ggml stores them (`ggml/src/ggml-common.h`).
//!
//! Every block a GGUF file can hold has alignment 1: f16 scales are kept as their two
//! little-endian bytes ([`F16Le`]) and ggml's `uint32_t qh` / `uint16_t scales_h` as byte arrays.
//! A `&[BlockQ4K]` can therefore view an mmapped file at any offset, and the meaning of the bytes
//! is the same on every host (GGUF is little-endian).
//!
//! [`BlockQ8K`] is the exception: it is an activation type that only ever lives in memory we
//! allocate, so it keeps ggml's natural layout (`f32 d`, `i16 bsums`, alignment 4) and views of it
//! check alignment.

use std::mem::{align_of, size_of};

use crate::{QuantBlock, QuantError};

/// Elements per super-block of the K-quants and IQ4_XS.
pub const QK_K: usize = 256;
/// Elements per block of the legacy types and IQ4_NL (ggml names each one separately).
pub const QK4_0: usize = 32;
pub const QK4_1: usize = 32;
pub const QK5_0: usize = 32;
pub const QK5_1: usize = 32;
pub const QK8_0: usize = 32;
pub const QK8_1: usize = 32;
pub const QK4_NL: usize = 32;

/// An IEEE half stored as its two little-endian bytes, so blocks holding it have alignment 1.
#[repr(transparent)]
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct F16Le(pub [u8; 2]);

impl F16Le {
    pub const ZERO: F16Le = F16Le([0, 0]);

    pub fn from_bits(bits: u16) -> Self {
        F16Le(bits.to_le_bytes())
    }

    pub fn to_bits(self) -> u16 {
        u16::from_le_bytes(self.0)
    }

    /// Round to nearest even, as ggml's `GGML_FP32_TO_FP16` (F16C `vcvtps2ph` or its C twin).
    pub fn from_f32(x: f32) -> Self {
        Self::from_bits(half::f16::from_f32(x).to_bits())
    }

    /// Exact widening, as `GGML_FP16_TO_FP32`.
    pub fn to_f32(self) -> f32 {
        half::f16::from_bits(self.to_bits()).to_f32()
    }
}

impl std::fmt::Debug for F16Le {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}f16", self.to_f32())
    }
}

/// Types whose every bit pattern is a valid value and which have no padding, so a byte
/// slice of the right length and alignment can be viewed as a slice of them.
///
/// # Safety
/// Implementors must be `#[repr(C)]` or `#[repr(transparent)]` over fields that are themselves
/// `Pod` (integers, floats, arrays of them), with no padding bytes anywhere.
pub unsafe trait Pod: Copy + Send + Sync + 'static {
    /// The all-zero value (a block with scale 0, so all its values are 0).
    fn zeroed() -> Self {
        // SAFETY: `Pod` promises that every bit pattern, all-zero included, is a valid `Self`.
        unsafe { std::mem::zeroed() }
    }
}

// SAFETY: f32 is a plain 4-byte float: no padding, every bit pattern is a valid value (NaNs too).
unsafe impl Pod for f32 {}
// SAFETY: `F16Le` is repr(transparent) over `[u8; 2]`.
unsafe impl Pod for F16Le {}

/// Declares a block struct, asserts its size against ggml's at compile time and marks it `Pod`.
macro_rules! block {
    ($(#[$meta:meta])* $name:ident, bytes = $bytes:expr, align = $align:expr,
     { $($(#[$fmeta:meta])* $field:ident : $fty:ty),* $(,)? }) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, PartialEq)]
        pub struct $name {
            $($(#[$fmeta])* pub $field: $fty),*
        }
        const _: () = assert!(size_of::<$name>() == $bytes);
        const _: () = assert!(align_of::<$name>() == $align);
        // The sum of the field sizes equals the struct size, so there is no padding.
        const _: () = assert!(0 $(+ size_of::<$fty>())* == $bytes);
        // SAFETY: repr(C), no padding (asserted above), and every field is an integer, float,
        // `F16Le` or an array of those, for which every bit pattern is valid.
        unsafe impl Pod for $name {}
    };
}

block!(
    /// `block_q4_0`: 32 weights `d * (q - 8)`, q a nibble.
    BlockQ4_0, bytes = 18, align = 1, {
        d: F16Le,
        /// Low nibbles hold elements 0..16, high nibbles 16..32.
        qs: [u8; QK4_0 / 2],
    }
);

block!(
    /// `block_q4_1`: 32 weights `d * q + m`, q a nibble.
    BlockQ4_1, bytes = 20, align = 1, {
        d: F16Le,
        m: F16Le,
        qs: [u8; QK4_1 / 2],
    }
);

block!(
    /// `block_q5_0`: 32 weights `d * (q - 16)`, q five bits.
    BlockQ5_0, bytes = 22, align = 1, {
        d: F16Le,
        /// ggml's `uint32_t qh` (little-endian): bit j is the fifth bit of element j.
        qh: [u8; 4],
        qs: [u8; QK5_0 / 2],
    }
);

block!(
    /// `block_q5_1`: 32 weights `d * q + m`, q five bits.
    BlockQ5_1, bytes = 24, align = 1, {
        d: F16Le,
        m: F16Le,
        qh: [u8; 4],
        qs: [u8; QK5_1 / 2],
    }
);

block!(
    /// `block_q8_0`: 32 weights `d * q`; also the activation type of the legacy 32-blocks.
    BlockQ8_0, bytes = 34, align = 1, {
        d: F16Le,
        qs: [i8; QK8_0],
    }
);

block!(
    /// `block_q8_1`: the activations of Q4_1/Q5_1, with `s = d * sum(qs)` so the weights' min
    /// term costs one multiply per block.
    BlockQ8_1, bytes = 36, align = 1, {
        d: F16Le,
        s: F16Le,
        qs: [i8; QK8_1],
    }
);

block!(
    /// `block_q2_K`: 16 sub-blocks of 16, `d * sc * q - dmin * m`, q two bits, sc/m 4 bits each.
    BlockQ2K, bytes = 84, align = 1, {
        /// Low nibble: scale, high nibble: min, one byte per 16-element sub-block.
        scales: [u8; QK_K / 16],
        qs: [u8; QK_K / 4],
        d: F16Le,
        dmin: F16Le,
    }
);

block!(
    /// `block_q3_K`: 16 sub-blocks of 16, `d * (sc - 32) * (q - 4 * !hbit)`, sc six bits.
    BlockQ3K, bytes = 110, align = 1, {
        hmask: [u8; QK_K / 8],
        qs: [u8; QK_K / 4],
        /// Sixteen 6-bit scales packed in 12 bytes (see [`crate::q3k_scales`]).
        scales: [u8; 12],
        d: F16Le,
    }
);

block!(
    /// `block_q4_K`: 8 sub-blocks of 32, `d * sc * q - dmin * m`, q a nibble, sc/m six bits.
    BlockQ4K, bytes = 144, align = 1, {
        d: F16Le,
        dmin: F16Le,
        /// Eight 6-bit scales and eight 6-bit mins in 12 bytes (see [`crate::scale_min_k4`]).
        scales: [u8; 12],
        qs: [u8; QK_K / 2],
    }
);

block!(
    /// `block_q5_K`: as Q4_K with a fifth bit per weight in `qh`.
    BlockQ5K, bytes = 176, align = 1, {
        d: F16Le,
        dmin: F16Le,
        scales: [u8; 12],
        qh: [u8; QK_K / 8],
        qs: [u8; QK_K / 2],
    }
);

block!(
    /// `block_q6_K`: 16 sub-blocks of 16, `d * sc * (q - 32)`, q six bits, sc a signed byte.
    BlockQ6K, bytes = 210, align = 1, {
        ql: [u8; QK_K / 2],
        qh: [u8; QK_K / 4],
        scales: [i8; QK_K / 16],
        d: F16Le,
    }
);

block!(
    /// `block_q8_K`: the activations of the K-quants and IQ4_XS. `d` is a full f32 and
    /// `bsums` holds the sum of each 16 quants, so the weights' min terms need no pass over `qs`.
    /// Natural alignment (4): it is produced in memory, never read from a file.
    BlockQ8K, bytes = 292, align = 4, {
        d: f32,
        qs: [i8; QK_K],
        bsums: [i16; QK_K / 16],
    }
);

block!(
    /// `block_iq4_nl`: 32 weights `d * KVALUES_IQ4NL[q]`, q a nibble.
    BlockIq4Nl, bytes = 18, align = 1, {
        d: F16Le,
        qs: [u8; QK4_NL / 2],
    }
);

block!(
    /// `block_iq4_xs`: 8 sub-blocks of 32, `d * (sc - 32) * KVALUES_IQ4NL[q]`, sc six bits.
    BlockIq4Xs, bytes = 136, align = 1, {
        d: F16Le,
        /// ggml's `uint16_t scales_h` (little-endian): two high scale bits per sub-block.
        scales_h: [u8; 2],
        /// Low four scale bits, two sub-blocks per byte.
        scales_l: [u8; QK_K / 64],
        qs: [u8; QK_K / 2],
    }
);

/// Views `bytes` as blocks of `B`: the length must be a whole number of blocks and, for the
/// two types with alignment above 1 (`f32`, [`BlockQ8K`]), the start must be aligned.
pub fn blocks_from_bytes<B: QuantBlock>(bytes: &[u8]) -> Result<&[B], QuantError> {
    let n = check_view::<B>(bytes)?;
    // SAFETY: `check_view` verified that `bytes` holds exactly `n * size_of::<B>()` bytes and is
    // aligned for `B`; `B: Pod` makes every bit pattern a valid `B`; the lifetime is carried over.
    Ok(unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<B>(), n) })
}

/// Mutable twin of [`blocks_from_bytes`], for quantizing straight into an output buffer.
pub fn blocks_from_bytes_mut<B: QuantBlock>(bytes: &mut [u8]) -> Result<&mut [B], QuantError> {
    let n = check_view::<B>(bytes)?;
    // SAFETY: as in `blocks_from_bytes`; the exclusive borrow of `bytes` moves to the result, and
    // any value written through it is a valid byte pattern because `B: Pod` has no padding.
    Ok(unsafe { std::slice::from_raw_parts_mut(bytes.as_mut_ptr().cast::<B>(), n) })
}

/// The bytes of a block slice, as they would be stored in a file.
pub fn blocks_as_bytes<B: Pod>(blocks: &[B]) -> &[u8] {
    // SAFETY: `B: Pod` has no padding, so all `size_of_val(blocks)` bytes are initialized; u8 has
    // alignment 1 and the lifetime is carried over.
    unsafe { std::slice::from_raw_parts(blocks.as_ptr().cast::<u8>(), size_of_val(blocks)) }
}

/// Mutable bytes of a block slice; any bytes written form valid blocks since `B: Pod`.
pub fn blocks_as_bytes_mut<B: Pod>(blocks: &mut [B]) -> &mut [u8] {
    // SAFETY: as in `blocks_as_bytes`; every bit pattern is a valid `B`, so writes through the
    // byte view cannot create an invalid value.
    unsafe { std::slice::from_raw_parts_mut(blocks.as_mut_ptr().cast::<u8>(), size_of_val(blocks)) }
}

/// The number of whole `B` blocks in `bytes`, or why they cannot be viewed as such.
fn check_view<B: QuantBlock>(bytes: &[u8]) -> Result<usize, QuantError> {
    let size = size_of::<B>();
    if !bytes.len().is_multiple_of(size) {
        return Err(QuantError::RaggedBytes {
            ty: B::TYPE,
            len: bytes.len(),
            block_bytes: size,
        });
    }
    if bytes.as_ptr().align_offset(align_of::<B>()) != 0 {
        return Err(QuantError::Misaligned {
            ty: B::TYPE,
            align: align_of::<B>(),
        });
    }
    Ok(bytes.len() / size)
}

/// The block sizes above agree with the type table in `types.rs`.
#[cfg(test)]
mod tests {
    use super::*;

    fn check<B: QuantBlock>() {
        assert_eq!(size_of::<B>(), B::TYPE.block_bytes(), "{}", B::TYPE);
        assert_eq!(B::BLOCK_ELEMS, B::TYPE.block_elems(), "{}", B::TYPE);
    }

    #[test]
    fn sizes_match_the_type_table() {
        check::<f32>();
        check::<F16Le>();
        check::<crate::Bf16Le>();
        check::<BlockQ4_0>();
        check::<BlockQ4_1>();
        check::<BlockQ5_0>();
        check::<BlockQ5_1>();
        check::<BlockQ8_0>();
        check::<BlockQ8_1>();
        check::<BlockQ2K>();
        check::<BlockQ3K>();
        check::<BlockQ4K>();
        check::<BlockQ5K>();
        check::<BlockQ6K>();
        check::<BlockQ8K>();
        check::<BlockIq4Nl>();
        check::<BlockIq4Xs>();
    }

    #[test]
    fn views_check_length_and_alignment() {
        let bytes = vec![0u8; 3 * 144 + 1];
        assert_eq!(
            blocks_from_bytes::<BlockQ4K>(&bytes[..288]).map(|b| b.len()),
            Ok(2)
        );
        // Alignment 1: any offset works.
        assert_eq!(
            blocks_from_bytes::<BlockQ4K>(&bytes[1..289]).map(|b| b.len()),
            Ok(2)
        );
        assert!(matches!(
            blocks_from_bytes::<BlockQ4K>(&bytes[..100]),
            Err(QuantError::RaggedBytes { len: 100, .. })
        ));
        let q8k = vec![BlockQ8K::zeroed(); 2];
        let raw = blocks_as_bytes(&q8k);
        assert_eq!(blocks_from_bytes::<BlockQ8K>(raw).map(|b| b.len()), Ok(2));
        let mut shifted = vec![0u8; raw.len() + 1];
        let start = if shifted.as_ptr().align_offset(4) == 0 {
            1
        } else {
            0
        };
        shifted.truncate(start + raw.len());
        assert!(matches!(
            blocks_from_bytes::<BlockQ8K>(&shifted[start..]),
            Err(QuantError::Misaligned { align: 4, .. })
        ));
    }

    #[test]
    fn f16le_round_trips() {
        assert_eq!(F16Le::from_f32(1.0).to_bits(), 0x3c00);
        assert_eq!(F16Le::from_bits(0x3c00).0, [0x00, 0x3c]);
        assert_eq!(F16Le::from_f32(65520.0).to_f32(), f32::INFINITY);
        assert!(F16Le::from_bits(0x7e00).to_f32().is_nan());
        assert_eq!(F16Le::from_bits(0x0001).to_f32(), 2f32.powi(-24));
    }
}
