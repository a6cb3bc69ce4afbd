// out[t] = x[t] / sqrt(mean(x[t]²) + eps) * weight, one workgroup per token (y; hearth-models'
// `rms_norm`; f32 partial sums instead of its f64).
struct Params {
    dim: u32,
    eps: f32,
    // 1: the output head, which normalizes only the tokens `step.out_first ..+ step.out_n`.
    head: u32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
@group(0) @binding(4) var<uniform> step: Step;

const WG: u32 = 64u;
var<workgroup> red: array<f32, 64>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let n_tok = select(step.n, step.out_n, p.head == 1u);
    if wid.y >= n_tok {
        return;
    }
    let t = wid.y + select(0u, step.out_first, p.head == 1u);
    let base = t * p.dim;
    var s = 0.0;
    for (var i = li; i < p.dim; i += WG) {
        let v = x[base + i];
        s += v * v;
    }
    red[li] = s;
    workgroupBarrier();
    for (var k = WG / 2u; k > 0u; k >>= 1u) {
        if li < k {
            red[li] += red[li + k];
        }
        workgroupBarrier();
    }
    let scale = 1.0 / sqrt(red[0] / f32(p.dim) + p.eps);
    let ob = select(base, wid.y * p.dim, p.head == 1u);
    for (var i = li; i < p.dim; i += WG) {
        out[ob + i] = x[base + i] * scale * weight[i];
    }
}
