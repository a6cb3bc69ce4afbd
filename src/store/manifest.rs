//! One small JSON file per model name: what was fetched, from where, and when.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// One file of a model (a split model has several, the first is the one to load).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredFile {
    /// Relative to the store folder, with `/` separators.
    pub path: String,
    pub bytes: u64,
    /// Lower-case hex; checked when the file was fetched.
    pub sha256: String,
}

/// What the store knows about one model name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// `family:tag`, `hf.co/ORG/REPO:QUANT` or a URL.
    pub name: String,
    /// Where it came from, spelled so a person can fetch it again.
    pub source: String,
    /// sha256 of the model file (the first part of a split model).
    pub sha256: String,
    /// Bytes of all files together.
    pub bytes: u64,
    /// When it was fetched (Unix seconds).
    pub pulled: u64,
    /// When hearth last loaded it (Unix seconds).
    #[serde(default)]
    pub last_used: Option<u64>,
    pub files: Vec<StoredFile>,
}

impl Manifest {
    pub fn new(name: &str, source: &str, files: Vec<StoredFile>) -> Manifest {
        Manifest {
            name: name.to_string(),
            source: source.to_string(),
            sha256: files.first().map(|f| f.sha256.clone()).unwrap_or_default(),
            bytes: files.iter().map(|f| f.bytes).sum(),
            pulled: now(),
            last_used: None,
            files,
        }
    }

    pub fn read(path: &Path) -> anyhow::Result<Manifest> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let m: Manifest = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a hearth manifest", path.display()))?;
        if m.files.is_empty() {
            anyhow::bail!("{}: the manifest lists no file", path.display());
        }
        for f in &m.files {
            let p = Path::new(&f.path);
            if p.is_absolute()
                || p.components()
                    .any(|c| !matches!(c, std::path::Component::Normal(_)))
            {
                anyhow::bail!(
                    "{}: file path {:?} leaves the store",
                    path.display(),
                    f.path
                );
            }
        }
        Ok(m)
    }

    /// Write through a temporary file and a rename, so readers never see half a manifest.
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let dir = path.parent().context("manifest path has no folder")?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let tmp = path.with_extension(format!("json.tmp{}", std::process::id()));
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(&tmp, text + "\n").with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
    }
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `1700000000` → `"2023-11-14 22:13"` (UTC).
pub fn format_time(secs: u64) -> String {
    crate::strftime::format_unix(secs.min(i64::MAX as u64) as i64, "%Y-%m-%d %H:%M")
}

/// How long ago `secs` was, in the largest whole unit: "3 days ago", "just now".
pub fn ago(secs: u64) -> String {
    let d = now().saturating_sub(secs);
    let (n, unit) = match d {
        0..60 => return "just now".to_string(),
        60..3600 => (d / 60, "minute"),
        3600..86_400 => (d / 3600, "hour"),
        86_400..2_592_000 => (d / 86_400, "day"),
        2_592_000..31_536_000 => (d / 2_592_000, "month"),
        _ => (d / 31_536_000, "year"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(format_time(0), "1970-01-01 00:00");
        assert_eq!(format_time(1_700_000_000), "2023-11-14 22:13");
        assert_eq!(format_time(951_782_400), "2000-02-29 00:00");
    }

    #[test]
    fn manifests_round_trip_and_stay_inside_the_store() {
        let dir = std::env::temp_dir().join(format!("hearth-manifest-{}", std::process::id()));
        let file = StoredFile {
            path: "a/b.gguf".into(),
            bytes: 3,
            sha256: "ab".into(),
        };
        let m = Manifest::new("x:1", "somewhere", vec![file.clone()]);
        let path = dir.join("m.json");
        m.write(&path).unwrap();
        assert_eq!(Manifest::read(&path).unwrap(), m);
        let bad = Manifest::new(
            "x:2",
            "s",
            vec![StoredFile {
                path: "../evil".into(),
                ..file
            }],
        );
        bad.write(&path).unwrap();
        assert!(Manifest::read(&path).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
