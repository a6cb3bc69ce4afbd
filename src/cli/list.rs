//! `hearth list`: the models in the store.

use clap::Args;
use hearth_models::gguf::GgufFile;

use crate::inspect::{human_bytes, ModelSummary};
use crate::store::manifest::ago;
use crate::store::Store;

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print the list as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: ListArgs) -> anyhow::Result<()> {
    let store = Store::open()?;
    if let Err(e) = crate::store::catalogue::adopt_fetched(&store) {
        eprintln!("warning: {e:#}");
    }
    let mut rows = Vec::new();
    for m in store.manifests()? {
        let complete = store.is_complete(&m);
        let summary = complete
            .then(|| GgufFile::open(store.model_path(&m)).ok())
            .flatten()
            .and_then(|f| ModelSummary::from_gguf(&f).ok());
        let quant = summary
            .as_ref()
            .and_then(|s| s.main_type())
            .unwrap_or("?")
            .to_string();
        let arch = summary
            .as_ref()
            .map_or("?".to_string(), |s| s.architecture.clone());
        let used = m.last_used.map_or("never".to_string(), ago);
        rows.push((m, complete, quant, arch, used));
    }
    if args.json {
        let out: Vec<_> = rows
            .iter()
            .map(|(m, complete, quant, arch, _)| {
                serde_json::json!({
                    "name": m.name, "bytes": m.bytes, "quantization": quant, "architecture": arch,
                    "last_used": m.last_used, "pulled": m.pulled, "complete": complete,
                    "path": store.model_path(m).display().to_string(), "sha256": m.sha256,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    if rows.is_empty() {
        println!(
            "no models in {} yet; `hearth pull NAME` fetches one (names: `hearth fit`)",
            store.root().display()
        );
        return Ok(());
    }
    println!(
        "{:<34} {:>10} {:<8} {:<8} last used",
        "name", "size", "quant", "arch"
    );
    for (m, complete, quant, arch, used) in &rows {
        let used = if *complete {
            used.clone()
        } else {
            "incomplete: files missing".to_string()
        };
        println!(
            "{:<34} {:>10} {quant:<8} {arch:<8} {used}",
            m.name,
            human_bytes(m.bytes)
        );
    }
    Ok(())
}
