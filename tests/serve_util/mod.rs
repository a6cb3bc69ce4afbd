//! Helpers for the `hearth serve` tests: start the server on a free loopback port, speak
//! HTTP/1.1 to it (raw bytes for hostile input, ureq for the rest), read SSE streams.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The fast test model.
pub const SMOLLM: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// Test binaries run their tests on parallel threads; servers share two cores, so the tests
/// that start one take turns.
pub static SERIAL: Mutex<()> = Mutex::new(());

pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running `hearth serve`, killed when dropped.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    /// Everything the server wrote to stderr so far.
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Start `hearth serve -m MODEL --port 0 ARGS...` and wait until it listens.
    pub fn start(model: &PathBuf, args: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hearth"))
            .arg("serve")
            .arg("-m")
            .arg(model)
            .args(["--port", "0", "--offline"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start hearth serve");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(at) = line.find("on http://") {
                    let rest = &line[at + "on http://".len()..];
                    let addr = rest.split('/').next().unwrap_or("").to_string();
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(addr);
                    }
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(a) => a.parse().expect("server address"),
            Err(_) => {
                let _ = child.kill();
                panic!("hearth serve did not start: {:?}", log.lock().unwrap());
            }
        };
        Server { child, addr, log }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Send SIGTERM (as a service manager does).
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Wait for the process to exit, at most `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A response read off a raw connection.
#[derive(Debug)]
pub struct Raw {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Raw {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
}

/// Send `request` as is, read the response until the server closes (ask for
/// `Connection: close`). Bodies of error responses are never chunked.
pub fn raw(addr: SocketAddr, request: &[u8]) -> Raw {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.write_all(request).expect("send");
    read_response(&mut s)
}

pub fn read_response(s: &mut TcpStream) -> Raw {
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Raw {
        status,
        head: head.to_string(),
        body,
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// A POST with a JSON body and the given extra header lines.
pub fn post(addr: SocketAddr, path: &str, body: &str, extra: &str) -> Raw {
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n{body}",
        body.len()
    );
    raw(addr, req.as_bytes())
}

pub fn get(addr: SocketAddr, path: &str, extra: &str) -> Raw {
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{extra}\r\n");
    raw(addr, req.as_bytes())
}

/// One streamed response: its events as JSON (`[DONE]` as the string), in order.
pub struct Stream {
    reader: BufReader<Box<dyn Read + Send>>,
    pub status: u16,
}

impl Stream {
    /// POST a streaming request; returns once the headers are in.
    pub fn open(addr: SocketAddr, path: &str, body: &Value) -> Result<Stream, (u16, String)> {
        let agent = ureq::AgentBuilder::new()
            .timeout_read(Duration::from_secs(120))
            .build();
        match agent
            .post(&format!("http://{addr}{path}"))
            .set("Content-Type", "application/json")
            .send_string(&body.to_string())
        {
            Ok(r) => Ok(Stream {
                status: r.status(),
                reader: BufReader::new(Box::new(r.into_reader())),
            }),
            Err(ureq::Error::Status(code, r)) => {
                let retry = r.header("retry-after").unwrap_or("").to_string();
                Err((code, retry))
            }
            Err(e) => panic!("request failed: {e}"),
        }
    }

    /// The next event, `None` at the end of the body.
    pub fn next_event(&mut self) -> Option<Value> {
        let mut line = String::new();
        loop {
            line.clear();
            if self.reader.read_line(&mut line).ok()? == 0 {
                return None;
            }
            if let Some(data) = line.trim_end().strip_prefix("data: ") {
                if data == "[DONE]" {
                    return Some(Value::String(data.into()));
                }
                return Some(serde_json::from_str(data).expect("event JSON"));
            }
        }
    }

    /// Every remaining event.
    pub fn rest(&mut self) -> Vec<Value> {
        std::iter::from_fn(|| self.next_event()).collect()
    }
}

/// The text a chat stream's events carry: (reasoning, content).
pub fn stream_text(events: &[Value]) -> (String, String) {
    let (mut r, mut c) = (String::new(), String::new());
    for e in events {
        let d = &e["choices"][0]["delta"];
        if let Some(t) = d["reasoning_content"].as_str() {
            r.push_str(t);
        }
        if let Some(t) = d["content"].as_str() {
            c.push_str(t);
        }
    }
    (r, c)
}
