//! The Hugging Face Hub as a source: `hf.co/ORG/REPO[:QUANT]`, `hf.co/ORG/REPO/PATH.gguf`, or a
//! full `https://HOST/ORG/REPO/resolve/REV/PATH` URL.
//!
//! As `huggingface_hub` does: the endpoint is `$HF_ENDPOINT` (default `https://huggingface.co`),
//! the token `$HF_TOKEN` (or the token file `huggingface-cli login` writes), sent to the endpoint's
//! own host only. A `HEAD` on the resolve URL, redirects not followed, gives an LFS file's sha256
//! (`X-Linked-Etag`, else `ETag`) and size (`X-Linked-Size`, else `Content-Length`); the file is
//! then fetched through the redirect and checked against both.

use anyhow::{bail, Context};

use super::download::{Client, Expect};

/// `$HF_ENDPOINT` without a trailing `/`, or the public Hub.
pub fn endpoint() -> String {
    std::env::var("HF_ENDPOINT")
        .ok()
        .filter(|e| !e.trim().is_empty())
        .map_or_else(
            || "https://huggingface.co".to_string(),
            |e| e.trim().trim_end_matches('/').to_string(),
        )
}

/// The user's Hub token: `$HF_TOKEN`, `$HUGGING_FACE_HUB_TOKEN`, or the file at
/// `$HF_TOKEN_PATH`, `$HF_HOME/token`, `~/.cache/huggingface/token`.
pub fn token() -> Option<String> {
    let from_env = |k: &str| {
        std::env::var(k)
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
    };
    if let Some(t) = from_env("HF_TOKEN").or_else(|| from_env("HUGGING_FACE_HUB_TOKEN")) {
        return Some(t);
    }
    let path = std::env::var_os("HF_TOKEN_PATH")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HF_HOME").map(|h| std::path::PathBuf::from(h).join("token")))
        .or_else(|| dirs::home_dir().map(|h| h.join(".cache/huggingface/token")))?;
    std::fs::read_to_string(path)
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}

/// A client that sends the token to the endpoint only.
pub fn client() -> Client {
    Client::new(token().map(|t| (super::download::origin_of(&endpoint()), t)))
}

/// A file or a quantization in a Hub repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HfRef {
    pub repo: String,
    pub revision: String,
    pub target: HfTarget,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HfTarget {
    /// A path in the repository.
    File(String),
    /// A quantization to look for among the repository's GGUF files (`None`: Q4_K_M).
    Quant(Option<String>),
    /// A full resolve URL given by the user: everything up to the path in the repository
    /// (`https://HOST/ORG/REPO/resolve/REV/`, its own host and revision), and that path.
    Url(String, String),
}

impl HfRef {
    /// The store name: `hf.co/ORG/REPO:QUANT` or `hf.co/ORG/REPO/PATH`.
    pub fn name(&self) -> String {
        match &self.target {
            HfTarget::Quant(q) => format!(
                "hf.co/{}:{}",
                self.repo,
                q.as_deref().unwrap_or(DEFAULT_QUANT)
            ),
            HfTarget::File(p) | HfTarget::Url(_, p) => format!("hf.co/{}/{p}", self.repo),
        }
    }

    /// The URL of `path` in this repository.
    pub fn resolve_url(&self, path: &str) -> String {
        match &self.target {
            HfTarget::Url(prefix, _) => format!("{prefix}{path}"),
            _ => format!(
                "{}/{}/resolve/{}/{path}",
                endpoint(),
                self.repo,
                self.revision
            ),
        }
    }
}

/// The quantization picked when a repository is named without one (as ollama does).
pub const DEFAULT_QUANT: &str = "Q4_K_M";

fn valid_repo(org: &str, repo: &str) -> bool {
    let ok = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && !s.starts_with('.')
    };
    ok(org) && ok(repo)
}

/// `hf.co/ORG/REPO[:QUANT]`, `hf.co/ORG/REPO/PATH` (also `huggingface.co/…`).
pub fn parse_name(s: &str) -> Option<anyhow::Result<HfRef>> {
    let rest = s
        .strip_prefix("hf.co/")
        .or_else(|| s.strip_prefix("huggingface.co/"))?;
    Some(parse_rest(rest, s))
}

fn parse_rest(rest: &str, whole: &str) -> anyhow::Result<HfRef> {
    let mut parts = rest.splitn(3, '/');
    let org = parts.next().unwrap_or("");
    let repo_q = parts.next().unwrap_or("");
    let path = parts.next();
    let (repo, quant) = match (repo_q.split_once(':'), path) {
        (Some((r, q)), None) => (r, Some(q)),
        (Some(_), Some(_)) => bail!("{whole}: give either :QUANT or a file path, not both"),
        (None, _) => (repo_q, None),
    };
    if !valid_repo(org, repo) {
        bail!("{whole}: expected hf.co/ORG/REPO[:QUANT] or hf.co/ORG/REPO/FILE.gguf");
    }
    let target = match path {
        Some(p) => {
            check_path(p, whole)?;
            HfTarget::File(p.to_string())
        }
        None => match quant {
            Some(q)
                if q.is_empty() || !q.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
            {
                bail!("{whole}: `{q}` is not a quantization name (like Q4_K_M)")
            }
            q => HfTarget::Quant(q.map(str::to_ascii_uppercase)),
        },
    };
    Ok(HfRef {
        repo: format!("{org}/{repo}"),
        revision: "main".to_string(),
        target,
    })
}

fn check_path(p: &str, whole: &str) -> anyhow::Result<()> {
    if p.is_empty()
        || p.split('/').any(|c| c.is_empty() || c == "." || c == "..")
        || p.contains('\\')
    {
        bail!("{whole}: bad file path in the repository");
    }
    if !p.to_ascii_lowercase().ends_with(".gguf") {
        bail!("{whole}: hearth loads GGUF files (a path ending in .gguf)");
    }
    Ok(())
}

/// A Hub resolve URL: `https://HOST/ORG/REPO/resolve/REV/PATH`.
pub fn parse_url(url: &str) -> Option<anyhow::Result<HfRef>> {
    let (_, after) = url.split_once("://")?;
    let bare = url.split(['?', '#']).next().unwrap_or(url);
    let path = after.split_once('/')?.1;
    let path = path.split(['?', '#']).next().unwrap_or(path);
    let mut segs = path.splitn(5, '/');
    let (org, repo, kw, rev, file) = (
        segs.next()?,
        segs.next()?,
        segs.next()?,
        segs.next()?,
        segs.next()?,
    );
    if kw != "resolve" {
        return None;
    }
    Some((|| {
        if !valid_repo(org, repo) {
            bail!("{url}: not a Hugging Face resolve URL");
        }
        check_path(file, url)?;
        Ok(HfRef {
            repo: format!("{org}/{repo}"),
            revision: rev.to_string(),
            target: HfTarget::Url(
                bare[..bare.len() - file.len()].to_string(),
                file.to_string(),
            ),
        })
    })())
}

/// What the Hub says about one file.
pub fn file_meta(client: &Client, url: &str) -> anyhow::Result<Expect> {
    let linked = |r: &super::download::Reply| r.header("x-linked-etag").is_some();
    let reply = client.follow("HEAD", url, &[("Accept-Encoding", "identity")], &linked)?;
    match reply.status {
        200..=399 => {}
        401 | 403 => bail!(
            "{url}: access denied ({}); for a gated or private repository set HF_TOKEN",
            reply.status
        ),
        404 => bail!("{url}: not found on the Hub (404)"),
        s => bail!("{url}: HTTP {s}"),
    }
    let etag = reply
        .header("x-linked-etag")
        .or_else(|| reply.header("etag"))
        .map(normalize_etag);
    let size = reply
        .header("x-linked-size")
        .or_else(|| reply.header("content-length"))
        .and_then(|v| v.trim().parse().ok());
    let sha256 = etag.filter(|e| e.len() == 64 && e.bytes().all(|b| b.is_ascii_hexdigit()));
    Ok(Expect {
        bytes: size,
        sha256: sha256.map(|s| s.to_ascii_lowercase()),
    })
}

/// `W/"abc"` → `abc`.
fn normalize_etag(e: &str) -> String {
    e.trim()
        .trim_start_matches("W/")
        .trim_matches('"')
        .to_string()
}

/// Every file path in the repository at its revision (the Hub's model API `siblings`).
pub fn list_files(client: &Client, r: &HfRef) -> anyhow::Result<Vec<String>> {
    let url = format!(
        "{}/api/models/{}/revision/{}",
        endpoint(),
        r.repo,
        r.revision
    );
    let reply = client.follow("GET", &url, &[], &|_| false)?;
    match reply.status {
        200 => {}
        401 | 403 => bail!(
            "{}: access denied ({}); for a gated or private repository set HF_TOKEN",
            r.repo,
            reply.status
        ),
        404 => bail!("{}: no such repository on the Hub (404)", r.repo),
        s => bail!("{url}: HTTP {s}"),
    }
    let text = reply
        .response
        .into_string()
        .with_context(|| format!("reading {url}"))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{url}: not JSON"))?;
    let files = v["siblings"]
        .as_array()
        .with_context(|| format!("{url}: no file list"))?
        .iter()
        .filter_map(|s| s["rfilename"].as_str().map(str::to_string))
        .collect();
    Ok(files)
}

/// The GGUF file of `quant` among `files`: its name holds the quantization as a word
/// (`…-Q4_K_M.gguf`, `….q4_k_m.gguf`, or a split's first part `…-Q8_0-00001-of-00002.gguf`).
pub fn pick_quant(files: &[String], quant: &str, repo: &str) -> anyhow::Result<String> {
    let q = quant.to_ascii_uppercase();
    let ggufs: Vec<&String> = files
        .iter()
        .filter(|f| f.to_ascii_lowercase().ends_with(".gguf"))
        .filter(|f| !f.to_ascii_lowercase().contains("mmproj"))
        .collect();
    let matches: Vec<&String> = ggufs
        .iter()
        .copied()
        .filter(|f| {
            let base = f.rsplit('/').next().unwrap_or(f);
            let stem = base[..base.len() - 5].to_ascii_uppercase();
            let stem = match hearth_models::gguf::parse_split_name(base) {
                Some((0, _)) => stem.rsplitn(4, '-').nth(3).unwrap_or("").to_string(),
                Some(_) => return false,
                None => stem,
            };
            stem.split(['-', '.', '_'])
                .collect::<Vec<_>>()
                .windows(q.split('_').count())
                .any(|w| w.join("_") == q)
        })
        .collect();
    match matches.as_slice() {
        [one] => Ok((*one).clone()),
        [] => {
            let mut quants: Vec<String> = ggufs
                .iter()
                .map(|f| f.rsplit('/').next().unwrap_or(f).to_string())
                .collect();
            quants.sort();
            if quants.is_empty() {
                bail!("{repo} has no GGUF file");
            }
            bail!(
                "{repo} has no {q} file; its GGUF files: {}",
                quants.join(", ")
            )
        }
        many => {
            // Prefer the shortest name (`X-Q4_K_M.gguf` over `X-Q4_K_M-imat.gguf`).
            let best = many
                .iter()
                .min_by_key(|f| f.len())
                .map(|f| (*f).clone())
                .unwrap_or_default();
            Ok(best)
        }
    }
}

/// All parts of a split GGUF given its first part's path, or just the path.
pub fn parts_of(path: &str) -> anyhow::Result<Vec<String>> {
    let (dir, base) = match path.rsplit_once('/') {
        Some((d, b)) => (format!("{d}/"), b),
        None => (String::new(), path),
    };
    match hearth_models::gguf::parse_split_name(base) {
        None => Ok(vec![path.to_string()]),
        Some((0, count)) => {
            if count == 0 || count > 1000 {
                bail!("{path}: a split of {count} parts");
            }
            let prefix = &base[..base.len() - "-00001-of-00000.gguf".len().min(base.len())];
            Ok((0..count)
                .map(|i| {
                    format!(
                        "{dir}{}",
                        hearth_models::gguf::split_file_name(prefix, i, count)
                    )
                })
                .collect())
        }
        Some((no, _)) => bail!(
            "{path} is part {} of a split model; name the first part (-00001-of-)",
            no + 1
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let r = parse_name("hf.co/unsloth/X-GGUF:q8_0").unwrap().unwrap();
        assert_eq!(r.repo, "unsloth/X-GGUF");
        assert_eq!(r.target, HfTarget::Quant(Some("Q8_0".into())));
        assert_eq!(r.name(), "hf.co/unsloth/X-GGUF:Q8_0");
        let r = parse_name("hf.co/o/r/sub/f.gguf").unwrap().unwrap();
        assert_eq!(r.target, HfTarget::File("sub/f.gguf".into()));
        assert_eq!(
            parse_name("hf.co/o/r").unwrap().unwrap().name(),
            "hf.co/o/r:Q4_K_M"
        );
        assert!(parse_name("hf.co/o").unwrap().is_err());
        assert!(parse_name("hf.co/o/r/../x.gguf").unwrap().is_err());
        assert!(parse_name("hf.co/o/r:Q4 K").unwrap().is_err());
        assert!(parse_name("deepseek-r1:7b").is_none());
    }

    #[test]
    fn urls() {
        let r = parse_url("https://huggingface.co/o/r/resolve/main/d/f.gguf?download=true")
            .unwrap()
            .unwrap();
        assert_eq!(r.revision, "main");
        assert_eq!(r.name(), "hf.co/o/r/d/f.gguf");
        assert_eq!(
            r.resolve_url("d/g.gguf"),
            "https://huggingface.co/o/r/resolve/main/d/g.gguf"
        );
        assert!(parse_url("https://example.com/a/b/blob/main/f.gguf").is_none());
        assert!(parse_url("https://example.com/f.gguf").is_none());
    }

    #[test]
    fn quants_and_splits() {
        let files: Vec<String> = [
            "README.md",
            "M-Q4_K_M.gguf",
            "M-Q4_K_S.gguf",
            "M-Q8_0/M-Q8_0-00001-of-00002.gguf",
            "M-Q8_0/M-Q8_0-00002-of-00002.gguf",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(pick_quant(&files, "q4_k_m", "r").unwrap(), "M-Q4_K_M.gguf");
        assert_eq!(
            pick_quant(&files, "Q8_0", "r").unwrap(),
            "M-Q8_0/M-Q8_0-00001-of-00002.gguf"
        );
        let err = pick_quant(&files, "Q6_K", "r").unwrap_err().to_string();
        assert!(err.contains("M-Q4_K_S.gguf"), "{err}");
        assert_eq!(
            parts_of("d/M-Q8_0-00001-of-00002.gguf").unwrap(),
            [
                "d/M-Q8_0-00001-of-00002.gguf",
                "d/M-Q8_0-00002-of-00002.gguf"
            ]
        );
        assert_eq!(parts_of("M.gguf").unwrap(), ["M.gguf"]);
        assert!(parts_of("M-00002-of-00002.gguf").is_err());
    }
}
