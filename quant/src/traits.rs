//! The per-block-type trait, in the spirit of candle's `GgmlType` and ggml's type traits table.

use crate::{GgmlType, Pod, QuantError};

/// One ggml element or block type and its scalar reference code.
///
/// The typed methods take slices whose lengths the caller has already checked (they come from
/// one tensor row); they panic on mismatched lengths, like `copy_from_slice`. The functions in
/// [`crate::dequantize_row`] & co. check first and return errors instead.
pub trait QuantBlock: Pod {
    /// The ggml type this block stores.
    const TYPE: GgmlType;
    /// Elements per block (1 for the float types).
    const BLOCK_ELEMS: usize;
    /// The activation type ggml pairs with this one in a dot product (`vec_dot_type`).
    type VecDot: QuantBlock;
    /// Whether [`QuantBlock::quantize`] is implemented.
    const CAN_QUANTIZE: bool = false;

    /// Writes the `BLOCK_ELEMS` values of one block to `out[..BLOCK_ELEMS]`.
    fn dequantize_block(&self, out: &mut [f32]);

    /// Dequantizes a row; `out.len()` must be `blocks.len() * BLOCK_ELEMS`.
    fn dequantize(blocks: &[Self], out: &mut [f32]) {
        assert_row_len(Self::TYPE, blocks.len(), Self::BLOCK_ELEMS, out.len());
        for (block, out) in blocks.iter().zip(out.chunks_exact_mut(Self::BLOCK_ELEMS)) {
            block.dequantize_block(out);
        }
    }

    /// The dot product of a row of weights with a row of activations of the same length,
    /// accumulated exactly as ggml's generic `ggml_vec_dot_<type>_<vec_dot_type>`.
    fn vec_dot(blocks: &[Self], act: &[Self::VecDot]) -> f32;

    /// Quantizes a row as ggml's `quantize_row_<type>_ref`; `src.len()` must be
    /// `dst.len() * BLOCK_ELEMS`. Types without a reference quantizer return `Unsupported`.
    fn quantize(src: &[f32], dst: &mut [Self]) -> Result<(), QuantError> {
        let _ = (src, dst);
        Err(QuantError::Unsupported(Self::TYPE))
    }
}

/// Panics unless `n_blocks` blocks of `block_elems` hold exactly `n_values` values.
pub(crate) fn assert_row_len(ty: GgmlType, n_blocks: usize, block_elems: usize, n_values: usize) {
    assert_eq!(
        n_blocks * block_elems,
        n_values,
        "{ty}: {n_blocks} blocks of {block_elems} do not hold {n_values} values"
    );
}

/// Panics unless a weight row and its activation row have the same number of blocks.
pub(crate) fn assert_dot_len(ty: GgmlType, n_weights: usize, n_act: usize) {
    assert_eq!(
        n_weights, n_act,
        "{ty}: vec_dot of {n_weights} weight blocks with {n_act} activation blocks"
    );
}
