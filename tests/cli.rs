//! The `hearth` binary from the outside: `tokenize` reproduces llama.cpp's ids, `info` validates.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn hearth() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hearth"))
}

fn r1_vocab() -> PathBuf {
    common::fixture("vocab/deepseek-r1-distill-qwen-vocab.gguf")
}

/// Run `hearth tokenize --json` on every fixture string, both ways, and compare the ids.
fn tokenize_matches_fixture(model: &Path, fixture: &str) {
    let text = std::fs::read_to_string(common::fixture(&format!("tokenizer/{fixture}.json")))
        .expect("tokenizer fixture");
    let cases: Value = serde_json::from_str(&text).expect("fixture json");
    for case in cases.as_array().expect("cases") {
        let input = case["text"].as_str().expect("text");
        for (special, key) in [(false, "ids"), (true, "ids_add_special_parse_special")] {
            let mut cmd = hearth();
            cmd.args(["tokenize", "--json", "-m"]).arg(model);
            if special {
                cmd.arg("--special");
            }
            let out = cmd.arg("--").arg(input).output().expect("run hearth");
            assert!(
                out.status.success(),
                "hearth tokenize failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let got: Value = serde_json::from_slice(&out.stdout).expect("stdout is one JSON array");
            assert_eq!(got, case[key], "{fixture}: {input:?} ({key})");
        }
    }
}

#[test]
fn tokenize_r1_vocab_matches_llama_cpp() {
    tokenize_matches_fixture(&r1_vocab(), "deepseek-r1-distill-qwen-vocab");
}

#[test]
fn tokenize_real_models_match_llama_cpp() {
    for name in [
        "SmolLM2-135M-Instruct.Q4_1",
        "qwen2.5-coder-0.5b-instruct-q4_k_m",
        "gemma-3-270m-q4_k_m",
    ] {
        if let Some(path) = common::require_model(&format!("{name}.gguf")) {
            tokenize_matches_fixture(&path, name);
        }
    }
}

#[test]
fn tokenize_reads_stdin_and_prints_pieces() {
    use std::io::Write;
    let mut child = hearth()
        .args(["tokenize", "-m"])
        .arg(r1_vocab())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"Hello world")
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("9707") && text.contains("\"Hello\"") && text.contains("\" world\""),
        "{text}"
    );
}

#[test]
fn info_describes_the_r1_vocabulary() {
    let out = hearth()
        .args(["info", "--json"])
        .arg(r1_vocab())
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["architecture"], "qwen2");
    assert_eq!(v["vocab_pre"], "deepseek-r1-qwen");
    assert_eq!(v["vocab_size"], 152064);
    assert_eq!(v["chat_template"], true);
    assert_eq!(v["tensors"], 0);
    assert_eq!(v["tokenizer_ok"], true);
    // The R1 defaults chatting will use.
    assert_eq!(v["chat_template_used"], "gguf");
    assert_eq!(v["defaults"]["family"], "DeepSeek-R1 distill");
    assert_eq!(v["defaults"]["temperature"], "0.6");
    assert_eq!(v["defaults"]["top-p"], "0.95");
    assert_eq!(v["defaults"]["thinking"], "answer starts with <think>");
}

#[test]
fn info_on_a_real_model_reports_memory() {
    let Some(path) = common::require_model("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf") else {
        return;
    };
    let out = hearth().arg("info").arg(&path).output().expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "architecture   qwen2",
        "Q4_K",
        "Q6_K",
        "32768 (trained)",
        "KV cache (f16, 4096 tokens)",
        "chat template  yes",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}

#[test]
fn info_rejects_truncated_and_garbage_files() {
    let dir = std::env::temp_dir().join(format!("hearth-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let bytes = std::fs::read(r1_vocab()).expect("vocab");
    let cases: [(&str, &[u8]); 4] = [
        ("truncated.gguf", &bytes[..bytes.len() / 2]),
        ("magic-only.gguf", b"GGUF"),
        ("empty.gguf", b""),
        (
            "not-gguf.gguf",
            b"PK\x03\x04 this is a zip file, not a model",
        ),
    ];
    for (name, content) in cases {
        let path = dir.join(name);
        std::fs::write(&path, content).expect("write");
        let out = hearth().arg("info").arg(&path).output().expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}: accepted");
        assert!(err.starts_with("error: "), "{name}: {err}");
        assert!(
            err.contains(name),
            "{name}: error does not name the file: {err}"
        );
        assert!(!err.contains("panicked"), "{name}: {err}");
    }
    let missing = hearth()
        .arg("info")
        .arg(dir.join("nope.gguf"))
        .output()
        .expect("run");
    assert!(!missing.status.success());
    std::fs::remove_dir_all(&dir).ok();
}

/// `hearth run --raw --temperature 0 -n 24` prints llama.cpp's greedy text.
///
/// Two honest differences from the fixture's `greedy_text`: hearth stops at an end-of-generation
/// token (as llama.cpp's own CLI does) while the dumper kept going through it; and where
/// llama.cpp's top two logits were within 0.1 of each other the pick is a coin toss between
/// runtimes (llama.cpp itself on another CPU tosses differently). So the text must equal
/// llama.cpp's up to the end of generation, except that it may part from it at a near-tie step.
fn run_prints_greedy_text(model: &str) {
    let Some(path) = common::require_model(&format!("{model}.gguf")) else {
        return;
    };
    let file = hearth_models::gguf::GgufFile::open(&path).expect("model opens");
    let tok = hearth_models::tokenizer::Tokenizer::from_gguf(&file).expect("tokenizer");
    let cases =
        common::agreement::load_cases(&common::fixture(&format!("generation/{model}.json")));
    let prompts = fixture_prompts(model);
    for (case, prompt) in cases.iter().zip(&prompts) {
        let end = case
            .greedy_ids
            .iter()
            .position(|&t| tok.is_eog(t))
            .unwrap_or(case.greedy_ids.len());
        let out = hearth()
            .args([
                "run",
                "--raw",
                "--temperature",
                "0",
                "-n",
                "24",
                "-t",
                "2",
                "-m",
            ])
            .arg(&path)
            .arg(prompt)
            .output()
            .expect("run");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got = String::from_utf8(out.stdout).expect("utf-8 output");
        let want = tok.decode(&case.greedy_ids[..end], false);
        if end == case.greedy_ids.len() && got == case.greedy_text {
            continue;
        }
        if got == want {
            continue;
        }
        // The first step whose token hearth did not print: it must have been a near-tie.
        let step = (1..=end)
            .find(|&s| !got.starts_with(&tok.decode(&case.greedy_ids[..s], false)))
            .unwrap_or(end)
            .saturating_sub(1)
            .min(case.top.len() - 1);
        let top = &case.top[step];
        assert!(
            top[0].1 - top[1].1 < 0.1,
            "{model}: {prompt:?} gave {got:?}, llama.cpp {want:?}; they part at step {step}, \
             where llama.cpp's top two are {:?} and {:?}",
            top[0],
            top[1]
        );
        eprintln!("{model}: {prompt:?} parts from llama.cpp at the near-tie of step {step}");
    }
}

/// The prompts of a generation fixture, as text.
fn fixture_prompts(model: &str) -> Vec<String> {
    let text = std::fs::read_to_string(common::fixture(&format!("generation/{model}.json")))
        .expect("generation fixture");
    let json: Value = serde_json::from_str(&text).expect("json");
    json.as_array()
        .expect("cases")
        .iter()
        .map(|c| c["prompt"].as_str().expect("prompt").to_string())
        .collect()
}

#[test]
fn run_greedy_smollm2_matches_llama_cpp() {
    run_prints_greedy_text("SmolLM2-135M-Instruct.Q4_1");
}

#[test]
fn run_greedy_qwen2_matches_llama_cpp() {
    run_prints_greedy_text("qwen2.5-coder-0.5b-instruct-q4_k_m");
}

#[test]
fn kernel_sets_are_listed_and_can_be_forced() {
    let out = hearth()
        .args(["info", "--kernel-sets"])
        .output()
        .expect("run");
    assert!(out.status.success());
    let sets = String::from_utf8(out.stdout).expect("utf-8");
    let sets: Vec<&str> = sets.lines().collect();
    assert_eq!(sets.last(), Some(&"scalar"), "{sets:?}");
    for set in &sets {
        let out = hearth()
            .env("HEARTH_KERNELS", set)
            .arg("info")
            .arg(r1_vocab())
            .output()
            .expect("run");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(&format!("kernels        {set} ")), "{text}");
    }
    let out = hearth()
        .env("HEARTH_KERNELS", "avx9000")
        .arg("info")
        .arg(r1_vocab())
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("HEARTH_KERNELS") && err.contains("avx9000"),
        "{err}"
    );
}

/// `hearth bench` runs llama-bench's two tests and reports them in each format, with the kernel
/// set and one sample per repetition (the speed itself is not asserted: it is measured, not tested).
#[test]
fn bench_reports_pp_and_tg_in_every_format() {
    let Some(path) = common::require_model("SmolLM2-135M-Instruct.Q4_1.gguf") else {
        return;
    };
    let bench = |format: &str| {
        let out = hearth()
            .args([
                "bench", "-p", "16", "-n", "4", "-r", "2", "-t", "1,2", "-o", format, "-m",
            ])
            .arg(&path)
            .output()
            .expect("run");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    };
    let json: Value = serde_json::from_str(&bench("json")).expect("one JSON array");
    let rows = json.as_array().expect("array");
    let tests: Vec<(u64, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["n_threads"].as_u64().unwrap(),
                r["test"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(tests, [(1, "pp16"), (1, "tg4"), (2, "pp16"), (2, "tg4")]);
    for r in rows {
        assert_eq!(r["kernels"], hearth_simd::kernel_set());
        assert_eq!(r["samples_ts"].as_array().unwrap().len(), 2);
        assert!(r["avg_ts"].as_f64().unwrap() > 0.0, "{r}");
    }
    let md = bench("md");
    assert_eq!(
        md.lines().filter(|l| l.contains("| pp16 |")).count(),
        2,
        "{md}"
    );
    let csv = bench("csv");
    assert_eq!(csv.lines().count(), 5, "{csv}");
    let out = hearth()
        .args(["bench", "-p", "0", "-n", "0", "-m"])
        .arg(&path)
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to measure"));
}
