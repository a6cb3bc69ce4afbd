// Rotary embeddings in place over every head of `n` tokens (hearth-models' `Rope::apply`):
// pair i of a head rotates by `(pos0 + t) * inv_freq[i]`, where `inv_freq` already holds
// `freq_scale * base^(-2i/n_rot) / freq_factor[i]`. Normal pairs (2i, 2i+1), NeoX (i, i + n_rot/2).
struct Params {
    n_heads: u32,
    head_dim: u32,
    n_rot: u32,
    neox: u32,
}

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read> inv_freq: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;
@group(0) @binding(3) var<uniform> step: Step;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let half = p.n_rot / 2u;
    let t = gid.y;
    if gid.x >= p.n_heads * half || t >= step.n {
        return;
    }
    let head = gid.x / half;
    let i = gid.x % half;
    let theta = f32(step.pos0 + t) * inv_freq[i];
    let c = cos(theta);
    let s = sin(theta);
    let base = (t * p.n_heads + head) * p.head_dim;
    var a = base + 2u * i;
    var b = a + 1u;
    if p.neox == 1u {
        a = base + i;
        b = a + half;
    }
    let x0 = x[a];
    let x1 = x[b];
    x[a] = x0 * c - x1 * s;
    x[b] = x0 * s + x1 * c;
}
