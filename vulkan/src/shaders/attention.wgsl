// Causal attention of `n` query tokens over the f16 cache: one workgroup per (head, token).
// Token t sees positions 0 ..= pos0 + t. Scores go to `scores` (a row of n_ctx per head and
// token), then softmax, then the weighted sum of values. Grouped-query heads share a KV head.
struct Params {
    n_head: u32,
    n_head_kv: u32,
    head_dim: u32,
    n_ctx: u32,
    scale: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> kc: array<u32>;
@group(0) @binding(2) var<storage, read> vc: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read_write> scores: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;
@group(0) @binding(6) var<uniform> step: Step;

const WG: u32 = 64u;
var<workgroup> qs: array<f32, 256>;
var<workgroup> red: array<f32, 64>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let h = wid.x;
    let t = wid.y;
    let hd = p.head_dim;
    let kvh = h / (p.n_head / p.n_head_kv);
    let kv_pairs = p.n_head_kv * hd / 2u;
    let n_kv = step.pos0 + t + 1u;
    let qb = (t * p.n_head + h) * hd;
    for (var i = li; i < hd; i += WG) {
        qs[i] = q[qb + i];
    }
    workgroupBarrier();
    let sb = (t * p.n_head + h) * p.n_ctx;
    var mx = -3.0e38;
    for (var j = li; j < n_kv; j += WG) {
        let kb = j * kv_pairs + kvh * hd / 2u;
        var s = 0.0;
        for (var d = 0u; d < hd / 2u; d++) {
            let k = unpack2x16float(kc[kb + d]);
            s += qs[2u * d] * k.x + qs[2u * d + 1u] * k.y;
        }
        s *= p.scale;
        scores[sb + j] = s;
        mx = max(mx, s);
    }
    red[li] = mx;
    workgroupBarrier();
    for (var k = WG / 2u; k > 0u; k >>= 1u) {
        if li < k {
            red[li] = max(red[li], red[li + k]);
        }
        workgroupBarrier();
    }
    mx = red[0];
    workgroupBarrier();
    var sum = 0.0;
    for (var j = li; j < n_kv; j += WG) {
        let e = exp(scores[sb + j] - mx);
        scores[sb + j] = e;
        sum += e;
    }
    red[li] = sum;
    storageBarrier();
    workgroupBarrier();
    for (var k = WG / 2u; k > 0u; k >>= 1u) {
        if li < k {
            red[li] += red[li + k];
        }
        workgroupBarrier();
    }
    let inv = 1.0 / red[0];
    for (var d = li; d < hd; d += WG) {
        let vb = kvh * hd / 2u + d / 2u;
        let hi = (d & 1u) == 1u;
        var acc = 0.0;
        for (var j = 0u; j < n_kv; j++) {
            let v = unpack2x16float(vc[j * kv_pairs + vb]);
            acc += scores[sb + j] * select(v.x, v.y, hi);
        }
        out[qb + d] = acc * inv;
    }
}
