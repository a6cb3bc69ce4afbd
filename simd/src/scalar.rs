//! The portable kernel set: hearth-quant's reference code behind the [`MatKernels`] contract.

use hearth_quant::{
    blocks_from_bytes, blocks_from_bytes_mut, Bf16Le, BlockIq4Nl, BlockIq4Xs, BlockQ2K, BlockQ3K,
    BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K, BlockQ8_0, F16Le,
    QuantBlock,
};

use crate::{MatKernels, VecKernels};

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

/// One `vec_dot` per activation row.
fn vec_dot_n<W: QuantBlock>(weights: &[u8], act: &[u8], stride: usize, out: &mut [f32]) {
    let len = weights.len() / size_of::<W>() * size_of::<W::VecDot>();
    for (i, o) in out.iter_mut().enumerate() {
        *o = vec_dot::<W>(weights, &act[i * stride..i * stride + len]);
    }
}

pub(crate) const fn entry<W: QuantBlock>() -> MatKernels {
    MatKernels {
        ty: W::TYPE,
        vec_dot_type: <W::VecDot as QuantBlock>::TYPE,
        quantize_act: quantize_act::<W>,
        vec_dot: vec_dot::<W>,
        vec_dot_n: vec_dot_n::<W>,
        gemm: None,
        gemv: None,
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

/// The portable vector operations: ggml's vector arithmetic lane by lane (the same fused
/// multiply-adds and summation order as the AVX2 set), so every set agrees with it closely.
pub static VEC: VecKernels = VecKernels {
    gemm_f32,
    softmax_exp,
    dot_f16,
    mad_f32,
    mad_f16,
    scale_f16,
    f16_to_f32,
};

fn f16(bits: u16) -> f32 {
    F16Le::from_bits(bits).to_f32()
}

fn to_f16(x: f32) -> u16 {
    F16Le::from_f32(x).to_bits()
}

fn gemm_f32(c: &mut [f32], a: &[f32], b: &[f32], m: usize, k: usize, n: usize) {
    for i in 0..m {
        let c_row = &mut c[i * n..(i + 1) * n];
        for (kk, &a_ik) in a[i * k..(i + 1) * k].iter().enumerate() {
            for (c_ij, &b_kj) in c_row.iter_mut().zip(&b[kk * n..(kk + 1) * n]) {
                *c_ij = a_ik.mul_add(b_kj, *c_ij);
            }
        }
    }
}

/// ggml's vector `expf` (`ggml_v_expf`) for one lane: a degree-5 polynomial after range
/// reduction by `ln 2`, with the same operations and constants, so it rounds as ggml does.
pub fn v_expf(x: f32) -> f32 {
    let c = f32::from_bits;
    let r = c(0x4b40_0000); // 0x1.8p23
    let z = x.mul_add(c(0x3fb8_aa3b), r);
    let n = z - r;
    let b = (-n).mul_add(c(0x35bf_be8e), (-n).mul_add(c(0x3f31_7200), x));
    let e = z.to_bits() << 23;
    let k = f32::from_bits(e.wrapping_add(1f32.to_bits()));
    let u = b * b;
    let j = c(0x3c07_2010)
        .mul_add(b, c(0x3d2b_9f17))
        .mul_add(u, c(0x3e2a_af33).mul_add(b, c(0x3eff_fedb)));
    let j = j.mul_add(u, c(0x3f7f_fff6) * b);
    if n.abs() <= 126.0 || n.is_nan() {
        return j.mul_add(k, k);
    }
    let g: u32 = if n <= 0.0 { 0x8200_0000 } else { 0 };
    let s1 = f32::from_bits(g.wrapping_add(0x7f00_0000));
    let s2 = f32::from_bits(e.wrapping_sub(g));
    if n.abs() > 192.0 {
        s1 * s1
    } else {
        s2.mul_add(j, s2) * s1
    }
}

/// The sum of eight lanes in the order of ggml's AVX2 horizontal add (`hsum` via `movehl`).
fn hsum8(v: &[f32]) -> f32 {
    let s: [f32; 4] = std::array::from_fn(|i| v[i] + v[i + 4]);
    (s[0] + s[2]) + (s[1] + s[3])
}

fn softmax_exp(x: &mut [f32], max: f32) -> f64 {
    let mut sum = 0f64;
    let mut chunks = x.chunks_exact_mut(8);
    for c in &mut chunks {
        for v in c.iter_mut() {
            *v = v_expf(*v - max);
        }
        sum += f64::from(hsum8(c));
    }
    for v in chunks.into_remainder() {
        *v = (*v - max).exp();
        sum += f64::from(*v);
    }
    sum
}

fn dot_f16(x: &[u16], y: &[u16]) -> f32 {
    // Four accumulators of eight lanes over steps of 32, reduced pairwise, then `hadd` order.
    let np = x.len() & !31;
    let mut acc = [[0f32; 8]; 4];
    for i in (0..np).step_by(32) {
        for (j, a) in acc.iter_mut().enumerate() {
            for (l, lane) in a.iter_mut().enumerate() {
                let at = i + j * 8 + l;
                *lane = f16(x[at]).mul_add(f16(y[at]), *lane);
            }
        }
    }
    let lanes: [f32; 8] =
        std::array::from_fn(|l| (acc[0][l] + acc[2][l]) + (acc[1][l] + acc[3][l]));
    let t0: [f32; 4] = std::array::from_fn(|i| lanes[i] + lanes[i + 4]);
    let mut sum = f64::from((t0[0] + t0[1]) + (t0[2] + t0[3]));
    for i in np..x.len() {
        sum += f64::from(f16(x[i]) * f16(y[i]));
    }
    sum as f32
}

fn mad_f32(y: &mut [f32], x: &[f32], v: f32) {
    for (a, &b) in y.iter_mut().zip(x) {
        *a = b.mul_add(v, *a);
    }
}

fn mad_f16(y: &mut [u16], x: &[u16], v: f32) {
    for (a, &b) in y.iter_mut().zip(x) {
        *a = to_f16(f16(b).mul_add(v, f16(*a)));
    }
}

fn scale_f16(y: &mut [u16], v: f32) {
    for a in y.iter_mut() {
        *a = to_f16(f16(*a) * v);
    }
}

fn f16_to_f32(src: &[u16], dst: &mut [f32]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = f16(s);
    }
}
