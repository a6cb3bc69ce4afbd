// The per-call values every kernel may read (written once per forward call).
struct Step {
    n: u32,
    pos0: u32,
    out_first: u32,
    out_n: u32,
}
