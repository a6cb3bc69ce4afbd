//! Downloads that never lose or corrupt anything.
//!
//! A file is streamed into `FILE.partial` (next to it, `FILE.partial.want` names what the
//! partial is a prefix of), resumed with an HTTP `Range` request after an interruption, retried
//! with exponential back-off, hashed as it arrives, checked against the expected size and
//! sha256, synced, and only then renamed to `FILE`: a name without `.partial` is always a whole,
//! verified file. A sha256 mismatch deletes the partial and says so. Callers hold the model's
//! [`FileLock`] so two hearth processes never write the same partial.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use sha2::{Digest, Sha256};

use super::progress::Progress;

/// `path` with `suffix` added to its file name (`a.gguf` + `.partial` → `a.gguf.partial`).
pub fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// An exclusive lock on `FILE.lock`, held while a model is fetched; released on drop.
pub struct FileLock {
    file: File,
}

impl FileLock {
    /// Take the lock of `path` (creating its folder), waiting (and saying so) while another
    /// process holds it.
    pub fn acquire(path: &Path, what: &str) -> anyhow::Result<FileLock> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let lock_path = suffixed(path, ".lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("opening {}", lock_path.display()))?;
        match fs4::FileExt::try_lock(&file) {
            Ok(()) => {}
            Err(fs4::TryLockError::WouldBlock) => {
                eprintln!("another hearth is fetching {what}; waiting for it to finish");
                fs4::FileExt::lock(&file)
                    .with_context(|| format!("locking {}", lock_path.display()))?;
            }
            Err(fs4::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("locking {}", lock_path.display()))
            }
        }
        Ok(FileLock { file })
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = fs4::FileExt::unlock(&self.file);
    }
}

/// An HTTP client for the store: timeouts, proxies from the environment (except for hosts in
/// `NO_PROXY` and loopback), redirects followed by hand so a token only goes to its own host.
pub struct Client {
    direct: ureq::Agent,
    proxied: ureq::Agent,
    /// `(origin, token)`: send `Authorization: Bearer token` to URLs of this origin only.
    auth: Option<(String, String)>,
}

/// A response, with the URL it finally came from.
pub struct Reply {
    pub status: u16,
    pub url: String,
    pub response: ureq::Response,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.response.header(name)
    }
}

/// Why a request failed before any response: the network (worth a retry) or the request.
#[derive(Debug)]
pub struct NetError {
    pub url: String,
    pub unreachable: bool,
    pub message: String,
}

impl std::fmt::Display for NetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.message.contains(&self.url) {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.url, self.message)
        }
    }
}

impl std::error::Error for NetError {}

impl Client {
    pub fn new(auth: Option<(String, String)>) -> Client {
        let builder = || {
            ureq::AgentBuilder::new()
                .redirects(0)
                .timeout_connect(Duration::from_secs(10))
                .timeout_read(Duration::from_secs(30))
                .user_agent(concat!("hearth/", env!("CARGO_PKG_VERSION")))
        };
        Client {
            direct: builder().build(),
            proxied: builder().try_proxy_from_env(true).build(),
            auth,
        }
    }

    fn agent(&self, url: &str) -> &ureq::Agent {
        let host = host_of(url);
        let no_proxy = std::env::var("NO_PROXY")
            .or_else(|_| std::env::var("no_proxy"))
            .unwrap_or_default();
        let bypass = matches!(host.as_str(), "localhost" | "127.0.0.1" | "[::1]")
            || no_proxy.split(',').map(str::trim).any(|p| {
                !p.is_empty()
                    && (p == "*"
                        || host == p.trim_start_matches('.')
                        || host.ends_with(&format!(".{}", p.trim_start_matches('.'))))
            });
        if bypass {
            &self.direct
        } else {
            &self.proxied
        }
    }

    /// One request, no redirect followed; HTTP error statuses are replies, not errors.
    pub fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
    ) -> Result<Reply, NetError> {
        let mut req = self.agent(url).request(method, url);
        if let Some((origin, token)) = &self.auth {
            if origin_of(url) == *origin {
                req = req.set("Authorization", &format!("Bearer {token}"));
            }
        }
        for (k, v) in headers {
            req = req.set(k, v);
        }
        match req.call() {
            Ok(response) | Err(ureq::Error::Status(_, response)) => Ok(Reply {
                status: response.status(),
                url: url.to_string(),
                response,
            }),
            Err(ureq::Error::Transport(t)) => Err(NetError {
                url: url.to_string(),
                unreachable: matches!(
                    t.kind(),
                    ureq::ErrorKind::Dns
                        | ureq::ErrorKind::ConnectionFailed
                        | ureq::ErrorKind::ProxyConnect
                ),
                message: t.to_string(),
            }),
        }
    }

    /// Follow redirects (at most 10) until a reply that is not one; `stop` may end the walk at a
    /// redirect whose headers it wants (the Hub's `X-Linked-Etag`).
    pub fn follow(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        stop: &dyn Fn(&Reply) -> bool,
    ) -> anyhow::Result<Reply> {
        let mut url = url.to_string();
        for _ in 0..10 {
            let reply = self.send(method, &url, headers)?;
            if !(300..400).contains(&reply.status) || stop(&reply) {
                return Ok(reply);
            }
            let Some(loc) = reply.header("location") else {
                bail!("{url}: redirect ({}) without a Location", reply.status);
            };
            url = join_url(&url, loc);
        }
        bail!("{url}: too many redirects")
    }
}

/// `scheme://host[:port]` of a URL.
pub fn origin_of(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    format!(
        "{}://{}",
        scheme.to_ascii_lowercase(),
        authority.to_ascii_lowercase()
    )
}

fn host_of(url: &str) -> String {
    let origin = origin_of(url);
    let authority = origin.split_once("://").map_or(origin.as_str(), |(_, a)| a);
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if authority.starts_with('[') {
        return authority
            .split_once(']')
            .map_or(authority.to_string(), |(h, _)| format!("{h}]"));
    }
    authority.split(':').next().unwrap_or("").to_string()
}

/// Resolve a `Location` against the URL it came from.
pub fn join_url(base: &str, loc: &str) -> String {
    if loc.contains("://") {
        return loc.to_string();
    }
    if let Some(rest) = loc.strip_prefix("//") {
        let scheme = base.split_once("://").map_or("https", |(s, _)| s);
        return format!("{scheme}://{rest}");
    }
    if loc.starts_with('/') {
        return format!("{}{loc}", origin_of(base));
    }
    let path = base.split(['?', '#']).next().unwrap_or(base);
    match path.rfind('/') {
        Some(i) if i > path.find("://").map_or(0, |j| j + 2) => format!("{}{loc}", &path[..=i]),
        _ => format!("{path}/{loc}"),
    }
}

/// What a downloaded file must be.
#[derive(Clone, Debug, Default)]
pub struct Expect {
    pub bytes: Option<u64>,
    /// Lower-case hex.
    pub sha256: Option<String>,
}

/// A finished, verified file.
#[derive(Clone, Debug)]
pub struct Fetched {
    pub bytes: u64,
    pub sha256: String,
}

/// Delay before retry `n` (0-based): the base (1 s; `HEARTH_RETRY_BASE_MS` in tests) doubled
/// each time, at most 30 s.
fn backoff(n: u32) -> Duration {
    let base = std::env::var("HEARTH_RETRY_BASE_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(1000);
    Duration::from_millis(base.saturating_mul(1 << n.min(5)).min(30_000))
}

/// Consecutive failures without a byte of progress before giving up.
const MAX_TRIES: u32 = 6;

/// The partial download: its file, hash of what it holds, and length.
struct Partial {
    file: File,
    hasher: Sha256,
    len: u64,
}

impl Partial {
    /// Open `FILE.partial`, keeping what it holds when it is a prefix of the same download.
    fn open(
        dest: &Path,
        want: &str,
        progress: &mut Progress,
    ) -> anyhow::Result<(Partial, PathBuf)> {
        let path = suffixed(dest, ".partial");
        let want_path = suffixed(dest, ".partial.want");
        let same = std::fs::read_to_string(&want_path).is_ok_and(|w| w == want);
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        let mut p = Partial {
            file: file.try_clone()?,
            hasher: Sha256::new(),
            len: 0,
        };
        if same && file.metadata()?.len() > 0 {
            // Hash what is already there, so the final check covers the whole file.
            let total = file.metadata()?.len();
            progress.note(&format!(
                "resuming after {}",
                crate::inspect::human_bytes(total)
            ));
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = file.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                p.hasher.update(&buf[..n]);
                p.len += n as u64;
            }
        } else {
            p.restart()?;
        }
        std::fs::write(&want_path, want)
            .with_context(|| format!("writing {}", want_path.display()))?;
        Ok((p, path))
    }

    fn restart(&mut self) -> anyhow::Result<()> {
        self.file.set_len(0)?;
        self.file.seek(SeekFrom::Start(0))?;
        self.hasher = Sha256::new();
        self.len = 0;
        Ok(())
    }

    fn append(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.file.seek(SeekFrom::Start(self.len))?;
        self.file.write_all(data)?;
        self.hasher.update(data);
        self.len += data.len() as u64;
        Ok(())
    }
}

/// How one attempt ended.
enum Attempt {
    Done,
    /// Worth another try; whether any byte arrived.
    Retry(String, bool),
}

/// Fetch `url` into `dest` (see the module comment). The caller holds the model's lock.
pub fn fetch(
    client: &Client,
    url: &str,
    dest: &Path,
    expect: &Expect,
    progress: &mut Progress,
) -> anyhow::Result<Fetched> {
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let want = format!("{url}\n{}\n", expect.sha256.as_deref().unwrap_or("-"));
    let (mut part, part_path) = Partial::open(dest, &want, progress)?;
    if expect.bytes.is_some_and(|n| part.len > n) {
        part.restart()?;
    }
    let mut total = expect.bytes;
    let mut failures = 0;
    loop {
        progress.set(part.len, total);
        if total.is_some_and(|t| part.len == t) {
            break;
        }
        match attempt(client, url, &mut part, &mut total, progress)? {
            Attempt::Done => break,
            Attempt::Retry(why, progressed) => {
                failures = if progressed { 0 } else { failures + 1 };
                if failures >= MAX_TRIES {
                    bail!("{url}: giving up after {MAX_TRIES} tries: {why} (the partial download is kept; pull again to resume)");
                }
                let wait = backoff(failures.saturating_sub(1));
                progress.note(&format!("{why}; retrying in {:.1} s", wait.as_secs_f64()));
                std::thread::sleep(wait);
            }
        }
    }
    part.file.sync_all().context("syncing the download")?;
    let sha256 = hex(&part.hasher.clone().finalize());
    let bytes = part.len;
    let bad = |what: String| -> anyhow::Result<Fetched> {
        drop(std::fs::remove_file(&part_path));
        drop(std::fs::remove_file(suffixed(dest, ".partial.want")));
        bail!("{}: {what}; the download was deleted", dest.display())
    };
    if let Some(n) = expect.bytes.filter(|&n| n != bytes) {
        return bad(format!("got {bytes} bytes, expected {n}"));
    }
    if let Some(want) = expect
        .sha256
        .as_deref()
        .filter(|w| !w.eq_ignore_ascii_case(&sha256))
    {
        return bad(format!("sha256 mismatch: got {sha256}, expected {want}"));
    }
    std::fs::rename(&part_path, dest)
        .with_context(|| format!("renaming into {}", dest.display()))?;
    drop(std::fs::remove_file(suffixed(dest, ".partial.want")));
    Ok(Fetched { bytes, sha256 })
}

fn attempt(
    client: &Client,
    url: &str,
    part: &mut Partial,
    total: &mut Option<u64>,
    progress: &mut Progress,
) -> anyhow::Result<Attempt> {
    let range = format!("bytes={}-", part.len);
    let headers: Vec<(&str, &str)> = if part.len > 0 {
        vec![("Range", &range)]
    } else {
        vec![]
    };
    let reply = match client.follow("GET", url, &headers, &|_| false) {
        Ok(r) => r,
        Err(e) => match e.downcast_ref::<NetError>() {
            // A host that cannot be reached at all is not worth a long back-off.
            Some(n) if n.unreachable && part.len == 0 => return Err(e),
            Some(n) => return Ok(Attempt::Retry(n.message.clone(), false)),
            None => return Err(e),
        },
    };
    match reply.status {
        206 => {
            let (start, end_total) = parse_content_range(reply.header("content-range"));
            if start != Some(part.len) {
                part.restart()?;
                return Ok(Attempt::Retry(
                    "the server resumed at another offset; starting over".into(),
                    false,
                ));
            }
            if let Some(t) = end_total {
                check_total(total, t)?;
            }
        }
        200 => {
            if part.len > 0 {
                progress.note("the server cannot resume; starting over");
                part.restart()?;
            }
            if let Some(t) = reply
                .header("content-length")
                .and_then(|v| v.trim().parse().ok())
            {
                check_total(total, t)?;
            }
        }
        416 if part.len > 0 && total.is_none_or(|t| t == part.len) => return Ok(Attempt::Done),
        416 => {
            part.restart()?;
            return Ok(Attempt::Retry(
                "the partial download is longer than the file".into(),
                false,
            ));
        }
        401 | 403 => bail!(
            "{}: access denied ({}); for a gated or private Hugging Face repository set HF_TOKEN",
            reply.url,
            reply.status
        ),
        404 => bail!("{}: not found (404)", reply.url),
        s @ (408 | 429 | 500..=599) => {
            return Ok(Attempt::Retry(format!("{}: HTTP {s}", reply.url), false))
        }
        s => bail!("{}: unexpected HTTP status {s}", reply.url),
    }
    progress.set(part.len, *total);
    let before = part.len;
    let mut body = reply.response.into_reader();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Ok(Attempt::Retry(
                    format!("connection lost: {e}"),
                    part.len > before,
                ))
            }
        };
        part.append(&buf[..n]).context("writing the download")?;
        progress.set(part.len, *total);
        if total.is_some_and(|t| part.len > t) {
            part.restart()?;
            return Ok(Attempt::Retry(
                "the server sent more than the file's size".into(),
                false,
            ));
        }
    }
    match *total {
        Some(t) if part.len < t => Ok(Attempt::Retry(
            "connection closed early".into(),
            part.len > before,
        )),
        _ => Ok(Attempt::Done),
    }
}

/// Record the size the server announced; a different size than expected is an error.
fn check_total(total: &mut Option<u64>, t: u64) -> anyhow::Result<()> {
    match *total {
        Some(known) if known != t => bail!("the server announced {t} bytes, expected {known}"),
        _ => {
            *total = Some(t);
            Ok(())
        }
    }
}

/// `bytes START-END/TOTAL` → (START, TOTAL).
fn parse_content_range(v: Option<&str>) -> (Option<u64>, Option<u64>) {
    let Some(rest) = v.and_then(|v| v.trim().strip_prefix("bytes ")) else {
        return (None, None);
    };
    let (range, total) = rest.split_once('/').unwrap_or((rest, "*"));
    let start = range.split('-').next().and_then(|s| s.trim().parse().ok());
    (start, total.trim().parse().ok())
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// sha256 of a file, as lower-case hex.
pub fn sha256_file(path: &Path) -> anyhow::Result<String> {
    let mut f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(origin_of("https://HF.co:443/a/b?x"), "https://hf.co:443");
        assert_eq!(host_of("http://user@127.0.0.1:8080/x"), "127.0.0.1");
        assert_eq!(host_of("http://[::1]:80/x"), "[::1]");
        assert_eq!(join_url("https://a.com/x/y", "/z"), "https://a.com/z");
        assert_eq!(join_url("https://a.com/x/y?q", "z"), "https://a.com/x/z");
        assert_eq!(
            join_url("https://a.com/x", "https://b.org/w"),
            "https://b.org/w"
        );
        assert_eq!(join_url("http://a.com/x", "//b.org/w"), "http://b.org/w");
    }

    #[test]
    fn content_range() {
        assert_eq!(
            parse_content_range(Some("bytes 10-19/20")),
            (Some(10), Some(20))
        );
        assert_eq!(parse_content_range(Some("bytes 10-19/*")), (Some(10), None));
        assert_eq!(parse_content_range(Some("junk")), (None, None));
        assert_eq!(parse_content_range(None), (None, None));
    }
}
