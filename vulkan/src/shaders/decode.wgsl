//! Per-type decoders of one sub-block of 32 weights, `decode32(block byte offset, sub-block, out)`,
//! each mirroring hearth-quant's scalar `dequantize_block` of that type. The Rust side cuts
//! this file at the `// type:` lines and prepends the wanted section to matmul.wgsl.

// type: F32
const BLOCK_BYTES: u32 = 128u;
const SUBS: u32 = 1u;
fn decode32(b: u32, sub: u32, o: ptr<function, array<f32, 32>>) {
    for (var i = 0u; i < 32u; i++) {
        (*o)[i] = bitcast<f32>(w[(b >> 2u) + i]);
    }
}

// type: F16
const BLOCK_BYTES: u32 = 64u;
const SUBS: u32 = 1u;
fn decode32(b: u32, sub: u32, o: ptr<function, array<f32, 32>>) {
    for (var i = 0u; i < 16u; i++) {
        let v = unpack2x16float(w[(b >> 2u) + i]);
        (*o)[2u * i] = v.x;
        (*o)[2u * i + 1u] = v.y;
    }
}

// type: Q4_0
const BLOCK_BYTES: u32 = 18u;
const SUBS: u32 = 1u;
fn decode32(b: u32, sub: u32, o: ptr<function, array<f32, 32>>) {
    let d = f16_at(b);
    for (var i = 0u; i < 4u; i++) {
        let q = word_at(b + 2u + 4u * i);
        for (var k = 0u; k < 4u; k++) {
            let v = (q >> (8u * k)) & 0xffu;
            (*o)[4u * i + k] = d * (f32(v & 0xfu) - 8.0);
            (*o)[16u + 4u * i + k] = d * (f32(v >> 4u) - 8.0);
        }
    }
}

// type: Q4_1
const BLOCK_BYTES: u32 = 20u;
const SUBS: u32 = 1u;
fn decode32(b: u32, sub: u32, o: ptr<function, array<f32, 32>>) {
    let d = f16_at(b);
    let m = f16_at(b + 2u);
    for (var i = 0u; i < 4u; i++) {
        let q = word_at(b + 4u + 4u * i);
        for (var k = 0u; k < 4u; k++) {
            let v = (q >> (8u * k)) & 0xffu;
            (*o)[4u * i + k] = d * f32(v & 0xfu) + m;
            (*o)[16u + 4u * i + k] = d * f32(v >> 4u) + m;
        }
    }
}

// type: Q5_0
const BLOCK_BYTES: u32 = 22u;
const SUBS: u32 = 1u;
fn decode32(b: u32, sub: u32, o: ptr<function, array<f32, 32>>) {
    let d = f16_at(b);
    let qh = word_at(b + 2u);
    for (var i = 0u; i < 4u; i++) {
        let q = word_at(b + 6u + 4u * i);
        for (var k = 0u; k < 4u; k++) {
            let v = (q >> (8u * k)) & 0xffu;
            let e = 4u * i + k;
            let lo = (v & 0xfu) | (((qh >> e) & 1u) << 4u);
            let hi = (v >> 4u) | (((qh >> (e + 16u)) & 1u) << 4u);
            (*o)[e] = d * (f32(lo) - 16.0);
            (*o)[16u + e] = d * (f32(hi) - 16.0);
        }
    }
}

// type: Q8_0
const BLOCK_BYTES: u32 = 34u;
const SUBS: u32 = 1u;
fn decode32(b: u32, sub: u32, o: ptr<function, array<f32, 32>>) {
    let d = f16_at(b);
    for (var i = 0u; i < 8u; i++) {
        let q = word_at(b + 2u + 4u * i);
        for (var k = 0u; k < 4u; k++) {
            (*o)[4u * i + k] = d * sbyte(q, k);
        }
    }
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
fn decode32(b: u32, j: u32, o: ptr<function, array<f32, 32>>) {
    let sm = scale_min_k4(b + 4u, j);
    let d = f16_at(b) * sm.x;
    let m = f16_at(b + 2u) * sm.y;
    let shift = 4u * (j & 1u);
    for (var i = 0u; i < 8u; i++) {
        let q = word_at(b + 16u + 32u * (j / 2u) + 4u * i);
        for (var k = 0u; k < 4u; k++) {
            (*o)[4u * i + k] = d * f32((q >> (8u * k + shift)) & 0xfu) - m;
        }
    }
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
fn decode32(b: u32, j: u32, o: ptr<function, array<f32, 32>>) {
    let sm = scale_min_k4(b + 4u, j);
    let d = f16_at(b) * sm.x;
    let m = f16_at(b + 2u) * sm.y;
    let shift = 4u * (j & 1u);
    for (var i = 0u; i < 8u; i++) {
        let q = word_at(b + 48u + 32u * (j / 2u) + 4u * i);
        let h = word_at(b + 16u + 4u * i);
        for (var k = 0u; k < 4u; k++) {
            let lo = (q >> (8u * k + shift)) & 0xfu;
            let hi = (h >> (8u * k + j)) & 1u;
            (*o)[4u * i + k] = d * f32(lo | (hi << 4u)) - m;
        }
    }
}

// type: Q6_K
const BLOCK_BYTES: u32 = 210u;
const SUBS: u32 = 8u;
fn decode32(b: u32, j: u32, o: ptr<function, array<f32, 32>>) {
    let d = f16_at(b + 208u);
    let n = j / 4u;
    let jj = j % 4u;
    let s0 = d * f32(extractBits(bitcast<i32>(byte_at(b + 192u + 2u * j)), 0u, 8u));
    let s1 = d * f32(extractBits(bitcast<i32>(byte_at(b + 193u + 2u * j)), 0u, 8u));
    let lshift = 4u * (jj / 2u);
    for (var i = 0u; i < 8u; i++) {
        let ql = word_at(b + 64u * n + 32u * (jj % 2u) + 4u * i);
        let qh = word_at(b + 128u + 32u * n + 4u * i);
        let sc = select(s1, s0, i < 4u);
        for (var k = 0u; k < 4u; k++) {
            let lo = (ql >> (8u * k + lshift)) & 0xfu;
            let hi = (qh >> (8u * k + 2u * jj)) & 3u;
            (*o)[4u * i + k] = sc * (f32(lo | (hi << 4u)) - 32.0);
        }
    }
}
