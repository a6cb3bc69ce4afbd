//! hearth-simd: the CPU kernels, chosen once at run time.
//!
//! The contract (after ggml's `type_traits_cpu`): for each weight type, a [`MatKernels`] entry
//! names the activation type it pairs with (`vec_dot_type`), a function that quantizes a row of
//! f32 activations to it, and a function that takes the dot product of one weight row with one
//! activation row, both as raw bytes. The forward pass only ever calls through this table.
//!
//! Beside the matmul table, each set has a [`VecKernels`] entry: the f32/f16 vector operations of
//! attention (ggml's `simd_gemm`, `ggml_vec_soft_max_f32`, `ggml_vec_dot_f16`, `ggml_vec_mad_f16`
//! ...), with the same per-element arithmetic (fused multiply-adds, summation order) as ggml's
//! vector code so that hearth rounds where llama.cpp rounds.
//!
//! Sets: `scalar` ([`scalar`], hearth-quant's reference code, every CPU), on x86-64 `avx2`
//! ([`x86::avx2`], AVX2 + FMA + F16C), `avxvnni` and `avx512` ([`x86::vnni`]: the AVX2 set with
//! `vpdpbusd` where it pays, for CPUs with AVX-VNNI or AVX-512 VNNI), on aarch64 `neon` ([`arm::neon`], every 64-bit ARM CPU)
//! and `neon-dotprod` (the same kernels with the ARMv8.2 `sdot` byte dot product). The best set
//! the CPU reports is chosen on first use, never from compile-time flags, so one binary runs
//! everywhere; `HEARTH_KERNELS=scalar|avx2|avxvnni|avx512|neon|neon-dotprod` forces a set ([`select`] fails if
//! the CPU lacks it). A set that lacks a type falls back to the scalar entry for it.

#[cfg(target_arch = "aarch64")]
pub mod arm;
pub mod scalar;
#[cfg(target_arch = "x86_64")]
pub mod x86;

use std::sync::OnceLock;

use hearth_quant::GgmlType;

/// `vec_dot_n(weights, act, stride, out)`: see [`MatKernels::vec_dot_n`].
pub type VecDotN = fn(weights: &[u8], act: &[u8], stride: usize, out: &mut [f32]);

/// `gemm_f32(c, a, b, m, k, n)`: see [`VecKernels::gemm_f32`].
pub type GemmF32 = fn(c: &mut [f32], a: &[f32], b: &[f32], m: usize, k: usize, n: usize);

/// The kernels for one weight type.
#[derive(Clone, Copy, Debug)]
pub struct MatKernels {
    /// The weight type.
    pub ty: GgmlType,
    /// The activation type the weights are multiplied with.
    pub vec_dot_type: GgmlType,
    /// Quantize one row of activations into `vec_dot_type` blocks. `dst` holds exactly the
    /// row's bytes and is aligned to 16 bytes.
    pub quantize_act: fn(src: &[f32], dst: &mut [u8]),
    /// Dot product of one weight row with one activation row of the same length (raw bytes,
    /// whole blocks; the activation row aligned to 16 bytes, the weight row as mapped).
    pub vec_dot: fn(weights: &[u8], act: &[u8]) -> f32,
    /// Dot products of one weight row with `out.len()` activation rows, row `i` starting at byte
    /// `i * stride` of `act` (each aligned to 16 bytes): the prompt path, which unpacks each
    /// weight block once for several tokens. Each result equals `vec_dot`'s bit for bit.
    pub vec_dot_n: VecDotN,
    /// A faster prompt path with activations in a layout of its own, where the set has one.
    pub gemm: Option<&'static Gemm>,
    /// A faster single-token path with activations in a layout of its own, where the set has
    /// one (a [`Gemm`] used when one token is multiplied).
    pub gemv: Option<&'static Gemm>,
}

/// `kernel(weights, rows, act, stride, n, out, out_stride)`: see [`Gemm::kernel`].
pub type GemmKernel = fn(
    weights: &[u8],
    rows: usize,
    act: &[u8],
    stride: usize,
    n: usize,
    out: &mut [f32],
    out_stride: usize,
);

/// A prompt (matrix × several tokens) path with its own activation layout: the activations are
/// quantized to `vec_dot_type` exactly as [`MatKernels::quantize_act`] does, then laid out as
/// the kernel wants them. Each result is the same exact integer sum per block as
/// [`MatKernels::vec_dot`]'s; only the order of the f32 additions (and, where a kernel takes
/// the two f16 scales' product in f32 first, its rounding) differs.
#[derive(Clone, Copy, Debug)]
pub struct Gemm {
    /// Bytes of one activation row of `cols` elements (whole weight blocks).
    pub act_bytes: fn(cols: usize) -> usize,
    /// Quantize one row of activations into this layout (`dst` holds `act_bytes(src.len())`
    /// bytes, 32-byte aligned).
    pub quantize_act: fn(src: &[f32], dst: &mut [u8]),
    /// Weight rows one call of `kernel` takes at most (it unpacks them together).
    pub rows: usize,
    /// `weights` holds `rows` consecutive weight rows (1 ≤ `rows` ≤ [`Gemm::rows`]); for each
    /// of the `n` activation rows (row `i` at byte `i * stride` of `act`, 32-byte aligned),
    /// writes weight row `r`'s dot product with it to `out[i * out_stride + r]`.
    pub kernel: GemmKernel,
}

/// Vector operations on f32 and f16 rows (f16 values as their bit patterns).
#[derive(Clone, Copy, Debug)]
pub struct VecKernels {
    /// `C[m×n] += A[m×k] · B[k×n]`, all row-major; each element is a chain of fused
    /// multiply-adds in `k` order starting from its old value (ggml's `simd_gemm`).
    pub gemm_f32: GemmF32,
    /// `x[i] = exp(x[i] - max)` with ggml's vector `expf`, returning the sum of the results
    /// summed as `ggml_vec_soft_max_f32` sums them (groups of 8 in f32, the groups in f64).
    pub softmax_exp: fn(x: &mut [f32], max: f32) -> f64,
    /// `Σ x[i]·y[i]` of two f16 rows, in f32 lanes as `ggml_vec_dot_f16`.
    pub dot_f16: fn(x: &[u16], y: &[u16]) -> f32,
    /// `y[i] += x[i]·v`, fused (ggml's `ggml_vec_mad_f32`).
    pub mad_f32: fn(y: &mut [f32], x: &[f32], v: f32),
    /// `y[i] = f16(y[i] + x[i]·v)` (ggml's `ggml_vec_mad_f16`).
    pub mad_f16: fn(y: &mut [u16], x: &[u16], v: f32),
    /// `y[i] = f16(y[i]·v)` (ggml's `ggml_vec_scale_f16`).
    pub scale_f16: fn(y: &mut [u16], v: f32),
    /// f16 to f32, exact.
    pub f16_to_f32: fn(src: &[u16], dst: &mut [f32]),
}

/// A kernel set: its name and the entries it provides.
#[derive(Debug)]
pub struct KernelSet {
    pub name: &'static str,
    table: &'static [MatKernels],
    /// The vector operations of this set.
    pub vec: &'static VecKernels,
}

impl KernelSet {
    /// The entry of this set for `ty` (not falling back to scalar).
    pub fn own(&self, ty: GgmlType) -> Option<&'static MatKernels> {
        self.table.iter().find(|k| k.ty == ty)
    }

    /// The entry for `ty`: this set's, else the scalar one.
    pub fn get(&self, ty: GgmlType) -> Option<&'static MatKernels> {
        self.own(ty)
            .or_else(|| scalar::TABLE.iter().find(|k| k.ty == ty))
    }
}

/// The 8 six-bit scales (bytes 0..8) and 8 six-bit mins (bytes 8..16) of a Q4_K/Q5_K block,
/// unpacked from its 12 packed bytes as ggml's code does (`utmp` and the three masks); every set uses it.
#[inline]
pub(crate) fn k4_scales_mins(packed: &[u8; 12]) -> [u32; 4] {
    const KMASK1: u32 = 0x3f3f_3f3f;
    const KMASK2: u32 = 0x0f0f_0f0f;
    const KMASK3: u32 = 0x0303_0303;
    let w = |i: usize| {
        u32::from_le_bytes([
            packed[4 * i],
            packed[4 * i + 1],
            packed[4 * i + 2],
            packed[4 * i + 3],
        ])
    };
    let (u0, u1, u2) = (w(0), w(1), w(2));
    [
        u0 & KMASK1,
        (u2 & KMASK2) | (((u0 >> 6) & KMASK3) << 4),
        u1 & KMASK1,
        ((u2 >> 4) & KMASK2) | (((u1 >> 6) & KMASK3) << 4),
    ]
}

static SCALAR: KernelSet = KernelSet {
    name: "scalar",
    table: &scalar::TABLE,
    vec: &scalar::VEC,
};

#[cfg(target_arch = "x86_64")]
static AVX2: KernelSet = KernelSet {
    name: "avx2",
    table: &x86::avx2::TABLE,
    vec: &x86::avx2_vec::VEC,
};

#[cfg(target_arch = "x86_64")]
static AVX512: KernelSet = KernelSet {
    name: "avx512",
    table: &x86::vnni::TABLE_AVX512,
    vec: &x86::avx2_vec::VEC,
};

#[cfg(target_arch = "x86_64")]
static AVXVNNI: KernelSet = KernelSet {
    name: "avxvnni",
    table: &x86::vnni::TABLE_AVXVNNI,
    vec: &x86::avx2_vec::VEC,
};

#[cfg(target_arch = "aarch64")]
static NEON_DOTPROD: KernelSet = KernelSet {
    name: "neon-dotprod",
    table: &arm::neon::TABLE_DOTPROD,
    vec: &arm::neon_vec::VEC,
};

#[cfg(target_arch = "aarch64")]
static NEON: KernelSet = KernelSet {
    name: "neon",
    table: &arm::neon::TABLE,
    vec: &arm::neon_vec::VEC,
};

/// Names `HEARTH_KERNELS` accepts (every build knows every name, so asking an x86 build for
/// `neon` says the CPU cannot run it rather than that the name is unknown).
pub const KNOWN_SETS: &[&str] = &[
    "scalar",
    "avx2",
    "avxvnni",
    "avx512",
    "neon",
    "neon-dotprod",
];

/// The sets this CPU can run, best first.
pub fn available() -> Vec<&'static KernelSet> {
    let mut sets = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        if x86::vnni::detected_avx512() {
            sets.push(&AVX512);
        }
        if x86::vnni::detected_avxvnni() {
            sets.push(&AVXVNNI);
        }
        if x86::avx2::detected() {
            sets.push(&AVX2);
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        if arm::neon::detected_dotprod() {
            sets.push(&NEON_DOTPROD);
        }
        if arm::neon::detected() {
            sets.push(&NEON);
        }
    }
    sets.push(&SCALAR);
    sets
}

/// The set named `name`, if this CPU can run it.
pub fn by_name(name: &str) -> Result<&'static KernelSet, String> {
    if !KNOWN_SETS.contains(&name) {
        return Err(format!(
            "unknown kernel set `{name}` (this build has: {})",
            KNOWN_SETS.join(", ")
        ));
    }
    available()
        .into_iter()
        .find(|s| s.name == name)
        .ok_or_else(|| format!("this CPU cannot run the `{name}` kernels"))
}

static SELECTED: OnceLock<Result<&'static KernelSet, String>> = OnceLock::new();

/// The set in use: `HEARTH_KERNELS` if set, else the best this CPU runs. Decided once.
pub fn select() -> Result<&'static KernelSet, String> {
    SELECTED
        .get_or_init(|| match std::env::var("HEARTH_KERNELS") {
            Ok(name) if !name.is_empty() => {
                by_name(&name.to_ascii_lowercase()).map_err(|e| format!("HEARTH_KERNELS: {e}"))
            }
            _ => Ok(available()[0]),
        })
        .clone()
}

/// The name of the set in use (`scalar` when `HEARTH_KERNELS` names one this CPU lacks; callers
/// that load a model call [`select`] first and report that error).
pub fn kernel_set() -> &'static str {
    select().map_or("scalar", |s| s.name)
}

/// The kernels for weights of type `ty`, or `None` when hearth cannot multiply by it.
pub fn mat_kernels(ty: GgmlType) -> Option<&'static MatKernels> {
    select().unwrap_or(&SCALAR).get(ty)
}

/// The vector operations of the set in use.
pub fn vec_kernels() -> &'static VecKernels {
    select().unwrap_or(&SCALAR).vec
}
