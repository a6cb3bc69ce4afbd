//! Writes a copy of a GGUF model with its weights in another type, by llama-quantize's rules
//! (`hearth_models::requantize`). For maintainers making test fixtures
//! (`scripts/make-type-fixtures.sh`), not a user command.
//!
//! ```text
//! cargo run --release --example requantize -- SRC.gguf OUT.gguf TYPE [--output TYPE]
//! ```
//! `--output TYPE` adds an untied `output.weight` (token_embd in TYPE) to a tied model.

use anyhow::{bail, Context};
use hearth_models::gguf::GgufFile;
use hearth_models::requantize::{requantize, RequantizeOptions};
use hearth_quant::GgmlType;

fn parse_type(name: &str) -> anyhow::Result<GgmlType> {
    GgmlType::from_name(name).with_context(|| format!("unknown type `{name}`"))
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (src, out, target, output) = match args.as_slice() {
        [src, out, ty] => (src, out, parse_type(ty)?, None),
        [src, out, ty, flag, oty] if flag == "--output" => {
            (src, out, parse_type(ty)?, Some(parse_type(oty)?))
        }
        _ => bail!("usage: requantize SRC.gguf OUT.gguf TYPE [--output TYPE]"),
    };
    let file = GgufFile::open(src)?;
    let opts = RequantizeOptions { add_output: output };
    let writer = requantize(&file, target, &opts)?;
    writer
        .write_to_file(out)
        .with_context(|| format!("writing {out}"))?;
    let written = GgufFile::open(out)?;
    let mut types = std::collections::BTreeMap::<String, usize>::new();
    for t in written.tensors() {
        *types.entry(t.ty.to_string()).or_default() += 1;
    }
    eprintln!("{out}: {} tensors {types:?}", written.tensors().len());
    Ok(())
}
