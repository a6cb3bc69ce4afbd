//! The portable kernel set: hearth-quant's reference code behind the [`MatKernels`] contract.

use hearth_quant::{
    blocks_from_bytes, blocks_from_bytes_mut, Bf16Le, BlockIq4Nl, BlockIq4Xs, BlockQ2K, BlockQ3K,
    BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K, BlockQ8_0, F16Le,
    QuantBlock,
};

use crate::MatKernels;

fn quantize_act<W: QuantBlock>(src: &[f32], dst: &mut [u8]) {
    // The caller sized and aligned `dst` for exactly this row; a failure here is a bug in the
    // caller, never a property of the input file.
    let blocks = blocks_from_bytes_mut::<W::VecDot>(dst).expect("activation row layout");
    <W::VecDot as QuantBlock>::quantize(src, blocks).expect("activation type quantizes");
}

fn vec_dot<W: QuantBlock>(weights: &[u8], act: &[u8]) -> f32 {
    let w = blocks_from_bytes::<W>(weights).expect("weight row layout");
    let a = blocks_from_bytes::<W::VecDot>(act).expect("activation row layout");
    W::vec_dot(w, a)
}

pub(crate) const fn entry<W: QuantBlock>() -> MatKernels {
    MatKernels {
        ty: W::TYPE,
        vec_dot_type: <W::VecDot as QuantBlock>::TYPE,
        quantize_act: quantize_act::<W>,
        vec_dot: vec_dot::<W>,
    }
}

/// Every weight type hearth multiplies by.
pub static TABLE: [MatKernels; 15] = [
    entry::<f32>(),
    entry::<F16Le>(),
    entry::<Bf16Le>(),
    entry::<BlockQ4_0>(),
    entry::<BlockQ4_1>(),
    entry::<BlockQ5_0>(),
    entry::<BlockQ5_1>(),
    entry::<BlockQ8_0>(),
    entry::<BlockQ2K>(),
    entry::<BlockQ3K>(),
    entry::<BlockQ4K>(),
    entry::<BlockQ5K>(),
    entry::<BlockQ6K>(),
    entry::<BlockIq4Nl>(),
    entry::<BlockIq4Xs>(),
];
