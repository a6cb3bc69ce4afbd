//! Entry points by type id: one `match` on the type ([`visit_block_type`]) hands off to the
//! generic code of [`QuantBlock`]. Everything here checks lengths and returns errors; nothing
//! panics on what a file or a caller passes in.

use std::borrow::Cow;
use std::mem::size_of;

use crate::{blocks_as_bytes_mut, blocks_from_bytes, blocks_from_bytes_mut};
use crate::{
    Bf16Le, BlockIq4Nl, BlockIq4Xs, BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K,
    BlockQ5_0, BlockQ5_1, BlockQ6K, BlockQ8K, BlockQ8_0, BlockQ8_1, F16Le, GgmlType, QuantBlock,
    QuantError,
};

/// Generic code to run for the block type a [`GgmlType`] names (see [`visit_block_type`]).
pub trait BlockVisitor {
    type Output;
    fn visit<B: QuantBlock>(self) -> Self::Output;
}

/// The one `match` on the tensor type: calls `visitor.visit::<B>()` with the block type of `ty`,
/// or returns [`QuantError::Unsupported`] for types without reference code here.
pub fn visit_block_type<V: BlockVisitor>(
    ty: GgmlType,
    visitor: V,
) -> Result<V::Output, QuantError> {
    use GgmlType as T;
    Ok(match ty {
        T::F32 => visitor.visit::<f32>(),
        T::F16 => visitor.visit::<F16Le>(),
        T::Bf16 => visitor.visit::<Bf16Le>(),
        T::Q4_0 => visitor.visit::<BlockQ4_0>(),
        T::Q4_1 => visitor.visit::<BlockQ4_1>(),
        T::Q5_0 => visitor.visit::<BlockQ5_0>(),
        T::Q5_1 => visitor.visit::<BlockQ5_1>(),
        T::Q8_0 => visitor.visit::<BlockQ8_0>(),
        T::Q8_1 => visitor.visit::<BlockQ8_1>(),
        T::Q2K => visitor.visit::<BlockQ2K>(),
        T::Q3K => visitor.visit::<BlockQ3K>(),
        T::Q4K => visitor.visit::<BlockQ4K>(),
        T::Q5K => visitor.visit::<BlockQ5K>(),
        T::Q6K => visitor.visit::<BlockQ6K>(),
        T::Q8K => visitor.visit::<BlockQ8K>(),
        T::Iq4Nl => visitor.visit::<BlockIq4Nl>(),
        T::Iq4Xs => visitor.visit::<BlockIq4Xs>(),
        _ => return Err(QuantError::Unsupported(ty)),
    })
}

/// The activation type ggml quantizes the other operand to before a dot with `ty` weights
/// (`type_traits_cpu[ty].vec_dot_type`). Types ggml gives no dot product map as in ggml's
/// zero-initialised table, to F32, except Q8_K, which maps to itself as in [`QuantBlock`].
pub fn vec_dot_type(ty: GgmlType) -> GgmlType {
    use GgmlType as T;
    match ty {
        T::F16 => T::F16,
        T::Bf16 => T::Bf16,
        T::Q4_0 | T::Q5_0 | T::Q8_0 | T::Iq4Nl | T::Mxfp4 => T::Q8_0,
        T::Q4_1 | T::Q5_1 | T::Q8_1 => T::Q8_1,
        T::Q2K | T::Q3K | T::Q4K | T::Q5K | T::Q6K | T::Q8K => T::Q8K,
        T::Iq2Xxs | T::Iq2Xs | T::Iq2S | T::Iq3Xxs | T::Iq3S | T::Iq1S | T::Iq1M | T::Iq4Xs => {
            T::Q8K
        }
        T::Tq1_0 | T::Tq2_0 => T::Q8K,
        T::F32 | T::I8 | T::I16 | T::I32 | T::I64 | T::F64 => T::F32,
    }
}

/// Whether [`quantize_row`] can produce `ty`.
pub fn can_quantize(ty: GgmlType) -> bool {
    struct CanQuantize;
    impl BlockVisitor for CanQuantize {
        type Output = bool;
        fn visit<B: QuantBlock>(self) -> bool {
            B::CAN_QUANTIZE
        }
    }
    visit_block_type(ty, CanQuantize).unwrap_or(false)
}

/// Views `bytes` as blocks, copying into an aligned buffer in the rare case the type needs
/// alignment (`F32`, `Q8_K`) and the bytes lack it.
fn read_blocks<B: QuantBlock>(bytes: &[u8]) -> Result<Cow<'_, [B]>, QuantError> {
    match blocks_from_bytes::<B>(bytes) {
        Ok(blocks) => Ok(Cow::Borrowed(blocks)),
        Err(QuantError::Misaligned { .. }) => {
            let mut owned = vec![B::zeroed(); bytes.len() / size_of::<B>()];
            blocks_as_bytes_mut(&mut owned).copy_from_slice(bytes);
            Ok(Cow::Owned(owned))
        }
        Err(e) => Err(e),
    }
}

fn mismatch(ty: GgmlType, what: &'static str, expected: usize, got: usize) -> QuantError {
    QuantError::LengthMismatch {
        ty,
        what,
        expected,
        got,
    }
}

/// Dequantizes a row of `ty` stored in `bytes` into `out`, which must hold exactly the number
/// of elements the bytes encode.
pub fn dequantize_row(ty: GgmlType, bytes: &[u8], out: &mut [f32]) -> Result<(), QuantError> {
    struct Dequantize<'a> {
        bytes: &'a [u8],
        out: &'a mut [f32],
    }
    impl BlockVisitor for Dequantize<'_> {
        type Output = Result<(), QuantError>;
        fn visit<B: QuantBlock>(self) -> Self::Output {
            let blocks = read_blocks::<B>(self.bytes)?;
            let n = blocks.len() * B::BLOCK_ELEMS;
            if self.out.len() != n {
                return Err(mismatch(B::TYPE, "output", n, self.out.len()));
            }
            B::dequantize(&blocks, self.out);
            Ok(())
        }
    }
    visit_block_type(ty, Dequantize { bytes, out })?
}

/// Quantizes `src` into `out` as ggml's `quantize_row_<ty>_ref`; `out` must be exactly
/// `ty.bytes_for(src.len())` bytes. Types without a reference quantizer are `Unsupported`.
pub fn quantize_row(ty: GgmlType, src: &[f32], out: &mut [u8]) -> Result<(), QuantError> {
    struct Quantize<'a> {
        src: &'a [f32],
        out: &'a mut [u8],
    }
    impl BlockVisitor for Quantize<'_> {
        type Output = Result<(), QuantError>;
        fn visit<B: QuantBlock>(self) -> Self::Output {
            if !B::CAN_QUANTIZE {
                return Err(QuantError::Unsupported(B::TYPE));
            }
            if !self.src.len().is_multiple_of(B::BLOCK_ELEMS) {
                return Err(QuantError::RaggedElems {
                    ty: B::TYPE,
                    len: self.src.len(),
                    block_elems: B::BLOCK_ELEMS,
                });
            }
            let n_blocks = self.src.len() / B::BLOCK_ELEMS;
            let n_bytes = n_blocks * size_of::<B>();
            if self.out.len() != n_bytes {
                return Err(mismatch(B::TYPE, "output bytes", n_bytes, self.out.len()));
            }
            match blocks_from_bytes_mut::<B>(self.out) {
                Ok(blocks) => B::quantize(self.src, blocks),
                Err(QuantError::Misaligned { .. }) => {
                    let mut blocks = vec![B::zeroed(); n_blocks];
                    B::quantize(self.src, &mut blocks)?;
                    self.out.copy_from_slice(crate::blocks_as_bytes(&blocks));
                    Ok(())
                }
                Err(e) => Err(e),
            }
        }
    }
    visit_block_type(ty, Quantize { src, out })?
}

/// The dot product of a row of `ty` weights with a row of activations already quantized to
/// [`vec_dot_type`]`(ty)`, as ggml's generic `vec_dot`. Both must encode the same element count.
pub fn vec_dot_row(ty: GgmlType, weights: &[u8], act: &[u8]) -> Result<f32, QuantError> {
    struct VecDot<'a> {
        weights: &'a [u8],
        act: &'a [u8],
    }
    impl BlockVisitor for VecDot<'_> {
        type Output = Result<f32, QuantError>;
        fn visit<B: QuantBlock>(self) -> Self::Output {
            let w = read_blocks::<B>(self.weights)?;
            let a = read_blocks::<B::VecDot>(self.act)?;
            let n_w = w.len() * B::BLOCK_ELEMS;
            let n_a = a.len() * <B::VecDot as QuantBlock>::BLOCK_ELEMS;
            if n_w != n_a || w.len() != a.len() {
                return Err(mismatch(B::TYPE, "activation row", n_w, n_a));
            }
            Ok(B::vec_dot(&w, &a))
        }
    }
    visit_block_type(ty, VecDot { weights, act })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vec_dot_type_agrees_with_the_trait() {
        struct Check;
        impl BlockVisitor for Check {
            type Output = ();
            fn visit<B: QuantBlock>(self) {
                assert_eq!(vec_dot_type(B::TYPE), <B::VecDot as QuantBlock>::TYPE);
            }
        }
        for ty in GgmlType::all() {
            let _ = visit_block_type(ty, Check);
        }
    }

    #[test]
    fn unsupported_types_are_errors() {
        let mut out = [0.0f32; 256];
        assert_eq!(
            dequantize_row(GgmlType::Iq2Xxs, &[0; 66], &mut out),
            Err(QuantError::Unsupported(GgmlType::Iq2Xxs))
        );
        assert_eq!(
            quantize_row(GgmlType::Iq2Xxs, &[0.0; 256], &mut [0; 66]),
            Err(QuantError::Unsupported(GgmlType::Iq2Xxs))
        );
        assert!(can_quantize(GgmlType::Iq4Nl));
        assert!(!can_quantize(GgmlType::Iq3S));
        assert!(can_quantize(GgmlType::Q4K));
        assert!(!can_quantize(GgmlType::I32));
    }
}
