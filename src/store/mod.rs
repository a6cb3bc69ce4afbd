//! The model store: where hearth keeps model files on this machine, and how names become files.
//!
//! The folder is `$HEARTH_MODELS`, else `<user cache folder>/hearth/models` (on Linux
//! `$XDG_CACHE_HOME/hearth/models` or `~/.cache/hearth/models`), the folder
//! `scripts/fetch-models.sh` fills. It holds:
//!
//! - the model files, at a path each source chooses (`SmolLM2-135M-Instruct.Q4_1.gguf` for the
//!   test models, as the fetch script names them; `hf.co/ORG/REPO/FILE` for Hugging Face;
//!   `url/HOST/FILE` for plain URLs), never loaded while they are still `.partial`;
//! - `manifests/*.json`, one small manifest per model name ([`manifest::Manifest`]);
//! - `probe.json` (the measured speed of this machine, [`probe`]) and `bench.json` (what
//!   `hearth bench` measured, [`fit::BenchRecord`]).
//!
//! Names are `family:tag` from the built-in [`catalogue`] (`data/catalogue.json`), or sources
//! spelled out (`hf.co/ORG/REPO[:QUANT]`, `https://…`); a path to an existing file is used as is.

pub mod catalogue;
pub mod download;
pub mod fit;
pub mod hf;
pub mod manifest;
pub mod probe;
pub mod progress;
pub mod pull;
pub mod resolve;
pub mod wheels;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

pub use manifest::Manifest;
pub use pull::PullOptions;
pub use resolve::{resolve_local, resolve_model};

/// The folder hearth's models live in. `None` only when neither `$HEARTH_MODELS` is set nor a
/// cache folder can be found for this user.
pub fn model_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("HEARTH_MODELS").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    dirs::cache_dir().map(|c| c.join("hearth").join("models"))
}

/// The store folder and its manifests.
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// The user's store ([`model_dir`]); the folder is created on first write, not here.
    pub fn open() -> anyhow::Result<Store> {
        match model_dir() {
            Some(root) => Ok(Store { root }),
            None => {
                bail!("no cache folder for this user: set HEARTH_MODELS to a folder for models")
            }
        }
    }

    /// A store in `root` (tests, other tools).
    pub fn at(root: impl Into<PathBuf>) -> Store {
        Store { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn manifest_dir(&self) -> PathBuf {
        self.root.join("manifests")
    }

    /// The manifest file of `name`: the name with every character outside `[A-Za-z0-9._-]`
    /// turned into `_` (the manifest itself holds the exact name).
    pub(crate) fn manifest_path(&self, name: &str) -> PathBuf {
        let file: String = name
            .chars()
            .map(|c| match c {
                'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' | '_' => c,
                _ => '_',
            })
            .collect();
        self.manifest_dir().join(format!("{file}.json"))
    }

    /// Every manifest in the store, sorted by name. Unreadable manifests are reported on stderr
    /// and skipped, so one damaged file does not hide the others.
    pub fn manifests(&self) -> anyhow::Result<Vec<Manifest>> {
        let dir = self.manifest_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            match Manifest::read(&path) {
                Ok(m) => out.push(m),
                Err(e) => eprintln!("warning: skipping {}: {e:#}", path.display()),
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// The manifest of `name`, if the store has one.
    pub fn find(&self, name: &str) -> anyhow::Result<Option<Manifest>> {
        let path = self.manifest_path(name);
        if !path.exists() {
            return Ok(None);
        }
        let m = Manifest::read(&path)?;
        Ok((m.name == name).then_some(m))
    }

    /// Write (or replace) the manifest of `m.name`, atomically.
    pub fn save(&self, m: &Manifest) -> anyhow::Result<()> {
        m.write(&self.manifest_path(&m.name))
    }

    /// The absolute path of a file the store records by its relative path.
    pub fn file_path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// The file to load for `m` (the first part of a split model).
    pub fn model_path(&self, m: &Manifest) -> PathBuf {
        self.file_path(&m.files[0].path)
    }

    /// Whether every file of `m` is there with its recorded size.
    pub fn is_complete(&self, m: &Manifest) -> bool {
        m.files
            .iter()
            .all(|f| std::fs::metadata(self.file_path(&f.path)).is_ok_and(|md| md.len() == f.bytes))
    }

    /// Record that `m` was just used (best effort: a read-only store still runs models).
    pub fn touch(&self, m: &mut Manifest) {
        m.last_used = Some(manifest::now());
        if let Err(e) = self.save(m) {
            eprintln!("warning: could not record the use of {}: {e:#}", m.name);
        }
    }

    /// Remove `name`: its manifest, and its files unless another manifest still lists them.
    pub fn remove(&self, name: &str) -> anyhow::Result<Manifest> {
        let Some(m) = self.find(name)? else {
            bail!(
                "{name} is not in the store ({}); see `hearth list`",
                self.root.display()
            );
        };
        let others = self.manifests()?;
        for f in &m.files {
            let shared = others
                .iter()
                .any(|o| o.name != m.name && o.files.iter().any(|g| g.path == f.path));
            if shared {
                continue;
            }
            let path = self.file_path(&f.path);
            for p in [
                path.clone(),
                download::suffixed(&path, ".sha256"),
                download::suffixed(&path, ".partial"),
                download::suffixed(&path, ".partial.want"),
            ] {
                match std::fs::remove_file(&p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e).with_context(|| format!("removing {}", p.display())),
                }
            }
        }
        std::fs::remove_file(self.manifest_path(name))
            .with_context(|| format!("removing the manifest of {name}"))?;
        Ok(m)
    }

    /// Names of the models that are here and complete, for error messages.
    pub fn local_names(&self) -> Vec<String> {
        let _ = catalogue::adopt_fetched(self);
        self.manifests()
            .unwrap_or_default()
            .into_iter()
            .filter(|m| self.is_complete(m))
            .map(|m| m.name)
            .collect()
    }
}

/// "models available here: a, b" or a hint when there are none.
pub fn local_models_line(store: &Store) -> String {
    let names = store.local_names();
    if names.is_empty() {
        format!(
            "no model is available locally (in {}); pull one while online with `hearth pull NAME`",
            store.root().display()
        )
    } else {
        format!("models available locally: {}", names.join(", "))
    }
}
