//! `hearth pull NAME...`: fetch models into the store (resumable, verified).

use clap::Args;

use crate::inspect::human_bytes;
use crate::store::{pull, resolve, PullOptions, Store};

#[derive(Debug, Args)]
pub struct PullArgs {
    /// Model names (`deepseek-r1:7b`, `smollm2:135m`, `hf.co/ORG/REPO:Q4_K_M`,
    /// `hf.co/ORG/REPO/FILE.gguf`) or URLs (a Hugging Face resolve URL, or any HTTPS URL with
    /// `--sha256`).
    #[arg(required = true)]
    pub names: Vec<String>,
    /// The sha256 of the file a plain URL names (checked after the download).
    #[arg(long)]
    pub sha256: Option<String>,
    /// Never touch the network (only reports what is already here).
    #[arg(long)]
    pub offline: bool,
}

pub fn run(args: PullArgs) -> anyhow::Result<()> {
    let store = Store::open()?;
    let opts = PullOptions {
        offline: PullOptions::offline_from_env(args.offline),
        yes: true,
        sha256: args.sha256.clone(),
    };
    let _ = crate::store::catalogue::adopt_fetched(&store);
    for name in &args.names {
        let spec = resolve::parse(name, &store)?;
        let m = pull::pull(&store, &spec, &opts)?;
        println!(
            "{}: ready, {} in {}",
            m.name,
            human_bytes(m.bytes),
            store.model_path(&m).display()
        );
    }
    Ok(())
}
