// y[t][i] += b[i] (a bias, `bcast` = 1) or y[t][i] += b[t][i] (a residual), for `n` tokens.
struct Params {
    dim: u32,
    bcast: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read_write> y: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;
@group(0) @binding(3) var<uniform> step: Step;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * 65535u * 256u;
    if i >= step.n * p.dim {
        return;
    }
    y[i] += b[select(i, i % p.dim, p.bcast == 1u)];
}
