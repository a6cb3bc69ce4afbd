// Store `n` rows of `dim` f32 values as f16 pairs at cache rows `pos0 ..`.
struct Params {
    dim: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> cache: array<u32>;
@group(0) @binding(2) var<uniform> p: Params;
@group(0) @binding(3) var<uniform> step: Step;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let pairs = p.dim / 2u;
    let t = gid.y;
    if gid.x >= pairs || t >= step.n {
        return;
    }
    let s = t * p.dim + 2u * gid.x;
    cache[(step.pos0 + t) * pairs + gid.x] = pack2x16float(vec2<f32>(src[s], src[s + 1u]));
}
