//! `hearth info MODEL`: what a user wants to know before running a model.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use hearth_models::gguf::GgufFile;
use hearth_models::tokenizer::Tokenizer;

use crate::chat::defaults::ModelDefaults;
use crate::chat::template::ChatTemplate;
use crate::inspect::{human_bytes, human_count, ModelSummary};

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// A downloaded model's name, or a path to a GGUF file (the first part of a split model).
    #[arg(required_unless_present_any = ["kernel_sets", "gpus"])]
    pub model: Option<PathBuf>,
    /// List the CPU kernel sets this machine can run, one per line, the default first (each is a
    /// value for `HEARTH_KERNELS`), and exit.
    #[arg(long)]
    pub kernel_sets: bool,
    /// List the GPU adapters (Vulkan, Metal) with their memory limits and features, the one
    /// `--gpu` picks marked (`HEARTH_GPU=N` picks another), and exit. Needs a build with
    /// `--features vulkan`.
    #[arg(long)]
    pub gpus: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: InfoArgs) -> anyhow::Result<()> {
    if args.kernel_sets {
        for set in hearth_simd::available() {
            println!("{}", set.name);
        }
        return Ok(());
    }
    if args.gpus {
        return list_gpus();
    }
    let Some(model) = &args.model else {
        anyhow::bail!("no model given");
    };
    let model = &crate::store::resolve_local(model)?;
    hearth_simd::select().map_err(anyhow::Error::msg)?;
    // Opening validates the header and every tensor's bounds; building the tokenizer validates the
    // vocabulary. Both happen on load too, so a file that passes here will not fail there.
    let file = GgufFile::open(model)?;
    let summary = ModelSummary::from_gguf(&file)?;
    let tokenizer = if summary.vocab_model.is_some() {
        Some(
            Tokenizer::from_gguf(&file)
                .with_context(|| format!("{}: invalid vocabulary", model.display()))?,
        )
    } else {
        None
    };
    let has_tokenizer = tokenizer.is_some();
    // What chatting with the model will use: its template (or the built-in fallback) and the
    // family's defaults.
    let chat = match &tokenizer {
        Some(t) => Some((
            ChatTemplate::for_model(&file, t, None)?.name().to_string(),
            ModelDefaults::detect(&file, t),
        )),
        None => None,
    };
    // The context chatting defaults to: the family's (8192 for reasoning models), capped at the
    // trained length.
    let ctx = match &chat {
        Some((_, d)) => summary
            .context_length
            .filter(|&n| n > 0)
            .map_or(d.n_ctx as u64, |n| n.min(d.n_ctx as u64)),
        None => summary.default_ctx(),
    };
    if args.json {
        let mut json = to_json(&summary, &file, has_tokenizer, ctx);
        if let Some((template, defaults)) = &chat {
            json["chat_template_used"] = template.as_str().into();
            json["defaults"] = defaults
                .describe()
                .into_iter()
                .map(|(k, v)| (k.to_string(), serde_json::Value::from(v)))
                .collect::<serde_json::Map<_, _>>()
                .into();
        }
        println!("{json}");
    } else {
        print!("{}", to_text(&summary, &file, ctx));
        if let Some((template, defaults)) = &chat {
            println!("chat           template {template}");
            for (what, value) in defaults.describe() {
                println!("  {what:<14} {value}");
            }
        }
    }
    Ok(())
}

fn to_text(s: &ModelSummary, file: &GgufFile, ctx: u64) -> String {
    let mut out = String::new();
    let paths: Vec<String> = file
        .paths()
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let _ = writeln!(out, "file           {}", paths.join(" + "));
    if let Some(name) = &s.name {
        let _ = writeln!(out, "name           {name}");
    }
    let _ = writeln!(out, "architecture   {}", s.architecture);
    let _ = writeln!(
        out,
        "parameters     {} ({} tensors)",
        human_count(s.params),
        file.tensors().len()
    );
    let _ = writeln!(
        out,
        "file size      {} (GGUF v{})",
        human_bytes(s.file_bytes),
        file.version()
    );
    if let Some(main) = s.main_type() {
        let _ = writeln!(out, "quantization   {main}");
    }
    for (name, share) in &s.quant_mix {
        let _ = writeln!(
            out,
            "  {name:<8} {:>4} tensors {:>10} params {:>10}",
            share.tensors,
            human_count(share.params),
            human_bytes(share.bytes)
        );
    }
    let sets: Vec<&str> = hearth_simd::available().iter().map(|k| k.name).collect();
    let _ = writeln!(
        out,
        "kernels        {} (this CPU runs: {})",
        hearth_simd::kernel_set(),
        sets.join(", ")
    );
    let dim = |v: Option<u64>| v.map_or("?".to_string(), |v| v.to_string());
    let _ = writeln!(out, "context        {} (trained)", dim(s.context_length));
    let _ = writeln!(
        out,
        "shape          {} layers, embedding {}, {} heads ({} KV heads)",
        dim(s.block_count),
        dim(s.embedding_length),
        dim(s.head_count),
        dim(s.head_count_kv)
    );
    let _ = writeln!(
        out,
        "vocabulary     {} tokens, {} (pre-tokenizer {})",
        s.vocab_size.map_or("?".to_string(), |n| n.to_string()),
        s.vocab_model.as_deref().unwrap_or("none"),
        s.vocab_pre.as_deref().unwrap_or("default")
    );
    let _ = writeln!(
        out,
        "chat template  {}",
        if s.chat_template { "yes" } else { "no" }
    );
    match s.kv_cache_bytes(ctx) {
        Some(kv) => {
            let _ = writeln!(
                out,
                "memory         {} weights + {} KV cache (f16, {ctx} tokens) = {}",
                human_bytes(s.tensor_bytes),
                human_bytes(kv),
                human_bytes(s.tensor_bytes.saturating_add(kv))
            );
        }
        None => {
            let _ = writeln!(
                out,
                "memory         {} weights",
                human_bytes(s.tensor_bytes)
            );
        }
    }
    out
}

fn to_json(s: &ModelSummary, file: &GgufFile, tokenizer_ok: bool, ctx: u64) -> serde_json::Value {
    let mix: serde_json::Map<String, serde_json::Value> = s
        .quant_mix
        .iter()
        .map(|(name, share)| {
            (
                name.to_string(),
                serde_json::json!({"tensors": share.tensors, "params": share.params, "bytes": share.bytes}),
            )
        })
        .collect();
    serde_json::json!({
        "files": file.paths().iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        "gguf_version": file.version(),
        "name": s.name,
        "architecture": s.architecture,
        "params": s.params,
        "tensors": file.tensors().len(),
        "file_bytes": s.file_bytes,
        "weight_bytes": s.tensor_bytes,
        "quantization": s.main_type(),
        "quant_mix": mix,
        "context_length": s.context_length,
        "block_count": s.block_count,
        "embedding_length": s.embedding_length,
        "head_count": s.head_count,
        "head_count_kv": s.head_count_kv,
        "vocab_model": s.vocab_model,
        "vocab_pre": s.vocab_pre,
        "vocab_size": s.vocab_size,
        "tokenizer_ok": tokenizer_ok,
        "chat_template": s.chat_template,
        "default_ctx": ctx,
        "kv_cache_bytes": s.kv_cache_bytes(ctx),
    })
}

#[cfg(feature = "vulkan")]
fn list_gpus() -> anyhow::Result<()> {
    use hearth_models::gpu::{list_adapters, Gpu};
    let adapters = list_adapters();
    if adapters.is_empty() {
        println!("no GPU adapter found (Vulkan or Metal; on Debian: apt install mesa-vulkan-drivers libvulkan1)");
        return Ok(());
    }
    let chosen = Gpu::open().ok().map(|g| g.describe());
    for a in &adapters {
        let pick = chosen.as_deref() == Some(format!("{}, {}", a.name, a.kind).as_str());
        println!(
            "{}{}: {} ({}, {}, {}){}",
            if pick { "* " } else { "  " },
            a.index,
            a.name,
            a.kind,
            a.backend,
            a.driver,
            if a.usable {
                ""
            } else {
                " [cannot run hearth's kernels]"
            }
        );
        println!(
            "     largest buffer {}, largest storage binding {}; features: {}",
            human_bytes(a.max_buffer),
            human_bytes(a.max_binding),
            if a.features.is_empty() {
                "none of note"
            } else {
                &a.features
            }
        );
    }
    Ok(())
}

#[cfg(not(feature = "vulkan"))]
fn list_gpus() -> anyhow::Result<()> {
    anyhow::bail!(crate::gpu::NOT_BUILT)
}
