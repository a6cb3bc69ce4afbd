//! Every kernel of every set this CPU runs against the scalar reference (hearth-quant's code).
//!
//! The integer part of each block's dot product is exact in both, so the only difference allowed
//! is the order of the f32 additions: at most 1e-5 of `sum |w_i * a_i|` (computed in f64).

use hearth_quant::{dequantize_row, quantize_row, GgmlType};
use hearth_simd::{available, scalar, Gemm, MatKernels};

/// xorshift64*: deterministic data without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Roughly normal, with the occasional outlier real activations have.
    fn value(&mut self) -> f32 {
        let u: f32 = (0..4)
            .map(|_| (self.next() >> 40) as f32 / (1u64 << 24) as f32)
            .sum();
        let v = (u - 2.0) * 1.7;
        if self.next().is_multiple_of(97) {
            v * 40.0
        } else {
            v
        }
    }
}

fn scalar_entry(ty: GgmlType) -> &'static MatKernels {
    scalar::TABLE
        .iter()
        .find(|k| k.ty == ty)
        .expect("scalar entry")
}

/// Byte offsets, within a block, of the f16 scale fields (kept sane in random-byte blocks).
fn f16_fields(ty: GgmlType) -> &'static [usize] {
    match ty {
        GgmlType::Q4_0 | GgmlType::Q8_0 | GgmlType::Q5_0 | GgmlType::Iq4Nl | GgmlType::Iq4Xs => {
            &[0]
        }
        GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q4K | GgmlType::Q5K => &[0, 2],
        GgmlType::Q6K => &[208],
        GgmlType::Q3K => &[108],
        GgmlType::Q2K => &[80, 82],
        _ => &[],
    }
}

/// A weight row: quantized from floats, or (`raw`) random bytes with sane f16 scales, so every
/// bit pattern of the quants and packed scales is exercised.
fn weight_row(ty: GgmlType, n: usize, raw: bool, rng: &mut Rng) -> Vec<u8> {
    let bytes = ty.bytes_for(n as u64).unwrap() as usize;
    let mut row = vec![0u8; bytes];
    if raw {
        row.iter_mut().for_each(|b| *b = rng.next() as u8);
        for block in row.chunks_exact_mut(ty.block_bytes()) {
            for &off in f16_fields(ty) {
                let h = half::f16::from_f32(((rng.next() % 1000) as f32 + 1.0) * 1e-4);
                block[off..off + 2].copy_from_slice(&h.to_bits().to_le_bytes());
            }
        }
    } else {
        let src: Vec<f32> = (0..n).map(|_| rng.value()).collect();
        quantize_row(ty, &src, &mut row).unwrap();
    }
    row
}

fn check(name: &str, fast: &MatKernels, rng: &mut Rng) {
    let reference = scalar_entry(fast.ty);
    assert_eq!(fast.vec_dot_type, reference.vec_dot_type);
    let act_ty = fast.vec_dot_type;
    for blocks in [1usize, 2, 3, 7, 13, 24] {
        let n = blocks * fast.ty.block_elems();
        for raw in [false, true] {
            if raw && f16_fields(fast.ty).is_empty() {
                continue; // float weights: random bytes would be NaNs
            }
            let w = weight_row(fast.ty, n, raw, rng);
            let x: Vec<f32> = (0..n).map(|_| rng.value()).collect();
            // Activations as both sets produce them, 16-byte aligned as the contract says.
            let act_bytes = act_ty.bytes_for(n as u64).unwrap() as usize;
            let mut buf_ref = vec![0u128; act_bytes.div_ceil(16)];
            let mut buf_fast = vec![0u128; act_bytes.div_ceil(16)];
            let a_ref = &mut bytemuck_bytes(&mut buf_ref)[..act_bytes];
            (reference.quantize_act)(&x, a_ref);
            let a_fast = &mut bytemuck_bytes(&mut buf_fast)[..act_bytes];
            (fast.quantize_act)(&x, a_fast);
            check_activations(name, act_ty, &x, a_ref, a_fast);

            let (mut wf, mut af) = (vec![0.0f32; n], vec![0.0f32; n]);
            dequantize_row(fast.ty, &w, &mut wf).unwrap();
            dequantize_row(act_ty, a_ref, &mut af).unwrap();
            let scale: f64 = wf.iter().zip(&af).map(|(a, b)| (a * b).abs() as f64).sum();

            let want = (reference.vec_dot)(&w, a_ref);
            let got = (fast.vec_dot)(&w, a_ref);
            assert!(
                ((got - want) as f64).abs() <= 1e-5 * scale + 1e-30,
                "{name} {} ({blocks} blocks, raw {raw}): {got} vs scalar {want} (scale {scale})",
                fast.ty
            );
            check_many(name, fast, &w, n, rng);
            for g in fast.gemm.into_iter().chain(fast.gemv) {
                check_gemm(name, fast, g, &w, n, rng);
            }
        }
    }
    check_extremes(name, fast, reference, rng);
}

/// Blocks at the edges of every field: each quant/scale byte the same value (0x80: -128 for
/// Q8_0 weights; 0xFF: every quant, scale and min at its maximum), f16 scales up to the largest
/// f16, against activations whose quants are all ±127.
fn check_extremes(name: &str, fast: &MatKernels, reference: &MatKernels, rng: &mut Rng) {
    if f16_fields(fast.ty).is_empty() {
        return;
    }
    let n = 2 * fast.ty.block_elems();
    let x: Vec<f32> = (0..n)
        .map(|i| if i % 3 == 0 { -3.0 } else { 3.0 })
        .collect();
    let act_bytes = fast.vec_dot_type.bytes_for(n as u64).unwrap() as usize;
    let mut buf = vec![0u128; act_bytes.div_ceil(16)];
    let a = &mut bytemuck_bytes(&mut buf)[..act_bytes];
    (fast.quantize_act)(&x, a);
    for fill in [0x00u8, 0xff, 0x80, 0x7f, 0x55, 0xaa, 0x0f, 0xf0] {
        for scales in [[1.0f32, 0.75], [65504.0, 1.0]] {
            let mut w = vec![fill; fast.ty.bytes_for(n as u64).unwrap() as usize];
            for block in w.chunks_exact_mut(fast.ty.block_bytes()) {
                for (&off, s) in f16_fields(fast.ty).iter().zip(scales) {
                    let h = half::f16::from_f32(s).to_bits().to_le_bytes();
                    block[off..off + 2].copy_from_slice(&h);
                }
            }
            let (mut wf, mut af) = (vec![0.0f32; n], vec![0.0f32; n]);
            dequantize_row(fast.ty, &w, &mut wf).unwrap();
            dequantize_row(fast.vec_dot_type, a, &mut af).unwrap();
            let scale: f64 = wf.iter().zip(&af).map(|(p, q)| (p * q).abs() as f64).sum();
            let want = (reference.vec_dot)(&w, a);
            let got = (fast.vec_dot)(&w, a);
            assert!(
                ((got - want) as f64).abs() <= 1e-5 * scale + 1e-30,
                "{name} {} (fill {fill:#x}, scales {scales:?}): {got} vs scalar {want}",
                fast.ty
            );
            check_many(name, fast, &w, n, rng);
            for g in fast.gemm.into_iter().chain(fast.gemv) {
                check_gemm(name, fast, g, &w, n, rng);
            }
        }
    }
}

/// ggml's SIMD `quantize_row_q8_0`/`q8_1` for one block, in scalar code: `d = amax / 127`, the
/// values times `127 / amax` (x86) or `1 / d` (ARM NEON), rounded half to even.
fn simd_q8_block(x: &[f32]) -> (f32, Vec<i8>) {
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if cfg!(target_arch = "x86_64") {
        if amax != 0.0 {
            127.0 / amax
        } else {
            0.0
        }
    } else if d != 0.0 {
        1.0 / d
    } else {
        0.0
    };
    (
        d,
        x.iter().map(|v| (v * id).round_ties_even() as i8).collect(),
    )
}

/// A set's activation rows: Q8_0/Q8_1 with the arithmetic of ggml's code for that CPU family
/// ([`simd_q8_block`]), within one step of the portable reference; every other type identical
/// to it.
fn check_activations(name: &str, ty: GgmlType, x: &[f32], a_ref: &[u8], a_fast: &[u8]) {
    if !matches!(ty, GgmlType::Q8_0 | GgmlType::Q8_1) {
        return assert_eq!(a_ref, a_fast, "{name}: {ty} activation quantization");
    }
    let bytes = ty.block_bytes();
    let qs = bytes - 32;
    for ((xb, rb), fb) in x
        .chunks(32)
        .zip(a_ref.chunks(bytes))
        .zip(a_fast.chunks(bytes))
    {
        assert_eq!(rb[..2], fb[..2], "{name}: {ty} scale");
        for (r, f) in rb[qs..].iter().zip(&fb[qs..]) {
            assert!(
                ((*r as i8) as i32 - (*f as i8) as i32).abs() <= 1,
                "{name}: {ty} quants"
            );
        }
        if cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) {
            let (d, q) = simd_q8_block(xb);
            assert_eq!(
                fb[..2],
                half::f16::from_f32(d).to_bits().to_le_bytes(),
                "{name}: {ty} d"
            );
            let fq: Vec<i8> = fb[qs..].iter().map(|&b| b as i8).collect();
            assert_eq!(fq, q, "{name}: {ty} quants as ggml's SIMD code rounds them");
            if ty == GgmlType::Q8_1 {
                let sum: i32 = q.iter().map(|&v| i32::from(v)).sum();
                let s = half::f16::from_f32(d * sum as f32).to_bits().to_le_bytes();
                assert_eq!(fb[2..4], s, "{name}: {ty} sum");
            }
        }
    }
}

/// `vec_dot_n` over several activation rows equals `vec_dot` row by row, bit for bit, for
/// counts below, at and above the kernel's column tile.
fn check_many(name: &str, k: &MatKernels, w: &[u8], n: usize, rng: &mut Rng) {
    let act_bytes = k.vec_dot_type.bytes_for(n as u64).unwrap() as usize;
    let stride = act_bytes.div_ceil(16) * 16;
    for rows in [1usize, 3, 4, 5, 9] {
        let mut buf = vec![0u128; rows * stride / 16];
        let act = bytemuck_bytes(&mut buf);
        for r in 0..rows {
            let x: Vec<f32> = (0..n).map(|_| rng.value()).collect();
            (k.quantize_act)(&x, &mut act[r * stride..r * stride + act_bytes]);
        }
        let mut out = vec![0f32; rows];
        (k.vec_dot_n)(w, act, stride, &mut out);
        for (r, got) in out.iter().enumerate() {
            let want = (k.vec_dot)(w, &act[r * stride..r * stride + act_bytes]);
            assert_eq!(
                got.to_bits(),
                want.to_bits(),
                "{name} {}: vec_dot_n row {r} of {rows}",
                k.ty
            );
        }
    }
}

/// The prompt path against `vec_dot` on the same tokens (the same quantized values): within
/// 1e-4 of `Σ|w·a|`, for one weight row, a partial and a full group of the kernel's rows,
/// token counts below, at and above its tile, with ordinary, all-zero, spiky and
/// saturated activations (and, from [`check_extremes`], extreme weights).
fn check_gemm(name: &str, k: &MatKernels, g: &Gemm, w: &[u8], n: usize, rng: &mut Rng) {
    let act_bytes = k.vec_dot_type.bytes_for(n as u64).unwrap() as usize;
    let stride = (g.act_bytes)(n).div_ceil(32) * 32;
    let mut counts = vec![1, g.rows];
    if g.rows > 2 {
        counts.insert(1, g.rows / 2 + 1);
    }
    for nrows in counts {
        let mut weights = w.to_vec();
        for r in 1..nrows {
            weights.extend(weight_row(k.ty, n, r % 2 == 1, rng));
        }
        let mut wf = vec![0f32; n * nrows];
        dequantize_row(k.ty, &weights, &mut wf).unwrap();
        for tokens in [1usize, 2, 3, 4, 5, 7, 8, 9, 13, 16, 17, 24, 29, 33] {
            let mut raw = vec![0u8; tokens * stride + 32];
            let off = raw.as_ptr().align_offset(32);
            let act = &mut raw[off..off + tokens * stride];
            let mut plain = Vec::new();
            for t in 0..tokens {
                let x: Vec<f32> = match (t + tokens) % 5 {
                    0 => vec![0.0; n],
                    1 => (0..n)
                        .map(|i| if i % 61 == 0 { 3e4 } else { -1e-3 })
                        .collect(),
                    // Quants of ±127, mostly of one sign: the i16 sums of the kernels that add
                    // products before widening them come near their limit.
                    2 => (0..n)
                        .map(|i| if i % 7 == 0 { -1.0 } else { 1.0 })
                        .collect(),
                    _ => (0..n).map(|_| rng.value()).collect(),
                };
                (g.quantize_act)(&x, &mut act[t * stride..(t + 1) * stride]);
                let mut buf = vec![0u128; act_bytes.div_ceil(16)];
                (k.quantize_act)(&x, &mut bytemuck_bytes(&mut buf)[..act_bytes]);
                plain.push(buf);
            }
            let out_stride = nrows + 3;
            let mut out = vec![f32::NAN; tokens * out_stride];
            (g.kernel)(&weights, nrows, act, stride, tokens, &mut out, out_stride);
            for (t, plain) in plain.iter_mut().enumerate() {
                let a = &bytemuck_bytes(plain)[..act_bytes];
                let mut af = vec![0f32; n];
                dequantize_row(k.vec_dot_type, a, &mut af).unwrap();
                for (r, wr) in weights.chunks_exact(w.len()).enumerate() {
                    let want = (k.vec_dot)(wr, a);
                    let got = out[t * out_stride + r];
                    let scale: f64 = wf[r * n..(r + 1) * n]
                        .iter()
                        .zip(&af)
                        .map(|(a, b)| (a * b).abs() as f64)
                        .sum();
                    // 1e-4, not 1e-5: these kernels add a block's min or offset term into the
                    // same f32 accumulator as its scale term, and with an extreme token the two
                    // (each larger than |w·a| where d·q and m cancel) round at that magnitude.
                    assert!(
                        ((got - want) as f64).abs() <= 1e-4 * scale + 1e-30,
                        "{name} {} prompt path, row {r} of {nrows}, token {t} of {tokens}: \
                         {got} vs vec_dot {want} (scale {scale})",
                        k.ty
                    );
                }
                for r in nrows..out_stride {
                    assert!(out[t * out_stride + r].is_nan(), "wrote past its rows");
                }
            }
        }
    }
}

fn bytemuck_bytes(v: &mut [u128]) -> &mut [u8] {
    // SAFETY: u128 has no padding and any byte pattern is valid for u8; the length is exact.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), v.len() * 16) }
}

#[test]
fn every_set_matches_the_scalar_reference() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let sets = available();
    eprintln!(
        "kernel sets on this CPU: {:?}",
        sets.iter().map(|s| s.name).collect::<Vec<_>>()
    );
    for set in sets.into_iter().filter(|s| s.name != "scalar") {
        let mut checked = 0;
        for ty in GgmlType::all() {
            if let Some(k) = set.own(ty) {
                check(set.name, k, &mut rng);
                checked += 1;
            }
        }
        assert!(checked > 0, "{} has no kernels", set.name);
    }
    for k in scalar::TABLE
        .iter()
        .filter(|k| !f16_fields(k.ty).is_empty())
    {
        let n = 3 * k.ty.block_elems();
        let w = weight_row(k.ty, n, false, &mut rng);
        check_many("scalar", k, &w, n, &mut rng);
    }
}

#[test]
fn forcing_an_unknown_or_missing_set_is_an_error() {
    assert!(hearth_simd::by_name("scalar").is_ok());
    let err = hearth_simd::by_name("avx9000").unwrap_err();
    assert!(
        err.contains("unknown kernel set") && err.contains("scalar"),
        "{err}"
    );
    // Every build knows every set's name; one for another CPU family cannot run here.
    let foreign = if cfg!(target_arch = "aarch64") {
        "avx2"
    } else {
        "neon"
    };
    let err = hearth_simd::by_name(foreign).unwrap_err();
    assert!(err.contains("cannot run"), "{err}");
}

fn f16_bits(x: f32) -> u16 {
    half::f16::from_f32(x).to_bits()
}

fn f16_val(b: u16) -> f32 {
    half::f16::from_bits(b).to_f32()
}

/// Every set's vector operations give the scalar set's results bit for bit: the per-element
/// arithmetic (fused multiply-adds, summation order, the vector `expf`) is the same by design.
#[test]
fn vector_ops_match_the_scalar_reference_bit_for_bit() {
    let mut rng = Rng(0x51_7cc1_b727_220a);
    let reference = &scalar::VEC;
    for set in available().into_iter().filter(|s| s.name != "scalar") {
        let fast = set.vec;
        for (m, k, n) in [
            (1, 64, 64),
            (64, 64, 64),
            (7, 128, 64),
            (13, 64, 40),
            (3, 5, 3),
        ] {
            let a: Vec<f32> = (0..m * k).map(|_| rng.value()).collect();
            let b: Vec<f32> = (0..k * n).map(|_| rng.value()).collect();
            let c0: Vec<f32> = (0..m * n).map(|_| rng.value()).collect();
            let (mut c1, mut c2) = (c0.clone(), c0.clone());
            (reference.gemm_f32)(&mut c1, &a, &b, m, k, n);
            (fast.gemm_f32)(&mut c2, &a, &b, m, k, n);
            assert_eq!(c1, c2, "{} gemm {m}x{k}x{n}", set.name);
        }
        for len in [64usize, 8, 13, 1] {
            let x: Vec<f32> = (0..len)
                .map(|i| -(i as f32) * 0.7 - rng.value().abs())
                .collect();
            let (mut y1, mut y2) = (x.clone(), x.clone());
            let s1 = (reference.softmax_exp)(&mut y1, 0.5);
            let s2 = (fast.softmax_exp)(&mut y2, 0.5);
            assert_eq!((s1, &y1), (s2, &y2), "{} softmax_exp len {len}", set.name);
        }
        for len in [64usize, 128, 80, 7] {
            let x: Vec<u16> = (0..len).map(|_| f16_bits(rng.value())).collect();
            let y: Vec<u16> = (0..len).map(|_| f16_bits(rng.value())).collect();
            assert_eq!(
                (reference.dot_f16)(&x, &y).to_bits(),
                (fast.dot_f16)(&x, &y).to_bits(),
                "{} dot_f16 len {len}",
                set.name
            );
            let (mut a1, mut a2) = (y.clone(), y.clone());
            (reference.mad_f16)(&mut a1, &x, 0.37);
            (fast.mad_f16)(&mut a2, &x, 0.37);
            assert_eq!(a1, a2, "{} mad_f16 len {len}", set.name);
            (reference.scale_f16)(&mut a1, 0.61);
            (fast.scale_f16)(&mut a2, 0.61);
            assert_eq!(a1, a2, "{} scale_f16 len {len}", set.name);
            let xf: Vec<f32> = (0..len).map(|_| rng.value()).collect();
            let (mut g1, mut g2) = (xf.clone(), xf.clone());
            (reference.mad_f32)(
                &mut g1,
                &x.iter().map(|&b| f16_val(b)).collect::<Vec<_>>(),
                0.37,
            );
            (fast.mad_f32)(
                &mut g2,
                &x.iter().map(|&b| f16_val(b)).collect::<Vec<_>>(),
                0.37,
            );
            assert_eq!(g1, g2, "{} mad_f32 len {len}", set.name);
            let (mut f1, mut f2) = (vec![0f32; len], vec![0f32; len]);
            (reference.f16_to_f32)(&x, &mut f1);
            (fast.f16_to_f32)(&x, &mut f2);
            assert_eq!(f1, f2, "{} f16_to_f32 len {len}", set.name);
        }
    }
}

/// The scalar vector operations compute what they claim, checked in f64.
#[test]
fn scalar_vector_ops_are_accurate() {
    let v = &scalar::VEC;
    let mut rng = Rng(0x2545_f491);
    for i in -1000..=100 {
        let x = i as f32 * 0.0871;
        let got = hearth_simd::scalar::v_expf(x) as f64;
        let want = (x as f64).exp();
        assert!(
            ((got - want) / want).abs() < 3e-7,
            "exp({x}) = {got}, want {want}"
        );
    }
    assert_eq!(hearth_simd::scalar::v_expf(f32::NEG_INFINITY), 0.0);
    let mut x: Vec<f32> = (0..64).map(|_| rng.value()).collect();
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let want: f64 = x.iter().map(|&e| ((e - max) as f64).exp()).sum();
    let got = (v.softmax_exp)(&mut x, max);
    assert!((got - want).abs() < 1e-5 * want, "{got} vs {want}");
    let (m, k, n) = (5, 33, 9);
    let a: Vec<f32> = (0..m * k).map(|_| rng.value()).collect();
    let b: Vec<f32> = (0..k * n).map(|_| rng.value()).collect();
    let mut c = vec![1.0f32; m * n];
    (v.gemm_f32)(&mut c, &a, &b, m, k, n);
    for i in 0..m {
        for j in 0..n {
            let want: f64 = 1.0
                + (0..k)
                    .map(|kk| a[i * k + kk] as f64 * b[kk * n + j] as f64)
                    .sum::<f64>();
            assert!((c[i * n + j] as f64 - want).abs() < 1e-4, "gemm ({i},{j})");
        }
    }
    let x: Vec<u16> = (0..70).map(|_| f16_bits(rng.value())).collect();
    let y: Vec<u16> = (0..70).map(|_| f16_bits(rng.value())).collect();
    let want: f64 = x
        .iter()
        .zip(&y)
        .map(|(&a, &b)| f16_val(a) as f64 * f16_val(b) as f64)
        .sum();
    assert!(((v.dot_f16)(&x, &y) as f64 - want).abs() < 1e-4);
    let mut acc = y.clone();
    (v.mad_f16)(&mut acc, &x, 0.5);
    for ((&r, &a), &b) in acc.iter().zip(&x).zip(&y) {
        assert_eq!(r, f16_bits(f16_val(b) + f16_val(a) * 0.5));
    }
}

/// Every set's Q8_K activation quantizer gives hearth-quant's bytes on blocks at its edges: the
/// largest magnitude both positive and negative (the first one sets the sign), values that land
/// exactly half-way between two quants, all zero, subnormal, huge, NaN and infinite values.
#[test]
fn q8_k_activations_match_the_reference_on_adversarial_blocks() {
    let reference = scalar_entry(GgmlType::Q4K);
    let n = 256;
    let mut rng = Rng(0x5151_2727_9393_abab);
    let mut cases: Vec<Vec<f32>> = vec![
        vec![0.0; n],
        vec![-0.0; n],
        (0..n)
            .map(|i| {
                if i == 17 {
                    -127.0
                } else {
                    (i % 255) as f32 - 127.0
                }
            })
            .collect(),
        (0..n).map(|i| (i as f32 - 128.0) * 0.5).collect(),
        (0..n)
            .map(|i| if i % 2 == 0 { 2.54 } else { -2.54 })
            .collect(),
        (0..n)
            .map(|i| if i % 2 == 1 { 2.54 } else { -2.54 })
            .collect(),
        (0..n).map(|i| i as f32 * 1e-40).collect(),
        (0..n)
            .map(|i| if i == 200 { 3e38 } else { -1e38 })
            .collect(),
        (0..n)
            .map(|i| if i == 9 { f32::NAN } else { i as f32 })
            .collect(),
        (0..n)
            .map(|i| if i == 255 { f32::INFINITY } else { 1.0 })
            .collect(),
        (0..n)
            .map(|i| if i == 3 { f32::NEG_INFINITY } else { -1.0 })
            .collect(),
    ];
    // Half-way values: with max = 127, iscale = -1 and x = k + 0.5 rounds to even.
    cases.push(
        (0..n)
            .map(|i| {
                if i == 0 {
                    127.0
                } else {
                    (i % 200) as f32 - 100.5
                }
            })
            .collect(),
    );
    for _ in 0..20 {
        cases.push((0..n).map(|_| rng.value()).collect());
    }
    for set in available() {
        let Some(k) = set.own(GgmlType::Q4K) else {
            continue;
        };
        assert_eq!(k.vec_dot_type, GgmlType::Q8K);
        for x in &cases {
            let mut buf_ref = vec![0u128; 292usize.div_ceil(16) * 2];
            let mut buf_fast = buf_ref.clone();
            let a_ref = &mut bytemuck_bytes(&mut buf_ref)[..292];
            (reference.quantize_act)(x, a_ref);
            let a_fast = &mut bytemuck_bytes(&mut buf_fast)[..292];
            (k.quantize_act)(x, a_fast);
            assert_eq!(a_ref, a_fast, "{}: Q8_K of {:?}", set.name, &x[..4]);
        }
    }
}
