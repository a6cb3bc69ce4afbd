//! Per-type dot products of one sub-block of 32 weights with the 32 activations of up to four
//! tokens, `dot32(block byte offset, sub-block, activation index) -> vec4` (one lane per token,
//! see `xdot` in matmul.wgsl), each decoding the weights as hearth-quant's scalar
//! `dequantize_block` of that type does. The Rust side cuts this file at
//! the `// type:` lines and prepends the wanted section to matmul.wgsl. No private arrays: a
//! software Vulkan (lavapipe) turns dynamically indexed ones into slow scatter/gather.

// type: F32
const BLOCK_BYTES: u32 = 128u;
const SUBS: u32 = 1u;
fn dot32(b: u32, sub: u32, xb: u32) -> vec4<f32> {
    var s = vec4<f32>(0.0);
    for (var i = 0u; i < 8u; i++) {
        let o = (b >> 2u) + 4u * i;
        let v = vec4<f32>(bitcast<f32>(w[o]), bitcast<f32>(w[o + 1u]), bitcast<f32>(w[o + 2u]), bitcast<f32>(w[o + 3u]));
        s += xdot(v, xb + 4u * i);
    }
    return s;
}

// type: F16
const BLOCK_BYTES: u32 = 64u;
const SUBS: u32 = 1u;
fn dot32(b: u32, sub: u32, xb: u32) -> vec4<f32> {
    var s = vec4<f32>(0.0);
    for (var i = 0u; i < 8u; i++) {
        let o = (b >> 2u) + 2u * i;
        let v = vec4<f32>(unpack2x16float(w[o]), unpack2x16float(w[o + 1u]));
        s += xdot(v, xb + 4u * i);
    }
    return s;
}

// type: Q4_0
const BLOCK_BYTES: u32 = 18u;
const SUBS: u32 = 1u;
fn dot32(b: u32, sub: u32, xb: u32) -> vec4<f32> {
    var s = vec4<f32>(0.0);
    for (var i = 0u; i < 4u; i++) {
        let q = word_at(b + 2u + 4u * i);
        let lo = vec4<f32>(nibbles(q, 0u)) - 8.0;
        let hi = vec4<f32>(nibbles(q, 4u)) - 8.0;
        s += xdot(lo, xb + 4u * i) + xdot(hi, xb + 16u + 4u * i);
    }
    return f16_at(b) * s;
}

// type: Q4_1
const BLOCK_BYTES: u32 = 20u;
const SUBS: u32 = 1u;
fn dot32(b: u32, sub: u32, xb: u32) -> vec4<f32> {
    var s = vec4<f32>(0.0);
    for (var i = 0u; i < 4u; i++) {
        let q = word_at(b + 4u + 4u * i);
        s += xdot(vec4<f32>(nibbles(q, 0u)), xb + 4u * i);
        s += xdot(vec4<f32>(nibbles(q, 4u)), xb + 16u + 4u * i);
    }
    return f16_at(b) * s + f16_at(b + 2u) * xsum32(xb);
}

// type: Q5_0
const BLOCK_BYTES: u32 = 22u;
const SUBS: u32 = 1u;
fn dot32(b: u32, sub: u32, xb: u32) -> vec4<f32> {
    let qh = word_at(b + 2u);
    var s = vec4<f32>(0.0);
    for (var i = 0u; i < 4u; i++) {
        let q = word_at(b + 6u + 4u * i);
        let e = 4u * i;
        let hl = (vec4<u32>(qh) >> (vec4<u32>(0u, 1u, 2u, 3u) + e)) & vec4<u32>(1u);
        let hh = (vec4<u32>(qh) >> (vec4<u32>(16u, 17u, 18u, 19u) + e)) & vec4<u32>(1u);
        let lo = vec4<f32>(nibbles(q, 0u) | (hl << vec4<u32>(4u))) - 16.0;
        let hi = vec4<f32>(nibbles(q, 4u) | (hh << vec4<u32>(4u))) - 16.0;
        s += xdot(lo, xb + e) + xdot(hi, xb + 16u + e);
    }
    return f16_at(b) * s;
}

// type: Q8_0
const BLOCK_BYTES: u32 = 34u;
const SUBS: u32 = 1u;
fn dot32(b: u32, sub: u32, xb: u32) -> vec4<f32> {
    var s = vec4<f32>(0.0);
    for (var i = 0u; i < 8u; i++) {
        s += xdot(sbytes(word_at(b + 2u + 4u * i)), xb + 4u * i);
    }
    return f16_at(b) * s;
}

// type: Q4_K
const BLOCK_BYTES: u32 = 144u;
const SUBS: u32 = 8u;
// hearth-quant's `scale_min_k4`: the 6-bit scale and min of sub-block j.
fn scale_min_k4(b: u32, j: u32) -> vec2<f32> {
    if j < 4u {
        return vec2<f32>(f32(byte_at(b + j) & 63u), f32(byte_at(b + j + 4u) & 63u));
    }
    let sc = (byte_at(b + j + 4u) & 0xfu) | ((byte_at(b + j - 4u) >> 6u) << 4u);
    let m = (byte_at(b + j + 4u) >> 4u) | ((byte_at(b + j) >> 6u) << 4u);
    return vec2<f32>(f32(sc), f32(m));
}
fn dot32(b: u32, j: u32, xb: u32) -> vec4<f32> {
    let sm = scale_min_k4(b + 4u, j);
    let shift = 4u * (j & 1u);
    var s = vec4<f32>(0.0);
    for (var i = 0u; i < 8u; i++) {
        let q = word_at(b + 16u + 32u * (j / 2u) + 4u * i);
        s += xdot(vec4<f32>(nibbles(q, shift)), xb + 4u * i);
    }
    return f16_at(b) * sm.x * s - f16_at(b + 2u) * sm.y * xsum32(xb);
}

// type: Q5_K
const BLOCK_BYTES: u32 = 176u;
const SUBS: u32 = 8u;
fn scale_min_k4(b: u32, j: u32) -> vec2<f32> {
    if j < 4u {
        return vec2<f32>(f32(byte_at(b + j) & 63u), f32(byte_at(b + j + 4u) & 63u));
    }
    let sc = (byte_at(b + j + 4u) & 0xfu) | ((byte_at(b + j - 4u) >> 6u) << 4u);
    let m = (byte_at(b + j + 4u) >> 4u) | ((byte_at(b + j) >> 6u) << 4u);
    return vec2<f32>(f32(sc), f32(m));
}
fn dot32(b: u32, j: u32, xb: u32) -> vec4<f32> {
    let sm = scale_min_k4(b + 4u, j);
    let shift = 4u * (j & 1u);
    var s = vec4<f32>(0.0);
    for (var i = 0u; i < 8u; i++) {
        let q = word_at(b + 48u + 32u * (j / 2u) + 4u * i);
        let h = (word_at(b + 16u + 4u * i) >> j) & 0x01010101u;
        s += xdot(vec4<f32>(nibbles(q, shift) | (bytes4(h) << vec4<u32>(4u))), xb + 4u * i);
    }
    return f16_at(b) * sm.x * s - f16_at(b + 2u) * sm.y * xsum32(xb);
}

// type: Q6_K
const BLOCK_BYTES: u32 = 210u;
const SUBS: u32 = 8u;
fn dot32(b: u32, j: u32, xb: u32) -> vec4<f32> {
    let n = j / 4u;
    let jj = j % 4u;
    let lshift = 4u * (jj / 2u);
    var s0 = vec4<f32>(0.0);
    var s1 = vec4<f32>(0.0);
    for (var i = 0u; i < 8u; i++) {
        let ql = word_at(b + 64u * n + 32u * (jj % 2u) + 4u * i);
        let qh = (word_at(b + 128u + 32u * n + 4u * i) >> (2u * jj)) & 0x03030303u;
        let q = vec4<f32>(nibbles(ql, lshift) | (bytes4(qh) << vec4<u32>(4u))) - 32.0;
        let d = xdot(q, xb + 4u * i);
        if i < 4u {
            s0 += d;
        } else {
            s1 += d;
        }
    }
    let sc0 = f32(extractBits(bitcast<i32>(byte_at(b + 192u + 2u * j)), 0u, 8u));
    let sc1 = f32(extractBits(bitcast<i32>(byte_at(b + 193u + 2u * j)), 0u, 8u));
    return f16_at(b + 208u) * (sc0 * s0 + sc1 * s1);
}
