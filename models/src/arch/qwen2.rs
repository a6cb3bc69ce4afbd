//! `qwen2`: DeepSeek-R1-Distill-Qwen-1.5B/7B/14B/32B, Qwen2 and Qwen2.5.
//!
//! The llama block with two differences:
//! - a bias on the Q, K and V projections (`blk.N.attn_{q,k,v}.bias`);
//! - NeoX-style RoPE: element `i` pairs with `i + head_dim/2`, not with its neighbour.
//!
//! The small models tie the output to `token_embd.weight`; the larger ones ship `output.weight`.

use super::Variant;
use crate::ops::rope::RopeKind;

pub const VARIANT: Variant = Variant {
    name: "qwen2",
    qkv_bias: true,
    rope: RopeKind::Neox,
};
