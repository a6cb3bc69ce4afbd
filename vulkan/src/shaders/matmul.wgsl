// y[t][out_off + r] = w[r] · x[t] for the rows of one weight part and the call's tokens.
// One thread per (row, tile of TN tokens), 64 rows per workgroup: each thread goes over its row's
// sub-blocks of 32 weights with the type's `dot32` (prepended to this file), dequantizing in
// registers. No workgroup barriers and no private arrays: a software Vulkan (lavapipe) pays
// dearly for both; the rows' blocks are read in order, which caches serve on an iGPU.

struct MatParams {
    rows: u32,
    cols: u32,
    row_bytes: u32,
    out_stride: u32,
    out_off: u32,
    // 1: the output head, over the `step.out_n` rows its norm wrote (one per wanted token).
    head: u32,
    _pad0: u32,
    _pad1: u32,
}

struct Step {
    n: u32,
    pos0: u32,
    out_first: u32,
    out_n: u32,
}

@group(0) @binding(0) var<storage, read> w: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> p: MatParams;
@group(0) @binding(4) var<uniform> step: Step;

const WG: u32 = 64u;
// Tokens per thread: each decoded weight is used for this many tokens.
const TN: u32 = 4u;

fn word_at(o: u32) -> u32 {
    let i = o >> 2u;
    let sh = (o & 3u) * 8u;
    if sh == 0u {
        return w[i];
    }
    return (w[i] >> sh) | (w[i + 1u] << (32u - sh));
}

fn byte_at(o: u32) -> u32 {
    return (w[o >> 2u] >> ((o & 3u) * 8u)) & 0xffu;
}

fn f16_at(o: u32) -> f32 {
    let v = unpack2x16float(w[o >> 2u]);
    return select(v.x, v.y, (o & 2u) != 0u);
}

/// The four bytes of a word, as unsigned values.
fn bytes4(v: u32) -> vec4<u32> {
    return (vec4<u32>(v) >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(0xffu);
}

/// The low (shift 0) or high (shift 4) nibbles of a word's four bytes.
fn nibbles(v: u32, shift: u32) -> vec4<u32> {
    return (vec4<u32>(v) >> (vec4<u32>(0u, 8u, 16u, 24u) + shift)) & vec4<u32>(0xfu);
}

/// The four bytes of a word, as signed values.
fn sbytes(v: u32) -> vec4<f32> {
    return vec4<f32>((vec4<i32>(bitcast<i32>(v)) << vec4<u32>(24u, 16u, 8u, 0u)) >> vec4<u32>(24u));
}

fn x4(i: u32) -> vec4<f32> {
    return vec4<f32>(x[i], x[i + 1u], x[i + 2u], x[i + 3u]);
}

// Tokens of this thread's tile (1 to TN) and the stride between their activation rows.
var<private> tile_n: u32;
var<private> tile_stride: u32;

/// `q` (four weights) dotted with activations `i ..i + 4` of each token of the tile: one lane
/// per token. The weights are decoded once for the whole tile.
fn xdot(q: vec4<f32>, i: u32) -> vec4<f32> {
    let a = dot(q, x4(i));
    if tile_n == 1u {
        return vec4<f32>(a, 0.0, 0.0, 0.0);
    }
    let st = tile_stride;
    return vec4<f32>(a, dot(q, x4(i + st)), dot(q, x4(i + 2u * st)), dot(q, x4(i + 3u * st)));
}

/// The sums of activations `i ..i + 32` of each token of the tile (the min terms of Q4_1, Q4_K).
fn xsum32(i: u32) -> vec4<f32> {
    var s = vec4<f32>(0.0);
    for (var k = 0u; k < 32u; k += 4u) {
        s += xdot(vec4<f32>(1.0), i + k);
    }
    return s;
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let row = wid.x * WG + li;
    let n_tok = select(step.n, step.out_n, p.head == 1u);
    let t0 = wid.y * TN;
    if row >= p.rows || t0 >= n_tok {
        return;
    }
    tile_n = min(TN, n_tok - t0);
    tile_stride = p.cols;
    let nsub = p.cols / 32u;
    let rb = row * p.row_bytes;
    var acc = vec4<f32>(0.0);
    for (var j = 0u; j < nsub; j++) {
        acc += dot32(rb + (j / SUBS) * BLOCK_BYTES, j % SUBS, t0 * p.cols + j * 32u);
    }
    for (var t = 0u; t < tile_n; t++) {
        y[(t0 + t) * p.out_stride + p.out_off + row] = acc[t];
    }
}
