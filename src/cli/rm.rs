//! `hearth rm NAME...`: remove models from the store.

use clap::Args;

use crate::inspect::human_bytes;
use crate::store::Store;

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Names of downloaded models (see `hearth list`).
    #[arg(required = true)]
    pub names: Vec<String>,
}

pub fn run(args: RmArgs) -> anyhow::Result<()> {
    let store = Store::open()?;
    let _ = crate::store::catalogue::adopt_fetched(&store);
    for name in &args.names {
        // Catalogue aliases (`deepseek-r1:1.5b`) name their entry.
        let full = crate::store::catalogue::get()?
            .get(name)
            .map_or_else(|| name.clone(), |e| e.name.clone());
        let m = store.remove(&full)?;
        println!("removed {} ({})", m.name, human_bytes(m.bytes));
    }
    Ok(())
}
