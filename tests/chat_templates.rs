//! Chat templates rendered byte for byte as Hugging Face transformers renders them.
//!
//! `tests/fixtures/chat/*.json` hold, per model, the GGUF's template, its BOS/EOS texts and
//! conversations with the text transformers' `apply_chat_template` made of them;
//! `tests/fixtures/chat-python/tool_calls.json` adds tool-calling conversations rendered by Python's
//! Jinja2 in transformers' environment. Expected `tojson` output comes from Python's `json.dumps`;
//! the built-in formats' expected text is written by hand from the published formats.

mod common;

use std::path::{Path, PathBuf};

use hearth::chat::template::{ChatTemplate, Message, BUILTIN_NAMES, MAX_SOURCE_BYTES};
use hearth_models::gguf::{Array, GgufFile, GgufWriter, Value as GgufValue};
use hearth_models::tokenizer::Tokenizer;
use serde_json::{json, Value};

const DEEPSEEK_VOCAB: &str = "vocab/deepseek-r1-distill-qwen-vocab.gguf";

struct Fixture {
    name: String,
    template: String,
    bos: String,
    eos: String,
    cases: Vec<Value>,
}

fn load_fixture(path: &Path) -> Fixture {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("chat fixture {}: {e}", path.display()));
    let json: Value = serde_json::from_str(&text).expect("fixture json");
    let s = |k: &str| json[k].as_str().expect(k).to_string();
    Fixture {
        name: path.file_stem().unwrap().to_string_lossy().into_owned(),
        template: s("template"),
        bos: s("bos_token"),
        eos: s("eos_token"),
        cases: json["cases"].as_array().expect("cases").clone(),
    }
}

fn fixture_named(model: &str) -> Fixture {
    load_fixture(&common::fixture(&format!("chat/{model}.json")))
}

fn all_fixtures() -> Vec<Fixture> {
    let dir = common::fixture("chat");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/fixtures/chat")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    assert!(
        paths.len() >= 3,
        "expected the three model fixtures in {}",
        dir.display()
    );
    paths.iter().map(|p| load_fixture(p)).collect()
}

/// Renders every case of `fx` with `t` and compares byte for byte; returns how many it checked.
fn check_cases(t: &ChatTemplate, fx: &Fixture) -> usize {
    for case in &fx.cases {
        let label = format!(
            "{} / {} (add_generation_prompt={})",
            fx.name, case["name"], case["add_generation_prompt"]
        );
        let agp = case["add_generation_prompt"]
            .as_bool()
            .expect("add_generation_prompt");
        let want = case["rendered"].as_str().expect("rendered");
        let got = t
            .render_json(&case["messages"], agp, case.get("tools"))
            .unwrap_or_else(|e| panic!("{label}: {e:#}"));
        assert_eq!(got, want, "{label}");
        if case.get("tools").is_none() {
            let messages: Vec<Message> =
                serde_json::from_value(case["messages"].clone()).expect("plain messages");
            let got = t
                .render(&messages, agp)
                .unwrap_or_else(|e| panic!("{label}: {e:#}"));
            assert_eq!(got, want, "{label} through render()");
        }
    }
    fx.cases.len()
}

#[test]
fn every_fixture_case_renders_byte_identical() {
    let mut checked = 0;
    for fx in all_fixtures() {
        let t = ChatTemplate::new(&fx.name, &fx.template, &fx.bos, &fx.eos).expect("compiles");
        assert_eq!(t.name(), fx.name);
        assert_eq!(t.source(), fx.template);
        checked += check_cases(&t, &fx);
    }
    assert!(checked >= 25, "only {checked} cases");
}

#[test]
fn tool_calls_render_as_python_jinja2_does() {
    let path = common::fixture("chat-python/tool_calls.json");
    let json: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for (model, key) in [
        ("qwen2.5-coder-0.5b-instruct-q4_k_m", "qwen"),
        ("deepseek-r1-distill-qwen-vocab", "deepseek"),
    ] {
        let fx = fixture_named(model);
        let t = ChatTemplate::new(model, &fx.template, &fx.bos, &fx.eos).unwrap();
        let case = &json[key];
        let got = t
            .render_json(&case["messages"], true, case.get("tools"))
            .unwrap_or_else(|e| panic!("{model}: {e:#}"));
        assert_eq!(got, case["rendered"].as_str().unwrap(), "{model}");
    }
}

#[test]
fn deepseek_fixture_is_the_ggufs_own_template() {
    let fx = fixture_named("deepseek-r1-distill-qwen-vocab");
    let file = GgufFile::open(common::fixture(DEEPSEEK_VOCAB)).expect("open vocab gguf");
    let own = file
        .metadata()
        .get_str("tokenizer.chat_template")
        .expect("template");
    assert_eq!(own, fx.template);
    let builtin = ChatTemplate::builtin("deepseek-r1", &fx.bos, &fx.eos).unwrap();
    assert_eq!(
        builtin.source(),
        fx.template,
        "built-in deepseek-r1 is the distills' template"
    );

    let tok = Tokenizer::from_gguf(&file).expect("tokenizer");
    let t = ChatTemplate::for_model(&file, &tok, None).expect("for_model");
    assert_eq!(t.name(), "gguf");
    assert_eq!(t.source(), fx.template);
    assert_eq!(check_cases(&t, &fx), fx.cases.len());
    assert!(!fx.cases.is_empty());
}

/// The vocabulary file rewritten without its template, optionally with another architecture
/// and one token renamed.
fn vocab_without_template(arch: Option<&str>, rename: Option<(&str, &str)>) -> GgufFile {
    let file = GgufFile::open(common::fixture(DEEPSEEK_VOCAB)).expect("open vocab gguf");
    let mut w = GgufWriter::new();
    w.set_version(file.version());
    for (k, v) in file.metadata().iter() {
        if k != "tokenizer.chat_template" {
            w.add(k, v.clone());
        }
    }
    for t in file.tensors() {
        w.add_tensor(&t.name, &t.dims, t.ty, file.tensor_data(t));
    }
    if let Some(arch) = arch {
        w.add("general.architecture", GgufValue::String(arch.to_string()));
    }
    if let Some((from, to)) = rename {
        let mut tokens = file
            .metadata()
            .get_str_array("tokenizer.ggml.tokens")
            .unwrap()
            .to_vec();
        let slot = tokens
            .iter_mut()
            .find(|t| *t == from)
            .expect("token to rename");
        *slot = to.to_string();
        w.add(
            "tokenizer.ggml.tokens",
            GgufValue::Array(Array::String(tokens)),
        );
    }
    GgufFile::from_bytes(w.to_bytes().unwrap()).expect("rewritten gguf")
}

#[test]
fn for_model_falls_back_to_a_builtin_by_arch_and_vocab() {
    let choose = |file: &GgufFile| {
        let tok = Tokenizer::from_gguf(file).expect("tokenizer");
        ChatTemplate::for_model(file, &tok, None).expect("for_model")
    };
    // The distill vocabulary has <｜Assistant｜>: the DeepSeek-R1 template, rendering the
    // fixture exactly as the file's own template did.
    let t = choose(&vocab_without_template(None, None));
    assert_eq!(t.name(), "deepseek-r1");
    let fx = fixture_named("deepseek-r1-distill-qwen-vocab");
    check_cases(&t, &fx);

    let t = choose(&vocab_without_template(Some("gemma3"), None));
    assert_eq!(t.name(), "gemma");
    let t = choose(&vocab_without_template(
        None,
        Some(("<｜Assistant｜>", "<|start_header_id|>")),
    ));
    assert_eq!(t.name(), "llama3");
    let t = choose(&vocab_without_template(
        None,
        Some(("<｜Assistant｜>", "<|x|>")),
    ));
    assert_eq!(t.name(), "chatml");
}

#[test]
fn for_model_override_by_name_or_file() {
    let file = GgufFile::open(common::fixture(DEEPSEEK_VOCAB)).unwrap();
    let tok = Tokenizer::from_gguf(&file).unwrap();
    let msgs = [Message::new("user", "Hi")];

    let t = ChatTemplate::for_model(&file, &tok, Some("chatml")).unwrap();
    assert_eq!(t.name(), "chatml");
    assert_eq!(
        t.render(&msgs, true).unwrap(),
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    );

    let dir = std::env::temp_dir().join(format!("hearth-chat-templates-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("mine.jinja");
    std::fs::write(&path, "{{ bos_token }}{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}{{ eos_token }}\n").unwrap();
    let path_text = path.to_str().unwrap();
    let t = ChatTemplate::for_model(&file, &tok, Some(path_text)).unwrap();
    assert_eq!(t.name(), path_text);
    assert_eq!(
        t.render(&msgs, true).unwrap(),
        "<｜begin▁of▁sentence｜>[user]Hi<｜end▁of▁sentence｜>"
    );

    let big = dir.join("big.jinja");
    std::fs::write(&big, "x".repeat(MAX_SOURCE_BYTES + 1)).unwrap();
    let err = ChatTemplate::for_model(&file, &tok, Some(big.to_str().unwrap())).unwrap_err();
    assert!(format!("{err:#}").contains("larger than"), "{err:#}");

    let err = ChatTemplate::for_model(&file, &tok, Some("no-such-template")).unwrap_err();
    let text = format!("{err:#}");
    assert!(
        text.contains("neither a built-in") && text.contains("chatml"),
        "{text}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn model_files_use_their_own_templates() {
    for model in [
        "SmolLM2-135M-Instruct.Q4_1",
        "qwen2.5-coder-0.5b-instruct-q4_k_m",
    ] {
        let Some(path) = common::require_model(&format!("{model}.gguf")) else {
            continue;
        };
        let file = GgufFile::open(&path).expect("open model");
        let tok = Tokenizer::from_gguf(&file).expect("tokenizer");
        let fx = fixture_named(model);
        let t = ChatTemplate::for_model(&file, &tok, None).expect("for_model");
        assert_eq!(t.name(), "gguf", "{model}");
        assert_eq!(t.source(), fx.template, "{model}");
        assert!(check_cases(&t, &fx) > 0);
    }
}

#[test]
fn gemma3_without_template_gets_the_gemma_builtin() {
    let Some(path) = common::require_model("gemma-3-270m-q4_k_m.gguf") else {
        return;
    };
    let file = GgufFile::open(&path).expect("open model");
    assert!(file.metadata().get("tokenizer.chat_template").is_none());
    let tok = Tokenizer::from_gguf(&file).expect("tokenizer");
    let t = ChatTemplate::for_model(&file, &tok, None).expect("for_model");
    assert_eq!(t.name(), "gemma");
    let msgs = [
        Message::new("system", "Be brief."),
        Message::new("user", "Hi"),
        Message::new("assistant", "Hello!"),
        Message::new("user", "Bye"),
    ];
    assert_eq!(
        t.render(&msgs, true).unwrap(),
        "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n\
         <start_of_turn>model\nHello!<end_of_turn>\n\
         <start_of_turn>user\nBye<end_of_turn>\n\
         <start_of_turn>model\n"
    );
}

fn conversation() -> Vec<Message> {
    vec![
        Message::new("system", "You are terse."),
        Message::new("user", "Hi!"),
        Message::new("assistant", "Hello."),
        Message::new("user", "Bye?"),
    ]
}

#[test]
fn builtin_chatml() {
    let t = ChatTemplate::builtin("chatml", "", "<|im_end|>").unwrap();
    let body = "<|im_start|>system\nYou are terse.<|im_end|>\n\
                <|im_start|>user\nHi!<|im_end|>\n\
                <|im_start|>assistant\nHello.<|im_end|>\n\
                <|im_start|>user\nBye?<|im_end|>\n";
    assert_eq!(t.render(&conversation(), false).unwrap(), body);
    assert_eq!(
        t.render(&conversation(), true).unwrap(),
        format!("{body}<|im_start|>assistant\n")
    );
}

#[test]
fn builtin_llama3() {
    let t = ChatTemplate::builtin("llama3", "<|begin_of_text|>", "<|eot_id|>").unwrap();
    let mut msgs = conversation();
    msgs[1].content = "  Hi!\n".into(); // Meta's template trims each message
    let body = "<|begin_of_text|>\
                <|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|>\
                <|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>\
                <|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|>\
                <|start_header_id|>user<|end_header_id|>\n\nBye?<|eot_id|>";
    assert_eq!(t.render(&msgs, false).unwrap(), body);
    assert_eq!(
        t.render(&msgs, true).unwrap(),
        format!("{body}<|start_header_id|>assistant<|end_header_id|>\n\n")
    );
}

#[test]
fn builtin_gemma() {
    let t = ChatTemplate::builtin("gemma", "<bos>", "<eos>").unwrap();
    assert_eq!(
        t.render(&conversation(), true).unwrap(),
        "<bos><start_of_turn>user\nYou are terse.\n\nHi!<end_of_turn>\n\
         <start_of_turn>model\nHello.<end_of_turn>\n\
         <start_of_turn>user\nBye?<end_of_turn>\n\
         <start_of_turn>model\n"
    );
    assert_eq!(
        t.render(&conversation()[1..3], false).unwrap(),
        "<bos><start_of_turn>user\nHi!<end_of_turn>\n<start_of_turn>model\nHello.<end_of_turn>\n"
    );
    let err = t
        .render(
            &[Message::new("user", "a"), Message::new("user", "b")],
            true,
        )
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("roles must alternate"),
        "{err:#}"
    );
}

#[test]
fn builtin_deepseek_r1() {
    let t = ChatTemplate::builtin(
        "deepseek-r1",
        "<｜begin▁of▁sentence｜>",
        "<｜end▁of▁sentence｜>",
    )
    .unwrap();
    let mut msgs = conversation();
    msgs[2].content = "<think>\nShort.\n</think>\n\nHello.".into(); // history drops the reasoning
    assert_eq!(
        t.render(&msgs, true).unwrap(),
        "<｜begin▁of▁sentence｜>You are terse.<｜User｜>Hi!\
         <｜Assistant｜>\n\nHello.<｜end▁of▁sentence｜><｜User｜>Bye?<｜Assistant｜>"
    );
    assert_eq!(
        t.render(&conversation()[1..2], false).unwrap(),
        "<｜begin▁of▁sentence｜><｜User｜>Hi!"
    );
}

#[test]
fn builtin_names_are_the_documented_ones() {
    assert_eq!(BUILTIN_NAMES, ["chatml", "llama3", "gemma", "deepseek-r1"]);
    for name in BUILTIN_NAMES {
        assert_eq!(ChatTemplate::builtin(name, "", "").unwrap().name(), name);
    }
    assert!(ChatTemplate::builtin("gguf", "", "").is_none());
}

/// Renders `expr` with the JSON `data` as `tools`.
fn render_expr(expr: &str, data: &Value) -> String {
    let t = ChatTemplate::new("json", &format!("{{{{ {expr} }}}}"), "", "").unwrap();
    t.render_json(&json!([]), false, Some(data))
        .unwrap_or_else(|e| panic!("{expr}: {e:#}"))
}

#[test]
fn tojson_matches_python_json_dumps() {
    // The data as Python's json.loads reads it, and each expected output as json.dumps printed
    // it (JSON-encoded here, so that control characters stay exact).
    let data: Value = serde_json::from_str(
        r#"{"name": "get_weather", "args": {"city": "Z\u00fcrich \u65e5\u672c", "days": 3, "ratio": 1.5, "tiny": 1e-07, "ten": 10.0, "ok": true, "no": false, "nothing": null, "list": [1, 2.5, "x", []], "ctrl": "a\"b\\c\nd\te\r\b\f\u0001\u001f\u007f", "html": "<b>&amp;</b>'", "emoji": "\ud83d\ude00", "neg": -3, "big": 12345678901234567890, "empty": {}}}"#,
    )
    .unwrap();
    let cases = [
        (
            "tools | tojson",
            r#""{\"name\": \"get_weather\", \"args\": {\"city\": \"Z\u00fcrich \u65e5\u672c\", \"days\": 3, \"ratio\": 1.5, \"tiny\": 1e-07, \"ten\": 10.0, \"ok\": true, \"no\": false, \"nothing\": null, \"list\": [1, 2.5, \"x\", []], \"ctrl\": \"a\\\"b\\\\c\\nd\\te\\r\\b\\f\\u0001\\u001f\u007f\", \"html\": \"<b>&amp;</b>'\", \"emoji\": \"\ud83d\ude00\", \"neg\": -3, \"big\": 12345678901234567890, \"empty\": {}}}""#,
        ),
        (
            "tools | tojson(indent=2)",
            r#""{\n  \"name\": \"get_weather\",\n  \"args\": {\n    \"city\": \"Z\u00fcrich \u65e5\u672c\",\n    \"days\": 3,\n    \"ratio\": 1.5,\n    \"tiny\": 1e-07,\n    \"ten\": 10.0,\n    \"ok\": true,\n    \"no\": false,\n    \"nothing\": null,\n    \"list\": [\n      1,\n      2.5,\n      \"x\",\n      []\n    ],\n    \"ctrl\": \"a\\\"b\\\\c\\nd\\te\\r\\b\\f\\u0001\\u001f\u007f\",\n    \"html\": \"<b>&amp;</b>'\",\n    \"emoji\": \"\ud83d\ude00\",\n    \"neg\": -3,\n    \"big\": 12345678901234567890,\n    \"empty\": {}\n  }\n}""#,
        ),
        (
            "tools | tojson(sort_keys=true)",
            r#""{\"args\": {\"big\": 12345678901234567890, \"city\": \"Z\u00fcrich \u65e5\u672c\", \"ctrl\": \"a\\\"b\\\\c\\nd\\te\\r\\b\\f\\u0001\\u001f\u007f\", \"days\": 3, \"emoji\": \"\ud83d\ude00\", \"empty\": {}, \"html\": \"<b>&amp;</b>'\", \"list\": [1, 2.5, \"x\", []], \"neg\": -3, \"no\": false, \"nothing\": null, \"ok\": true, \"ratio\": 1.5, \"ten\": 10.0, \"tiny\": 1e-07}, \"name\": \"get_weather\"}""#,
        ),
        (
            "tools | tojson(ensure_ascii=true)",
            r#""{\"name\": \"get_weather\", \"args\": {\"city\": \"Z\\u00fcrich \\u65e5\\u672c\", \"days\": 3, \"ratio\": 1.5, \"tiny\": 1e-07, \"ten\": 10.0, \"ok\": true, \"no\": false, \"nothing\": null, \"list\": [1, 2.5, \"x\", []], \"ctrl\": \"a\\\"b\\\\c\\nd\\te\\r\\b\\f\\u0001\\u001f\\u007f\", \"html\": \"<b>&amp;</b>'\", \"emoji\": \"\\ud83d\\ude00\", \"neg\": -3, \"big\": 12345678901234567890, \"empty\": {}}}""#,
        ),
        (
            "tools | tojson(separators=(',', ':'))",
            r#""{\"name\":\"get_weather\",\"args\":{\"city\":\"Z\u00fcrich \u65e5\u672c\",\"days\":3,\"ratio\":1.5,\"tiny\":1e-07,\"ten\":10.0,\"ok\":true,\"no\":false,\"nothing\":null,\"list\":[1,2.5,\"x\",[]],\"ctrl\":\"a\\\"b\\\\c\\nd\\te\\r\\b\\f\\u0001\\u001f\u007f\",\"html\":\"<b>&amp;</b>'\",\"emoji\":\"\ud83d\ude00\",\"neg\":-3,\"big\":12345678901234567890,\"empty\":{}}}""#,
        ),
        (
            "{'b': 1, 'a': [none, true, 1.0, 2e20, -0.5]} | tojson",
            r#""{\"b\": 1, \"a\": [null, true, 1.0, 2e+20, -0.5]}""#,
        ),
        (
            "tools.args.list | tojson(indent=0)",
            r#""[\n1,\n2.5,\n\"x\",\n[]\n]""#,
        ),
        (
            "tools.args | tojson(indent='\\t', sort_keys=true)",
            r#""{\n\t\"big\": 12345678901234567890,\n\t\"city\": \"Z\u00fcrich \u65e5\u672c\",\n\t\"ctrl\": \"a\\\"b\\\\c\\nd\\te\\r\\b\\f\\u0001\\u001f\u007f\",\n\t\"days\": 3,\n\t\"emoji\": \"\ud83d\ude00\",\n\t\"empty\": {},\n\t\"html\": \"<b>&amp;</b>'\",\n\t\"list\": [\n\t\t1,\n\t\t2.5,\n\t\t\"x\",\n\t\t[]\n\t],\n\t\"neg\": -3,\n\t\"no\": false,\n\t\"nothing\": null,\n\t\"ok\": true,\n\t\"ratio\": 1.5,\n\t\"ten\": 10.0,\n\t\"tiny\": 1e-07\n}""#,
        ),
        (
            "tools.args.ctrl | tojson",
            r#""\"a\\\"b\\\\c\\nd\\te\\r\\b\\f\\u0001\\u001f\u007f\"""#,
        ),
    ];
    for (expr, expected_json) in cases {
        let want: String = serde_json::from_str(expected_json).unwrap();
        assert_eq!(render_expr(expr, &data), want, "{expr}");
    }
}

#[test]
fn raise_exception_fails_the_render_with_its_message() {
    let t = ChatTemplate::new(
        "strict",
        "{% if messages[0].role != 'user' %}{{ raise_exception('First message must be from the user') }}{% endif %}ok",
        "",
        "",
    )
    .unwrap();
    assert_eq!(t.render(&[Message::new("user", "x")], true).unwrap(), "ok");
    let err = format!(
        "{:#}",
        t.render(&[Message::new("system", "x")], true).unwrap_err()
    );
    assert!(err.contains("chat template strict"), "{err}");
    assert!(err.contains("First message must be from the user"), "{err}");
}

#[test]
fn runaway_template_runs_out_of_fuel() {
    let t = ChatTemplate::new(
        "spin",
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "",
        "",
    )
    .unwrap();
    let start = std::time::Instant::now();
    let err = format!("{:#}", t.render(&[], true).unwrap_err());
    assert!(
        err.contains("chat template spin exceeded its instruction budget"),
        "{err}"
    );
    assert!(start.elapsed().as_secs() < 60, "fuel should end it quickly");
}

#[test]
fn output_is_capped() {
    let ok = ChatTemplate::new("big", "{{ 'x' * 4000000 }}", "", "").unwrap();
    assert_eq!(ok.render(&[], false).unwrap().len(), 4_000_000);
    let too_big = ChatTemplate::new(
        "big",
        "{% for i in range(3) %}{{ 'x' * 2000000 }}{% endfor %}",
        "",
        "",
    )
    .unwrap();
    let err = format!("{:#}", too_big.render(&[], false).unwrap_err());
    assert!(
        err.contains("chat template big produced more than 4 MiB of output"),
        "{err}"
    );
}

#[test]
fn syntax_error_names_template_and_line() {
    let err = ChatTemplate::new(
        "broken",
        "{% for m in messages %}\n{{ m.content }\n{% endfor %}",
        "",
        "",
    )
    .unwrap_err();
    let text = format!("{err:#}");
    assert!(
        text.contains("chat template broken does not compile"),
        "{text}"
    );
    assert!(text.contains("syntax error"), "{text}");
    assert!(text.contains("broken:2"), "{text}");
}

#[test]
fn include_import_and_extends_are_refused() {
    for src in [
        "{% include 'other.jinja' %}",
        "{% import 'macros.jinja' as m %}",
        "{% from 'macros.jinja' import m %}",
        "{% extends 'base.jinja' %}",
    ] {
        let err = ChatTemplate::new("sneaky", src, "", "").unwrap_err();
        assert!(
            format!("{err:#}").contains("chat template sneaky"),
            "{src}: {err:#}"
        );
    }
}

#[test]
fn render_errors_name_template_and_line() {
    let t =
        ChatTemplate::new("typo", "line one\n{{ messages[0].content.nope() }}", "", "").unwrap();
    let err = format!(
        "{:#}",
        t.render(&[Message::new("user", "x")], true).unwrap_err()
    );
    assert!(err.contains("chat template typo failed"), "{err}");
    assert!(err.contains("typo:2"), "{err}");
}
