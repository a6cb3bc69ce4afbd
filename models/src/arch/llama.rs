//! `llama`: SmolLM2, Llama 3.x, DeepSeek-R1-Distill-Llama-8B/70B.
//!
//! - RMSNorm before attention and before the FFN, and on the output;
//! - normal (adjacent-pair) RoPE with `rope.freq_base`; llama3 rope scaling through the optional
//!   `rope_freqs.weight` tensor of per-frequency divisors;
//! - grouped-query attention (`attention.head_count_kv`);
//! - SwiGLU feed-forward (`ffn_gate`, `ffn_up`, `ffn_down`);
//! - no biases; `output.weight` when present, else the output is tied to `token_embd.weight`.

use super::Variant;
use crate::ops::rope::RopeKind;

pub const VARIANT: Variant = Variant {
    name: "llama",
    qkv_bias: false,
    rope: RopeKind::Normal,
};
