//! Chat templates: the Jinja template a GGUF carries in `tokenizer.chat_template` (or one of our
//! built-ins), rendered with minijinja exactly as Hugging Face transformers' `apply_chat_template`
//! renders it with Python's Jinja2.
//!
//! What "exactly" takes, beyond minijinja's Jinja2 compatibility:
//! - transformers' environment: `trim_blocks`, `lstrip_blocks`, loop controls, no trailing newline
//!   kept, no auto-escaping; Python string/dict methods (`split`, `strip`, `items`, `get`, ...)
//!   from `minijinja_contrib::pycompat`.
//! - its globals: `raise_exception(msg)` and `strftime_now(fmt)`, and its `tojson`, which is
//!   `json.dumps(..., ensure_ascii=False)` (see [`python`]), not Jinja2's HTML-safe filter.
//! - Python's `str()` for `{{ value }}` (`True`, `None`, `1e-07`, `['a']`).
//!
//! A template comes from a file the user downloaded, so it runs sandboxed: no loader (`include`,
//! `import` and `extends` are not even parsed), a fuel budget that ends runaway loops, an output
//! cap, and minijinja's recursion limit.

mod python;

use std::io;
use std::path::Path;

use anyhow::{anyhow, bail, Context as _};
use hearth_models::gguf::GgufFile;
use hearth_models::tokenizer::Tokenizer;
use minijinja::syntax::SyntaxConfig;
use minijinja::value::Serde;
use minijinja::{AutoEscape, Environment, Error, ErrorKind, Value};

/// The built-in templates, by name.
pub const BUILTIN_NAMES: [&str; 4] = ["chatml", "llama3", "gemma", "deepseek-r1"];

/// Instructions one render may execute (each also pays about one unit per 64 bytes of data it
/// creates). A long conversation through a tool-calling template takes tens of thousands.
const FUEL: u64 = 2_000_000;
/// The most text one render may produce.
pub const MAX_OUTPUT_BYTES: usize = 4 << 20;
/// The largest template source we accept (real ones are a few KiB).
pub const MAX_SOURCE_BYTES: usize = 1 << 20;
/// Nesting depth (minijinja counts a macro call as several levels).
const RECURSION_LIMIT: usize = 200;

/// One chat message with plain text content.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: &str, content: &str) -> Message {
        Message {
            role: role.to_string(),
            content: content.to_string(),
        }
    }
}

/// A compiled chat template with the BOS/EOS texts it is rendered with.
#[derive(Clone)]
pub struct ChatTemplate {
    name: String,
    source: String,
    bos_token: String,
    eos_token: String,
    env: Environment<'static>,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("name", &self.name)
            .field("source_bytes", &self.source.len())
            .field("bos_token", &self.bos_token)
            .field("eos_token", &self.eos_token)
            .finish()
    }
}

fn builtin_source(name: &str) -> Option<&'static str> {
    Some(match name {
        "chatml" => include_str!("builtin/chatml.jinja"),
        "llama3" => include_str!("builtin/llama3.jinja"),
        "gemma" => include_str!("builtin/gemma.jinja"),
        "deepseek-r1" => include_str!("builtin/deepseek-r1.jinja"),
        _ => return None,
    })
}

impl ChatTemplate {
    /// Compiles `source` now, so a syntax error surfaces here, naming `name` and the line.
    pub fn new(
        name: &str,
        source: &str,
        bos_token: &str,
        eos_token: &str,
    ) -> anyhow::Result<ChatTemplate> {
        if source.len() > MAX_SOURCE_BYTES {
            bail!(
                "chat template {name} is {} bytes, more than the {MAX_SOURCE_BYTES} we accept",
                source.len()
            );
        }
        let mut env = environment()
            .map_err(|e| anyhow!("chat template {name}: could not configure the engine: {e}"))?;
        env.add_template_owned(name.to_string(), source.to_string())
            .map_err(|e| anyhow!("chat template {name} does not compile: {e}"))?;
        Ok(ChatTemplate {
            name: name.to_string(),
            source: source.to_string(),
            bos_token: bos_token.to_string(),
            eos_token: eos_token.to_string(),
            env,
        })
    }

    /// A built-in template by name (see [`BUILTIN_NAMES`]); `None` for any other name.
    pub fn builtin(name: &str, bos_token: &str, eos_token: &str) -> Option<ChatTemplate> {
        let source = builtin_source(name)?;
        // The built-in sources are constants, compiled by the tests.
        Some(
            ChatTemplate::new(name, source, bos_token, eos_token)
                .expect("built-in template compiles"),
        )
    }

    /// The template a model uses. `override_` is a built-in name or the path of a template file;
    /// without it, the GGUF's own `tokenizer.chat_template`; without that, the built-in that
    /// fits the architecture and vocabulary (Gemma by architecture, Llama 3 and DeepSeek-R1 by
    /// their marker tokens, ChatML otherwise). BOS/EOS are the tokenizer's token texts.
    pub fn for_model(
        file: &GgufFile,
        tokenizer: &Tokenizer,
        override_: Option<&str>,
    ) -> anyhow::Result<ChatTemplate> {
        let text = |id: Option<u32>| id.and_then(|id| tokenizer.token_text(id)).unwrap_or("");
        let (bos, eos) = (text(tokenizer.bos()), text(tokenizer.eos()));
        if let Some(choice) = override_ {
            if let Some(t) = ChatTemplate::builtin(choice, bos, eos) {
                return Ok(t);
            }
            let source = read_template_file(Path::new(choice)).with_context(|| {
                format!(
                    "chat template {choice:?} is neither a built-in ({}) nor a readable file",
                    BUILTIN_NAMES.join(", ")
                )
            })?;
            return ChatTemplate::new(choice, &source, bos, eos);
        }
        if let Some(value) = file.metadata().get("tokenizer.chat_template") {
            let source = value.as_str().ok_or_else(|| {
                anyhow!(
                    "tokenizer.chat_template is a {}, not a string",
                    value.type_description()
                )
            })?;
            if !source.trim().is_empty() {
                return ChatTemplate::new("gguf", source, bos, eos);
            }
        }
        let arch = file
            .metadata()
            .get("general.architecture")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        let name = builtin_for(arch, tokenizer);
        ChatTemplate::builtin(name, bos, eos).ok_or_else(|| anyhow!("no built-in template {name}"))
    }

    /// `gguf` for the file's own template, else the built-in name or the template file's path.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Renders plain-text messages (`tools` is none).
    pub fn render(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> anyhow::Result<String> {
        self.render_value(Value::from(Serde(messages)), add_generation_prompt, None)
    }

    /// Renders messages given as JSON (tool calls, `content: null`, content parts, ...) and, when
    /// given, the `tools` list, as transformers passes them.
    pub fn render_json(
        &self,
        messages: &serde_json::Value,
        add_generation_prompt: bool,
        tools: Option<&serde_json::Value>,
    ) -> anyhow::Result<String> {
        if !messages.is_array() {
            bail!("chat template {}: messages must be a JSON array", self.name);
        }
        let tools = tools.map(|t| Value::from(Serde(t)));
        self.render_value(Value::from(Serde(messages)), add_generation_prompt, tools)
    }

    fn render_value(
        &self,
        messages: Value,
        add_generation_prompt: bool,
        tools: Option<Value>,
    ) -> anyhow::Result<String> {
        let template = self
            .env
            .get_template(&self.name)
            .map_err(|e| anyhow!("chat template {}: {e}", self.name))?;
        let ctx = minijinja::context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => &self.bos_token,
            eos_token => &self.eos_token,
            tools => tools.unwrap_or(Value::from(())),
            documents => Value::from(()),
        };
        let mut out = CappedWriter::default();
        match template.render_captured_to(ctx, &mut out) {
            Ok(_) => {}
            Err(_) if out.overflowed => bail!(
                "chat template {} produced more than {} MiB of output",
                self.name,
                MAX_OUTPUT_BYTES >> 20
            ),
            Err(e) if e.kind() == ErrorKind::OutOfFuel => bail!(
                "chat template {} exceeded its instruction budget ({FUEL} steps): {e}",
                self.name
            ),
            Err(e) => bail!("chat template {} failed: {}", self.name, describe(&e)),
        }
        String::from_utf8(out.buf)
            .map_err(|_| anyhow!("chat template {} produced invalid UTF-8", self.name))
    }
}

/// A minijinja error with its causes (an error inside a macro call wraps the original).
fn describe(e: &Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The environment transformers renders chat templates in, sandboxed.
fn environment() -> Result<Environment<'static>, Error> {
    let mut env = Environment::new();
    env.set_syntax(
        SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(false)
            .build()?,
    );
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_debug(false);
    env.set_fuel(Some(FUEL));
    env.set_recursion_limit(RECURSION_LIMIT);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.set_formatter(python::format_output);
    env.add_filter("tojson", python::tojson);
    env.add_function("raise_exception", raise_exception);
    env.add_function("strftime_now", crate::strftime::strftime_now);
    Ok(env)
}

/// transformers' `raise_exception`: fails the render with the template's own message.
fn raise_exception(message: &Value) -> Result<Value, Error> {
    let text = python::py_str(message)?;
    Err(Error::new(
        ErrorKind::InvalidOperation,
        format!("raise_exception: {text}"),
    ))
}

/// The built-in for a model without a template of its own.
fn builtin_for(arch: &str, tokenizer: &Tokenizer) -> &'static str {
    if arch.starts_with("gemma") {
        "gemma"
    } else if tokenizer.id_of("<|start_header_id|>").is_some() {
        "llama3"
    } else if tokenizer.id_of("<｜Assistant｜>").is_some() {
        "deepseek-r1"
    } else {
        "chatml"
    }
}

/// Reads a template file, refusing anything larger than [`MAX_SOURCE_BYTES`] before reading it.
fn read_template_file(path: &Path) -> anyhow::Result<String> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX_SOURCE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("read {}", path.display()))?;
    if bytes.len() > MAX_SOURCE_BYTES {
        bail!(
            "{} is larger than {MAX_SOURCE_BYTES} bytes: not a chat template",
            path.display()
        );
    }
    String::from_utf8(bytes).with_context(|| format!("{} is not UTF-8", path.display()))
}

/// Collects the output, failing once it would pass [`MAX_OUTPUT_BYTES`].
#[derive(Default)]
struct CappedWriter {
    buf: Vec<u8>,
    overflowed: bool,
}

impl io::Write for CappedWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() + data.len() > MAX_OUTPUT_BYTES {
            self.overflowed = true;
            return Err(io::Error::other("chat template output cap reached"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render_str(source: &str, messages: &[Message]) -> anyhow::Result<String> {
        ChatTemplate::new("test", source, "<s>", "</s>")?.render(messages, true)
    }

    #[test]
    fn templates_can_be_shared_across_threads() {
        fn shareable<T: Send + Sync + Clone>() {}
        shareable::<ChatTemplate>();
    }

    #[test]
    fn builtins_compile_and_unknown_is_none() {
        for name in BUILTIN_NAMES {
            let t = ChatTemplate::builtin(name, "<s>", "</s>").expect(name);
            assert_eq!(t.name(), name);
            assert_eq!(t.source(), builtin_source(name).unwrap());
        }
        assert!(ChatTemplate::builtin("vicuna", "", "").is_none());
    }

    #[test]
    fn hf_whitespace_rules() {
        // trim_blocks eats the newline after a tag, lstrip_blocks the indentation before one,
        // and a single trailing newline of the source is dropped.
        let src = "{% for m in messages %}\n    {% if true %}\n[{{ m.content }}]\n    {% endif %}\n{% endfor %}\n";
        let out = render_str(src, &[Message::new("user", "a"), Message::new("user", "b")]).unwrap();
        assert_eq!(out, "[a]\n[b]\n");
    }

    #[test]
    fn python_str_of_values() {
        let src = "{{ true }} {{ none }} {{ 1e-7 }} {{ 10.0 }} {{ [1, 'a', none] }} {{ {'k': false} }} {{ undefined_var }}|";
        assert_eq!(
            render_str(src, &[]).unwrap(),
            "True None 1e-07 10.0 [1, 'a', None] {'k': False} |"
        );
    }

    #[test]
    fn python_methods_and_loop_controls() {
        let src = "{% for m in messages %}{% if loop.index0 == 2 %}{% break %}{% endif %}\
                   {% if m.role == 'skip' %}{% continue %}{% endif %}\
                   {{ m.content.split('</think>')[-1].strip() }}|{{ m.content.startswith('x') }};\
                   {% endfor %}{{ {'a': 1}.get('a') }}{% for k, v in {'b': 2}.items() %}{{ k }}={{ v }}{% endfor %}";
        let msgs = [
            Message::new("assistant", "<think>hm</think> x "),
            Message::new("skip", "nope"),
            Message::new("user", "never"),
        ];
        assert_eq!(render_str(src, &msgs).unwrap(), "x|False;1b=2");
    }

    #[test]
    fn tools_is_none_without_tools() {
        let t =
            ChatTemplate::new("t", "{{ tools is none }}{{ tools is defined }}", "", "").unwrap();
        assert_eq!(t.render(&[], false).unwrap(), "TrueTrue");
        let tools = serde_json::json!([{"name": "f"}]);
        let t = ChatTemplate::new("t", "{{ tools[0].name }}", "", "").unwrap();
        assert_eq!(
            t.render_json(&serde_json::json!([]), false, Some(&tools))
                .unwrap(),
            "f"
        );
        assert!(t.render_json(&serde_json::json!({}), false, None).is_err());
    }

    #[test]
    fn deep_recursion_is_an_error_not_a_crash() {
        let src = "{% macro r(n) %}{{ r(n + 1) }}{% endmacro %}{{ r(0) }}";
        let err = render_str(src, &[]).unwrap_err().to_string();
        assert!(err.contains("chat template test"), "{err}");
        assert!(err.contains("recursion"), "{err}");
    }

    #[test]
    fn strftime_now_prints_a_date() {
        let out = render_str("{{ strftime_now('%Y-%m-%d') }}", &[]).unwrap();
        let parts: Vec<&str> = out.split('-').collect();
        assert_eq!(parts.len(), 3, "{out}");
        assert!(parts[0].parse::<u32>().unwrap() >= 2024, "{out}");
        assert!(
            (1..=12).contains(&parts[1].parse::<u32>().unwrap()),
            "{out}"
        );
        assert!(
            (1..=31).contains(&parts[2].parse::<u32>().unwrap()),
            "{out}"
        );
    }
}
