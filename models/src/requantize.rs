//! Requantizing a model: the weights of a GGUF file rewritten in another type, by llama-quantize's
//! rules, so every weight type hearth reads can be tested on a real model without a download per
//! type.
//!
//! The rules are those of `llama-quantize --allow-requantize --pure SRC OUT TYPE`
//! (`llama-quant.cpp`, no importance matrix):
//! - only weight matrices are rewritten (`tensor_allows_quantization`): tensors of two or more
//!   dimensions whose name ends in `weight`, except norms and expert gates; 1-D tensors (norms,
//!   biases) keep their type and bytes;
//! - a row whose length is not a whole number of the target's blocks falls back to a type that
//!   fits (`tensor_type_fallback`): `Q2_K`/`Q3_K` to `Q4_0`, `Q4_K` to `Q5_0`, `Q5_K` to `Q5_1`,
//!   `Q6_K` to `Q8_0`, `IQ4_XS` to `IQ4_NL`, and to `F16` when even that does not fit (a 32-block
//!   type such as `IQ4_NL` goes straight to `F16`);
//! - a tensor already in its new type is copied as is; the others are dequantized to f32 and
//!   quantized as ggml's `ggml_quantize_chunk` does without an importance matrix: that is
//!   `quantize_row_*_ref` (hearth-quant's [`quantize_row`], bit-exact with it) for every type but
//!   IQ4_NL, whose `quantize_iq4_nl` searches 7 scales each way where the `_ref` row function
//!   searches none ([`hearth_quant::quantize_iq4_nl_chunk`]);
//! - `general.file_type` becomes the llama file type of the target, `general.quantization_version`
//!   2, and split keys are dropped.
//!
//! With those rules the tensor bytes equal llama-quantize's (`scripts/make-type-fixtures.sh` checks
//! it). One addition llama-quantize does not have: [`RequantizeOptions::add_output`] writes an
//! untied `output.weight`, a copy of `token_embd.weight` in a given type, so a tied model can
//! stand in for an untied one.

use hearth_quant::{
    can_quantize, dequantize_row, quantize_iq4_nl_chunk, quantize_row, GgmlType, QuantError,
};
use rayon::prelude::*;

use crate::gguf::{GgufFile, GgufWriter, Value};

/// ggml's `GGML_QNT_VERSION`, written as `general.quantization_version`.
pub const QUANTIZATION_VERSION: u32 = 2;

/// What to do besides converting the weights.
#[derive(Clone, Debug, Default)]
pub struct RequantizeOptions {
    /// Add `output.weight`: `token_embd.weight` converted to this type (with the same fallback
    /// as every other weight). The source must be tied (no `output.weight` of its own).
    pub add_output: Option<GgmlType>,
}

/// Why a model could not be requantized.
#[derive(Debug, thiserror::Error)]
pub enum RequantizeError {
    #[error("cannot requantize to {0}: hearth has no quantizer or llama file type for it")]
    UnsupportedTarget(GgmlType),
    #[error("tensor `{tensor}`: {source}")]
    Quant {
        tensor: String,
        #[source]
        source: QuantError,
    },
    #[error("tensor `{tensor}` ({ty} {dims:?}): {why}")]
    BadTensor {
        tensor: String,
        ty: GgmlType,
        dims: Vec<u64>,
        why: &'static str,
    },
    #[error("cannot add output.weight: {0}")]
    Output(&'static str),
}

/// The `llama_ftype` llama-quantize writes as `general.file_type` when asked for `target`
/// (`Q3_K`, `Q4_K` and `Q5_K` are its aliases of the `_M` mixes), or `None` for a type it
/// cannot produce.
pub fn llama_file_type(target: GgmlType) -> Option<u32> {
    use GgmlType as T;
    Some(match target {
        T::F32 => 0,
        T::F16 => 1,
        T::Q4_0 => 2,
        T::Q4_1 => 3,
        T::Q8_0 => 7,
        T::Q5_0 => 8,
        T::Q5_1 => 9,
        T::Q2K => 10,
        T::Q3K => 12,
        T::Q4K => 15,
        T::Q5K => 17,
        T::Q6K => 18,
        T::Iq4Nl => 25,
        T::Iq4Xs => 30,
        T::Bf16 => 32,
        _ => return None,
    })
}

/// Whether llama-quantize would convert this tensor at all (`tensor_allows_quantization`, the
/// parts that concern the architectures hearth runs).
pub fn is_quantizable(name: &str, dims: &[u64]) -> bool {
    // ggml_n_dims: trailing dimensions of 1 do not count.
    let n_dims = dims.iter().rposition(|&d| d > 1).map_or(1, |i| i + 1);
    n_dims >= 2
        && name.ends_with("weight")
        && !name.contains("_norm.weight")
        && !name.contains("ffn_gate_inp.weight")
        && name != "position_embd.weight"
        && name != "token_types.weight"
}

/// The type a weight matrix with rows of `row_len` elements gets when the target is `target`
/// (`tensor_type_fallback`).
pub fn fallback_type(target: GgmlType, row_len: u64) -> GgmlType {
    use GgmlType as T;
    if target.fits_row(row_len) {
        return target;
    }
    let fallback = match target {
        T::Iq4Xs | T::Iq1S | T::Iq1M | T::Iq2Xxs | T::Iq2Xs | T::Iq2S | T::Iq3Xxs | T::Iq3S => {
            T::Iq4Nl
        }
        T::Q2K | T::Q3K | T::Tq1_0 | T::Tq2_0 => T::Q4_0,
        T::Q4K => T::Q5_0,
        T::Q5K => T::Q5_1,
        T::Q6K => T::Q8_0,
        other => other,
    };
    if fallback.fits_row(row_len) {
        fallback
    } else {
        T::F16
    }
}

/// The type llama-quantize gives tensor `name` of type `ty` when the target is `target`.
pub fn tensor_target(name: &str, dims: &[u64], ty: GgmlType, target: GgmlType) -> GgmlType {
    if !is_quantizable(name, dims) {
        return ty;
    }
    if target.block_elems() > 1 {
        fallback_type(target, dims.first().copied().unwrap_or(1))
    } else {
        target
    }
}

/// `data` (a tensor of type `from` and shape `dims`) in type `to`, converted row by row on the
/// current rayon pool.
fn convert(
    name: &str,
    dims: &[u64],
    from: GgmlType,
    to: GgmlType,
    data: &[u8],
) -> Result<Vec<u8>, RequantizeError> {
    if from == to {
        return Ok(data.to_vec());
    }
    let bad = |why| RequantizeError::BadTensor {
        tensor: name.to_string(),
        ty: from,
        dims: dims.to_vec(),
        why,
    };
    let row_len = dims.first().copied().unwrap_or(1);
    let n_rows = dims
        .iter()
        .skip(1)
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .ok_or_else(|| bad("too many rows"))?;
    let src_row = from
        .bytes_for(row_len)
        .and_then(|b| usize::try_from(b).ok())
        .ok_or_else(|| bad("rows are not whole blocks"))?;
    let dst_row = to
        .bytes_for(row_len)
        .and_then(|b| usize::try_from(b).ok())
        .ok_or_else(|| bad("rows are not whole blocks of the new type"))?;
    let row_len = usize::try_from(row_len).map_err(|_| bad("rows too long"))?;
    if usize::try_from(n_rows)
        .ok()
        .and_then(|n| n.checked_mul(src_row))
        != Some(data.len())
    {
        return Err(bad("data size does not match the shape"));
    }
    if data.is_empty() || src_row == 0 {
        return Ok(Vec::new());
    }
    let mut out = vec![0u8; data.len() / src_row * dst_row];
    out.par_chunks_mut(dst_row)
        .zip(data.par_chunks(src_row))
        .try_for_each_init(
            || vec![0f32; row_len],
            |row, (dst, src)| {
                dequantize_row(from, src, row)?;
                if to == GgmlType::Iq4Nl {
                    quantize_iq4_nl_chunk(row, dst)
                } else {
                    quantize_row(to, row, dst)
                }
            },
        )
        .map_err(|source| RequantizeError::Quant {
            tensor: name.to_string(),
            source,
        })?;
    Ok(out)
}

/// `src` with its weight matrices in `target`, ready to write; see the module documentation
/// for the rules.
pub fn requantize(
    src: &GgufFile,
    target: GgmlType,
    opts: &RequantizeOptions,
) -> Result<GgufWriter, RequantizeError> {
    let file_type = llama_file_type(target)
        .filter(|_| can_quantize(target))
        .ok_or(RequantizeError::UnsupportedTarget(target))?;
    if let Some(ty) = opts.add_output {
        if llama_file_type(ty).is_none() || !can_quantize(ty) {
            return Err(RequantizeError::UnsupportedTarget(ty));
        }
    }

    let mut w = GgufWriter::new();
    for (k, v) in src.metadata().iter() {
        if !k.starts_with("split.") {
            w.add(k, v.clone());
        }
    }
    w.add(
        "general.quantization_version",
        Value::U32(QUANTIZATION_VERSION),
    );
    w.add("general.file_type", Value::U32(file_type));

    for t in src.tensors() {
        let data = src.try_tensor_data(t).ok_or(RequantizeError::BadTensor {
            tensor: t.name.clone(),
            ty: t.ty,
            dims: t.dims.clone(),
            why: "data lies outside the file",
        })?;
        let ty = tensor_target(&t.name, &t.dims, t.ty, target);
        w.add_tensor(
            &t.name,
            &t.dims,
            ty,
            convert(&t.name, &t.dims, t.ty, ty, data)?,
        );
    }

    if let Some(out_ty) = opts.add_output {
        if src.tensor("output.weight").is_some() {
            return Err(RequantizeError::Output("the model already has one"));
        }
        let embd = src
            .tensor("token_embd.weight")
            .ok_or(RequantizeError::Output(
                "the model has no token_embd.weight",
            ))?;
        let data = src.try_tensor_data(embd).ok_or(RequantizeError::Output(
            "token_embd.weight lies outside the file",
        ))?;
        let ty = tensor_target("output.weight", &embd.dims, embd.ty, out_ty);
        let bytes = convert("output.weight", &embd.dims, embd.ty, ty, data)?;
        w.add_tensor("output.weight", &embd.dims, ty, bytes);
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny llama-shaped file: a 1-D norm, a 64-column matrix, a 256-column matrix.
    fn tiny() -> GgufFile {
        let f32_bytes = |n: usize| -> Vec<u8> {
            (0..n)
                .flat_map(|i| ((i as f32 * 0.37).sin() * 0.5).to_le_bytes())
                .collect()
        };
        let mut w = GgufWriter::new();
        w.add("general.architecture", "llama")
            .add("general.file_type", Value::U32(0))
            .add("split.count", Value::U16(1))
            .add_tensor("token_embd.weight", &[64, 8], GgmlType::F32, f32_bytes(512))
            .add_tensor(
                "blk.0.attn_norm.weight",
                &[64],
                GgmlType::F32,
                f32_bytes(64),
            )
            .add_tensor(
                "blk.0.ffn_down.weight",
                &[256, 4],
                GgmlType::F32,
                f32_bytes(1024),
            );
        GgufFile::from_bytes(w.to_bytes().expect("writes")).expect("reads")
    }

    fn reread(w: &GgufWriter) -> GgufFile {
        GgufFile::from_bytes(w.to_bytes().expect("writes")).expect("reads back")
    }

    #[test]
    fn types_shapes_and_metadata_follow_llama_quantize() {
        let src = tiny();
        let out = reread(&requantize(&src, GgmlType::Q4K, &RequantizeOptions::default()).unwrap());
        let ty = |n: &str| out.tensor(n).unwrap().ty;
        assert_eq!(ty("token_embd.weight"), GgmlType::Q5_0); // 64 columns: Q4_K falls back
        assert_eq!(ty("blk.0.attn_norm.weight"), GgmlType::F32);
        assert_eq!(ty("blk.0.ffn_down.weight"), GgmlType::Q4K);
        for (a, b) in src.tensors().iter().zip(out.tensors()) {
            assert_eq!((&a.name, &a.dims), (&b.name, &b.dims));
        }
        let md = out.metadata();
        assert_eq!(md.get_u32("general.file_type").unwrap(), 15);
        assert_eq!(md.get_u32("general.quantization_version").unwrap(), 2);
        assert!(!md.contains("split.count"));
        assert_eq!(md.get_str("general.architecture").unwrap(), "llama");
    }

    #[test]
    fn values_survive_the_round_trip() {
        let src = tiny();
        for target in [GgmlType::F16, GgmlType::Bf16, GgmlType::Q8_0, GgmlType::Q6K] {
            let out = reread(&requantize(&src, target, &RequantizeOptions::default()).unwrap());
            for t in src.tensors() {
                let o = out.tensor(&t.name).unwrap();
                let n = t.n_elements() as usize;
                let (mut a, mut b) = (vec![0f32; n], vec![0f32; n]);
                dequantize_row(t.ty, src.tensor_data(t), &mut a).unwrap();
                dequantize_row(o.ty, out.tensor_data(o), &mut b).unwrap();
                let worst = a
                    .iter()
                    .zip(&b)
                    .map(|(x, y)| (x - y).abs())
                    .fold(0f32, f32::max);
                assert!(worst < 0.01, "{target} {}: off by {worst}", t.name);
            }
        }
        // Same type in and out: the bytes are copied, not requantized.
        let out = reread(&requantize(&src, GgmlType::F32, &RequantizeOptions::default()).unwrap());
        for t in src.tensors() {
            assert_eq!(
                src.tensor_data(t),
                out.tensor_data(out.tensor(&t.name).unwrap())
            );
        }
    }

    #[test]
    fn fallbacks_match_llama_cpp() {
        use GgmlType as T;
        for (target, want) in [
            (T::Q2K, T::Q4_0),
            (T::Q3K, T::Q4_0),
            (T::Q4K, T::Q5_0),
            (T::Q5K, T::Q5_1),
            (T::Q6K, T::Q8_0),
            (T::Iq4Xs, T::Iq4Nl),
            (T::Q4_0, T::Q4_0),
        ] {
            assert_eq!(fallback_type(target, 576), want, "{target}");
            assert_eq!(fallback_type(target, 1536), target);
        }
        for target in [T::Q4_0, T::Iq4Nl, T::Q6K, T::Iq4Xs] {
            assert_eq!(fallback_type(target, 100), T::F16, "{target}");
        }
        assert!(!is_quantizable("blk.0.ffn_norm.weight", &[64]));
        assert!(!is_quantizable("blk.0.attn_q.weight", &[64, 1]));
        assert!(!is_quantizable("blk.0.attn_q.bias", &[64, 64]));
        assert!(is_quantizable("output.weight", &[64, 64]));
    }

    #[test]
    fn adds_an_untied_output() {
        let src = tiny();
        let opts = RequantizeOptions {
            add_output: Some(GgmlType::Q8_0),
        };
        let out = reread(&requantize(&src, GgmlType::Q4_0, &opts).unwrap());
        let o = out.tensor("output.weight").unwrap();
        assert_eq!((o.ty, o.dims.as_slice()), (GgmlType::Q8_0, &[64u64, 8][..]));
        assert_eq!(out.tensor("token_embd.weight").unwrap().ty, GgmlType::Q4_0);
        // A model that already has one is refused.
        let again = requantize(&out, GgmlType::Q4_0, &opts);
        assert!(matches!(again, Err(RequantizeError::Output(_))));
    }

    #[test]
    fn iq4_nl_searches_scales_as_llama_quantize() {
        let x: Vec<f32> = (0..256)
            .map(|i| ((i * 7919) % 101) as f32 / 50.0 - 1.0)
            .collect();
        let (mut chunk, mut reference) = (vec![0u8; 144], vec![0u8; 144]);
        quantize_iq4_nl_chunk(&x, &mut chunk).unwrap();
        quantize_row(GgmlType::Iq4Nl, &x, &mut reference).unwrap();
        let err = |q: &[u8]| {
            let mut y = vec![0f32; 256];
            dequantize_row(GgmlType::Iq4Nl, q, &mut y).unwrap();
            x.iter()
                .zip(&y)
                .map(|(a, b)| (a - b) * (a - b))
                .sum::<f32>()
        };
        assert_ne!(chunk, reference);
        assert!(err(&chunk) <= err(&reference));
        // An all-zero block: scale 0, every index the codebook's nearest to 0.
        let mut zero = vec![0xffu8; 18];
        quantize_iq4_nl_chunk(&[0.0; 32], &mut zero).unwrap();
        assert_eq!(zero[..2], [0, 0]);
        assert!(zero[2..].iter().all(|&b| b == 0x88));
        assert!(quantize_iq4_nl_chunk(&x[..31], &mut chunk).is_err());
        assert!(quantize_iq4_nl_chunk(&x, &mut chunk[..100]).is_err());
    }

    #[test]
    fn unsupported_targets_are_errors() {
        let src = tiny();
        for target in [
            GgmlType::Q8K,
            GgmlType::Iq2Xxs,
            GgmlType::Q8_1,
            GgmlType::I32,
        ] {
            let r = requantize(&src, target, &RequantizeOptions::default());
            assert!(
                matches!(r, Err(RequantizeError::UnsupportedTarget(t)) if t == target),
                "{target}"
            );
        }
        let opts = RequantizeOptions {
            add_output: Some(GgmlType::Iq1S),
        };
        assert!(requantize(&src, GgmlType::Q8_0, &opts).is_err());
    }
}
