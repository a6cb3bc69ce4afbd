// y[t][out_off + r] = w[r] · x[t] for the rows of one weight part and a tile of TN tokens.
// One workgroup per (row, token tile): every thread dequantizes sub-blocks of 32 weights with
// the type's `decode32` (prepended to this file) and dots them with the tile's activations, so a
// weight is read and decoded once per TN tokens. Generation (one token) is the TN = 1 case.

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
const TN: u32 = 8u;

var<workgroup> red: array<f32, 512>; // TN * WG

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

fn sbyte(word: u32, k: u32) -> f32 {
    return f32(extractBits(bitcast<i32>(word), 8u * k, 8u));
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let row = wid.x;
    let n_tok = select(step.n, step.out_n, p.head == 1u);
    let t0 = wid.y * TN;
    let nt = min(TN, n_tok - min(n_tok, t0));
    var acc: array<f32, 8>;
    for (var t = 0u; t < TN; t++) {
        acc[t] = 0.0;
    }
    let nsub = p.cols / 32u;
    let rb = row * p.row_bytes;
    var wv: array<f32, 32>;
    for (var j = li; j < nsub; j += WG) {
        decode32(rb + (j / SUBS) * BLOCK_BYTES, j % SUBS, &wv);
        for (var t = 0u; t < nt; t++) {
            let xb = (t0 + t) * p.cols + j * 32u;
            var s = 0.0;
            for (var e = 0u; e < 32u; e++) {
                s += wv[e] * x[xb + e];
            }
            acc[t] += s;
        }
    }
    for (var t = 0u; t < TN; t++) {
        red[t * WG + li] = acc[t];
    }
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if li < s {
            for (var t = 0u; t < TN; t++) {
                red[t * WG + li] += red[t * WG + li + s];
            }
        }
        workgroupBarrier();
    }
    if li < nt {
        y[(t0 + li) * p.out_stride + p.out_off + row] = red[li * WG];
    }
}
