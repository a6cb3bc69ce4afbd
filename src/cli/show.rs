//! `hearth show NAME`: what `hearth info` shows (with the defaults hearth will use), plus where
//! the model came from, whether it fits, and how fast it should run here (set beside what
//! `hearth bench` measured, when it has).

use clap::Args;
use hearth_models::kv_cache::CacheType;

use super::fit::{facts_of, Facts};
use crate::inspect::human_bytes;
use crate::store::manifest::{ago, format_time};
use crate::store::probe::Probe;
use crate::store::{catalogue, fit, Store};

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// A model name (downloaded or in the catalogue) or a path to a GGUF file.
    pub name: String,
    /// Threads the speed estimate is for (default: one per physical core).
    #[arg(short, long, default_value_t = 0)]
    pub threads: usize,
    /// Context length to check the memory for (default: the model's default).
    #[arg(short = 'c', long)]
    pub ctx_size: Option<usize>,
}

pub fn run(args: ShowArgs) -> anyhow::Result<()> {
    let store = Store::open()?;
    let _ = catalogue::adopt_fetched(&store);
    let (name, facts) = facts_of(&store, &args.name)?;
    let entry = catalogue::get()?.get(&name);
    let manifest = store.find(&name)?;
    println!("model          {name}");
    match (&manifest, entry) {
        (Some(m), _) => {
            println!("source         {}", m.source);
            println!("sha256         {}", m.sha256);
            println!("pulled         {} UTC", format_time(m.pulled));
            println!(
                "last used      {}",
                m.last_used.map_or("never".to_string(), ago)
            );
        }
        (None, Some(e)) => {
            println!("source         {}", e.source_text());
            println!(
                "downloaded     no (about {}; `hearth pull {name}`)",
                human_bytes(e.approx_bytes)
            );
        }
        (None, None) => {}
    }
    if let Some(path) = &facts.file {
        println!();
        super::info::run(super::info::InfoArgs {
            model: Some(path.clone()),
            kernel_sets: false,
            gpus: false,
            json: false,
        })?;
    } else if let Some(e) = entry {
        let s = catalogue::get()?.shape(e);
        println!(
            "shape          {} {} layers, embedding {}, {} heads ({} KV heads), quantization {}",
            s.arch, s.shape.n_layer, s.shape.n_embd, s.shape.n_head, s.shape.n_head_kv, e.quant
        );
        if e.r1 {
            println!("defaults       DeepSeek-R1 distill: temperature 0.6, top-p 0.95, no system prompt (folded into the first user turn), answer starts with <think>, context 8192 where memory allows");
        }
    }
    print_fit(&facts, args.ctx_size, args.threads)
}

fn print_fit(facts: &Facts, ctx: Option<usize>, threads: usize) -> anyhow::Result<()> {
    let ctx = ctx.unwrap_or_else(|| facts.default_ctx());
    let need = fit::memory_need(&facts.shape, facts.weights, ctx, 512, CacheType::F16);
    match fit::available_memory() {
        Some(avail) if need.total() > avail => println!(
            "fits           no: {}",
            fit::refusal(&facts.shape, &need, 512, CacheType::F16, avail)
        ),
        Some(avail) => println!(
            "fits           yes: needs {} of {} available",
            need.describe(),
            human_bytes(avail)
        ),
        None => println!(
            "fits           unknown (no MemAvailable here): needs {}",
            need.describe()
        ),
    }
    let mut probe = Probe::new(threads, false)?;
    let Some(est) = facts.estimate(&mut probe) else {
        println!("speed          no estimate (no weights whose speed hearth can measure)");
        return Ok(());
    };
    let read = facts.traffic.as_ref().map_or(0, |t| t.bytes());
    println!(
        "speed          about {est:.1} tokens/s generating on {} threads (estimate: {} read per token at this machine's measured kernel speed)",
        probe.threads,
        human_bytes(read)
    );
    let bench = facts
        .file
        .as_deref()
        .and_then(|p| fit::bench_for(p, probe.threads));
    match bench {
        Some(b) => {
            let diff = (est / b.tg - 1.0) * 100.0;
            println!(
                "measured       {:.1} tokens/s by `hearth bench` (tg{}, {} threads, {} UTC): the estimate is {:+.0}%",
                b.tg,
                b.n_gen,
                b.threads,
                format_time(b.when),
                diff
            );
        }
        None if facts.file.is_some() => println!(
            "measured       not yet: `hearth bench -m MODEL -p 0 -n 128 -t {}` measures it",
            probe.threads
        ),
        None => {}
    }
    Ok(())
}
