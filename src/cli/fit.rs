//! `hearth fit [NAME...]`: for each catalogued model (or the ones named), whether it fits this
//! machine's memory at the chosen context, and an estimate of its generation speed from a short
//! measured probe of this machine (cached) and the bytes each token reads.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use hearth_models::gguf::GgufFile;
use hearth_models::kv_cache::CacheType;

use crate::chat::defaults::{DEFAULT_CTX, REASONING_CTX};
use crate::inspect::human_bytes;
use crate::store::catalogue::{self, Entry};
use crate::store::fit::{self, Shape, Traffic};
use crate::store::probe::Probe;
use crate::store::resolve::{self, Spec};
use crate::store::Store;

#[derive(Debug, Args)]
pub struct FitArgs {
    /// Models to check (names or paths); default: every catalogued model.
    pub names: Vec<String>,
    /// Context length to fit (default: 8192 for reasoning models, 4096 for others).
    #[arg(short = 'c', long)]
    pub ctx_size: Option<usize>,
    /// Threads the estimate is for (default: one per physical core).
    #[arg(short, long, default_value_t = 0)]
    pub threads: usize,
    /// Measure this machine again instead of using the cached probe.
    #[arg(long)]
    pub reprobe: bool,
}

/// What the estimates need to know about one model.
pub struct Facts {
    pub shape: Shape,
    /// Bytes of the weights (the file, or the published size).
    pub weights: u64,
    pub traffic: Option<Traffic>,
    /// The file, when it is here.
    pub file: Option<PathBuf>,
    pub reasoning: bool,
}

impl Facts {
    /// From a file on disk (`entry`: its catalogue entry, for a fallback shape).
    pub fn of_file(path: &Path, entry: Option<&Entry>) -> anyhow::Result<Facts> {
        let file = GgufFile::open(path).with_context(|| format!("opening {}", path.display()))?;
        let shape = match (Shape::from_gguf(&file), entry) {
            (Ok(s), _) => s,
            (Err(_), Some(e)) => catalogue::get()?.shape(e).shape.clone(),
            (Err(err), None) => {
                return Err(err.context(format!("{}: shape unknown", path.display())))
            }
        };
        let md = file.metadata();
        let name = md
            .get_opt_str("general.name")
            .ok()
            .flatten()
            .unwrap_or("")
            .to_ascii_lowercase();
        let template = md
            .get_opt_str("tokenizer.chat_template")
            .ok()
            .flatten()
            .unwrap_or("");
        Ok(Facts {
            traffic: Some(Traffic::of_file(&file, shape.n_layer)),
            weights: file.file_size(),
            reasoning: entry.is_some_and(|e| e.r1)
                || name.contains("r1")
                || template.contains("</think>"),
            shape,
            file: Some(path.to_path_buf()),
        })
    }

    /// From the catalogue alone (not downloaded).
    pub fn of_entry(e: &Entry) -> anyhow::Result<Facts> {
        let spec = catalogue::get()?.shape(e);
        let shape = spec.shape.clone();
        Ok(Facts {
            traffic: Traffic::of_catalogue(&shape, spec.tied, &e.quant, e.approx_bytes),
            weights: e.approx_bytes,
            shape,
            file: None,
            reasoning: e.r1,
        })
    }

    /// The context checked when none is asked for.
    pub fn default_ctx(&self) -> usize {
        let n = if self.reasoning {
            REASONING_CTX
        } else {
            DEFAULT_CTX
        };
        n.min(self.shape.n_ctx_train.max(1))
    }

    /// Estimated generation tokens/s on this machine.
    pub fn estimate(&self, probe: &mut Probe) -> Option<f64> {
        let traffic = self.traffic.as_ref().filter(|t| t.bytes() > 0)?;
        let dispatch = probe.dispatch_s();
        fit::estimate_tg(traffic, &mut |ty| probe.rate(ty), dispatch)
    }
}

/// The facts of a name or path: from its file when it is here, else from the catalogue.
pub fn facts_of(store: &Store, arg: &str) -> anyhow::Result<(String, Facts)> {
    match resolve::parse(arg, store)? {
        Spec::Path(p) => Ok((p.display().to_string(), Facts::of_file(&p, None)?)),
        spec => {
            let name = spec.name().unwrap_or_else(|| arg.to_string());
            let entry = match &spec {
                Spec::Catalogue(e) => Some(*e),
                _ => None,
            };
            if let Some(m) = store.find(&name)?.filter(|m| store.is_complete(m)) {
                return Ok((name, Facts::of_file(&store.model_path(&m), entry)?));
            }
            match entry {
                Some(e) => Ok((name, Facts::of_entry(e)?)),
                None => anyhow::bail!(
                    "{name} is not downloaded and not in the catalogue: nothing to estimate from"
                ),
            }
        }
    }
}

pub fn run(args: FitArgs) -> anyhow::Result<()> {
    let store = Store::open()?;
    let _ = catalogue::adopt_fetched(&store);
    let names: Vec<String> = if args.names.is_empty() {
        let c = catalogue::get()?;
        let mut v: Vec<&Entry> = c.models.iter().collect();
        v.sort_by_key(|e| !e.r1);
        v.into_iter().map(|e| e.name.clone()).collect()
    } else {
        args.names.clone()
    };
    let mut probe = Probe::new(args.threads, args.reprobe)?;
    let avail = fit::available_memory();
    eprintln!("measuring this machine (cached after the first run)...");
    let bw = probe.bandwidth();
    println!(
        "this machine: {} available, {} threads, kernels {}, read bandwidth {}/s",
        avail.map_or("? (unknown)".to_string(), human_bytes),
        probe.threads,
        hearth_simd::kernel_set(),
        human_bytes(bw as u64)
    );
    println!(
        "{:<26} {:>9} {:>9} {:>7} {:>5} {:>9}  note",
        "model", "size", "needs", "context", "fits", "est. t/s"
    );
    for arg in &names {
        let (name, facts) = match facts_of(&store, arg) {
            Ok(x) => x,
            Err(e) => {
                println!("{arg:<26} error: {e:#}");
                continue;
            }
        };
        let ctx = args.ctx_size.unwrap_or_else(|| facts.default_ctx());
        let need = fit::memory_need(&facts.shape, facts.weights, ctx, 512, CacheType::F16);
        let fits = avail.is_none_or(|a| need.total() <= a);
        let mut note = Vec::new();
        note.push(
            if facts.file.is_some() {
                "downloaded"
            } else {
                "size as published"
            }
            .to_string(),
        );
        if let (false, Some(a)) = (fits, avail) {
            match fit::max_ctx_that_fits(&facts.shape, facts.weights, 512, CacheType::F16, a) {
                Some(n) => note.push(format!("fits with --ctx-size {n}")),
                None => note.push("weights alone too big".to_string()),
            }
        }
        let est = facts
            .estimate(&mut probe)
            .map_or("?".to_string(), |t| format!("{t:.1}"));
        println!(
            "{name:<26} {:>9} {:>9} {ctx:>7} {:>5} {est:>9}  {}",
            human_bytes(facts.weights),
            human_bytes(need.total()),
            if fits { "yes" } else { "no" },
            note.join(", ")
        );
    }
    probe.save();
    println!("estimates: generation at short context from the bytes read per token and this machine's measured kernel speed; `hearth bench -m NAME -p 0 -n 128` measures it");
    Ok(())
}
