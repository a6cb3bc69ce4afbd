//! hearth-simd: the CPU kernels, chosen once at run time.
//!
//! The contract (after ggml's `type_traits_cpu`): for each weight type, a [`MatKernels`] entry
//! names the activation type it pairs with (`vec_dot_type`), a function that quantizes a row of
//! f32 activations to it, and a function that takes the dot product of one weight row with one
//! activation row, both as raw bytes. The forward pass only ever calls through this table.
//!
//! Sets: `scalar` ([`scalar`], hearth-quant's reference code, every CPU) and `avx2`
//! ([`x86::avx2`], AVX2 + FMA + F16C). The best set the CPU reports is chosen on first use, never
//! from compile-time flags, so one binary runs everywhere; `HEARTH_KERNELS=scalar|avx2` forces a
//! set ([`select`] fails if the CPU lacks it). A set that lacks a type falls back to the scalar
//! entry for it.

pub mod scalar;
#[cfg(target_arch = "x86_64")]
pub mod x86;

use std::sync::OnceLock;

use hearth_quant::GgmlType;

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
}

/// A kernel set: its name and the entries it provides.
#[derive(Debug)]
pub struct KernelSet {
    pub name: &'static str,
    table: &'static [MatKernels],
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

static SCALAR: KernelSet = KernelSet {
    name: "scalar",
    table: &scalar::TABLE,
};

#[cfg(target_arch = "x86_64")]
static AVX2: KernelSet = KernelSet {
    name: "avx2",
    table: &x86::avx2::TABLE,
};

/// Names `HEARTH_KERNELS` accepts in this build.
pub const KNOWN_SETS: &[&str] = &["scalar", "avx2"];

/// The sets this CPU can run, best first.
pub fn available() -> Vec<&'static KernelSet> {
    let mut sets = Vec::new();
    #[cfg(target_arch = "x86_64")]
    if x86::avx2::detected() {
        sets.push(&AVX2);
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
