//! Reading and validating request bodies. Every field is checked by hand (type, finiteness,
//! range) so that a bad value is a 400 that names the field, never a NaN in the sampler, an
//! absurd allocation or a panic. What we do not implement (several choices, tools, images, logit
//! biases) is refused rather than silently ignored.

use serde_json::{Map, Value};

use super::error::ApiError;
use super::Served;
use crate::chat::prompt::ThinkMode;
use crate::chat::template::Message;
use crate::engine::ReasoningOptions;
use crate::sampler::SamplerParams;

/// Most stop strings per request, and bytes per stop string.
const MAX_STOPS: usize = 16;
const MAX_STOP_BYTES: usize = 1024;
/// Most alternatives per token with logprobs (OpenAI's limit).
const MAX_TOP_LOGPROBS: usize = 20;
/// Most messages in a chat request.
const MAX_MESSAGES: usize = 10_000;

/// Which endpoint a generation came through (they differ in their response shape).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Chat,
    Completion,
}

impl Kind {
    pub fn path(self) -> &'static str {
        match self {
            Kind::Chat => "/v1/chat/completions",
            Kind::Completion => "/v1/completions",
        }
    }
}

/// A validated generation request, ready for the inference thread.
#[derive(Clone, Debug)]
pub struct GenRequest {
    pub kind: Kind,
    pub prompt: Vec<u32>,
    pub params: SamplerParams,
    /// Already clamped to the room the context leaves after the prompt.
    pub max_tokens: usize,
    pub stop: Vec<String>,
    pub reasoning: Option<ReasoningOptions>,
    /// Return the reasoning (`think: "hide"` keeps it out of the response).
    pub show_reasoning: bool,
    pub stream: bool,
    pub include_usage: bool,
    /// `Some(n)`: per-token log-probabilities with `n` alternatives.
    pub logprobs: Option<usize>,
}

/// The fields of a JSON object, read with checks that name the field on failure.
struct Fields<'a>(&'a Map<String, Value>);

impl<'a> Fields<'a> {
    /// A field; `null` counts as absent, as OpenAI's API treats it.
    fn get(&self, name: &str) -> Option<&'a Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    /// A finite number in `[lo, hi]`.
    fn number(&self, name: &str, lo: f32, hi: f32) -> Result<Option<f32>, ApiError> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        let out_of_range = || {
            ApiError::field(
                name,
                format!("`{name}` must be a number between {lo} and {hi}, got {v}"),
            )
        };
        let x = v.as_f64().ok_or_else(out_of_range)?;
        if !x.is_finite() || x < f64::from(lo) || x > f64::from(hi) {
            return Err(out_of_range());
        }
        Ok(Some(x as f32))
    }

    /// An integer in `[lo, hi]`.
    fn integer(&self, name: &str, lo: i64, hi: i64) -> Result<Option<i64>, ApiError> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        match v.as_i64() {
            Some(x) if (lo..=hi).contains(&x) => Ok(Some(x)),
            _ => Err(ApiError::field(
                name,
                format!("`{name}` must be an integer between {lo} and {hi}, got {v}"),
            )),
        }
    }

    fn usize(&self, name: &str, lo: usize, hi: usize) -> Result<Option<usize>, ApiError> {
        let to_i64 = |x: usize| i64::try_from(x).unwrap_or(i64::MAX);
        Ok(self
            .integer(name, to_i64(lo), to_i64(hi))?
            .and_then(|x| usize::try_from(x).ok()))
    }

    fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(ApiError::field(
                name,
                format!("`{name}` must be true or false, got {v}"),
            )),
        }
    }

    /// Refuse a feature we do not implement when the request actually uses it.
    fn unsupported(&self, name: &str, used: impl Fn(&Value) -> bool) -> Result<(), ApiError> {
        match self.get(name) {
            Some(v) if used(v) => Err(ApiError::field(
                name,
                format!("`{name}` is not supported by this server"),
            )),
            _ => Ok(()),
        }
    }
}

/// Parse a request body as a JSON object.
pub fn parse_body(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::bad_request(
            "the request body must be a JSON object",
        )),
        Err(e) => Err(ApiError::bad_request(format!(
            "the request body is not valid JSON: {e}"
        ))),
    }
}

/// A chat completion request.
pub fn chat(served: &Served, body: &Map<String, Value>) -> Result<GenRequest, ApiError> {
    let f = Fields(body);
    f.unsupported("tools", |v| v.as_array().is_none_or(|a| !a.is_empty()))?;
    f.unsupported("functions", |v| v.as_array().is_none_or(|a| !a.is_empty()))?;
    f.unsupported("response_format", |v| {
        v.get("type").and_then(Value::as_str) != Some("text")
    })?;
    let mut messages = messages(f.get("messages"))?;
    if let Some(system) = &served.system {
        if !messages.iter().any(|m| m.role == "system") {
            messages.insert(0, Message::new("system", system));
        }
    }
    let budget = f.usize("reasoning_budget", 0, 1 << 30)?;
    let think = match f.get("think") {
        None => served.think,
        Some(Value::Bool(true)) => ThinkMode::Show,
        Some(Value::Bool(false)) => ThinkMode::Off,
        Some(Value::String(s)) => ThinkMode::parse(s).ok_or_else(|| {
            ApiError::field(
                "think",
                "`think` must be true, false, \"show\", \"hide\" or \"off\"",
            )
        })?,
        Some(_) => {
            return Err(ApiError::field(
                "think",
                "`think` must be true, false, \"show\", \"hide\" or \"off\"",
            ))
        }
    };
    let budget = budget.or(served.reasoning_budget);
    let think = if budget == Some(0) {
        ThinkMode::Off
    } else {
        think
    };
    let prompt = served
        .format
        .prompt(&served.engine.tokenizer, &messages, think)
        .map_err(|e| ApiError::field("messages", format!("{e:#}")))?;
    let reasoning = served
        .format
        .defaults
        .reasoning
        .then_some(ReasoningOptions {
            start: prompt.start,
            budget,
            detect_loops: served.detect_loops,
        });
    let logprobs = match (
        f.bool("logprobs")?,
        f.usize("top_logprobs", 0, MAX_TOP_LOGPROBS)?,
    ) {
        (Some(true), top) => Some(top.unwrap_or(0)),
        (_, Some(_)) => {
            return Err(ApiError::field(
                "top_logprobs",
                "`top_logprobs` needs `logprobs: true`",
            ))
        }
        _ => None,
    };
    let max_tokens = match f.get("max_completion_tokens") {
        Some(_) => "max_completion_tokens",
        None => "max_tokens",
    };
    let show_reasoning = think != ThinkMode::Hide;
    common(served, &f, Kind::Chat, prompt.tokens, max_tokens, logprobs).map(|mut r| {
        r.reasoning = reasoning;
        r.show_reasoning = show_reasoning;
        r
    })
}

/// A (legacy) completion request: a raw prompt, no template.
pub fn completion(served: &Served, body: &Map<String, Value>) -> Result<GenRequest, ApiError> {
    let f = Fields(body);
    f.unsupported("echo", |v| v.as_bool() != Some(false))?;
    f.unsupported("suffix", |v| v.as_str().is_none_or(|s| !s.is_empty()))?;
    if f.integer("best_of", 1, 1)?.is_some_and(|b| b != 1) {
        return Err(ApiError::field("best_of", "`best_of` must be 1"));
    }
    let tokenizer = &served.engine.tokenizer;
    let encode = |text: &str| {
        // Never parse control-token text in a client's prompt: it stays text.
        tokenizer
            .encode(text, true, false)
            .map_err(|e| ApiError::field("prompt", format!("cannot tokenize the prompt: {e}")))
    };
    let prompt = match f.get("prompt") {
        Some(Value::String(s)) => encode(s)?,
        Some(Value::Array(items)) if items.len() == 1 && items[0].is_string() => {
            encode(items[0].as_str().unwrap_or_default())?
        }
        Some(Value::Array(items)) if !items.is_empty() && items.iter().all(Value::is_u64) => {
            let n_vocab = tokenizer.n_vocab() as u64;
            items
                .iter()
                .map(|t| match t.as_u64() {
                    Some(id) if id < n_vocab => Ok(id as u32),
                    _ => Err(ApiError::field(
                        "prompt",
                        format!("token ids must be below the vocabulary size {n_vocab}"),
                    )),
                })
                .collect::<Result<_, _>>()?
        }
        Some(_) => {
            return Err(ApiError::field(
                "prompt",
                "`prompt` must be a string, a list of one string or a list of token ids",
            ))
        }
        None => return Err(ApiError::field("prompt", "`prompt` is required")),
    };
    let logprobs = f.usize("logprobs", 0, MAX_TOP_LOGPROBS)?;
    common(served, &f, Kind::Completion, prompt, "max_tokens", logprobs)
}

/// The fields both endpoints share.
fn common(
    served: &Served,
    f: &Fields,
    kind: Kind,
    prompt: Vec<u32>,
    max_tokens_field: &str,
    logprobs: Option<usize>,
) -> Result<GenRequest, ApiError> {
    f.unsupported("logit_bias", |v| {
        v.as_object().is_none_or(|m| !m.is_empty())
    })?;
    if f.integer("n", 1, 1)?.is_some_and(|n| n != 1) {
        return Err(ApiError::field("n", "`n` must be 1"));
    }
    let engine = &served.engine;
    let n_vocab = engine.model.hp.n_vocab;
    let mut p = served.sampling;
    if let Some(t) = f.number("temperature", 0.0, 2.0)? {
        p.temperature = t;
    }
    if let Some(t) = f.number("top_p", 0.0, 1.0)? {
        p.top_p = t;
    }
    if let Some(t) = f.number("min_p", 0.0, 1.0)? {
        p.min_p = t;
    }
    if let Some(k) = f.integer("top_k", 0, n_vocab as i64)? {
        p.top_k = k as i32;
    }
    if let Some(t) = f.number("presence_penalty", -2.0, 2.0)? {
        p.presence_penalty = t;
    }
    if let Some(t) = f.number("frequency_penalty", -2.0, 2.0)? {
        p.frequency_penalty = t;
    }
    if let Some(t) = f.number("repeat_penalty", 0.01, 10.0)? {
        p.repeat_penalty = t;
    }
    if let Some(s) = f.get("seed") {
        let seed = s.as_u64().ok_or_else(|| {
            ApiError::field(
                "seed",
                format!("`seed` must be a non-negative integer, got {s}"),
            )
        })?;
        p.seed = Some(seed);
    }
    p.validate()
        .map_err(|e| ApiError::field(e.field(), e.to_string()))?;
    let stream = f.bool("stream")?.unwrap_or(false);
    let include_usage = match f.get("stream_options") {
        None => false,
        Some(Value::Object(o)) => Fields(o).bool("include_usage")?.unwrap_or(false),
        Some(_) => {
            return Err(ApiError::field(
                "stream_options",
                "`stream_options` must be an object",
            ))
        }
    };
    let stop = stops(f.get("stop"))?;
    if prompt.is_empty() {
        return Err(ApiError::field("prompt", "the prompt is empty"));
    }
    let n_ctx = engine.n_ctx;
    if prompt.len() >= n_ctx {
        return Err(ApiError::field(
            if kind == Kind::Chat { "messages" } else { "prompt" },
            format!(
                "the prompt is {} tokens but the context holds {n_ctx}, with room for at least one token to generate",
                prompt.len()
            ),
        )
        .with_code("context_length_exceeded"));
    }
    let room = n_ctx - prompt.len();
    let max_tokens = f
        .usize(max_tokens_field, 1, i32::MAX as usize)?
        .map_or(room, |m| m.min(room));
    Ok(GenRequest {
        kind,
        prompt,
        params: p,
        max_tokens,
        stop,
        reasoning: None,
        show_reasoning: true,
        stream,
        include_usage,
        logprobs,
    })
}

fn stops(v: Option<&Value>) -> Result<Vec<String>, ApiError> {
    let list: Vec<&Value> = match v {
        None => return Ok(Vec::new()),
        Some(Value::Array(a)) => a.iter().collect(),
        Some(s) => vec![s],
    };
    if list.len() > MAX_STOPS {
        return Err(ApiError::field(
            "stop",
            format!("at most {MAX_STOPS} stop strings"),
        ));
    }
    list.into_iter()
        .map(|s| match s.as_str() {
            Some(s) if !s.is_empty() && s.len() <= MAX_STOP_BYTES => Ok(s.to_string()),
            _ => Err(ApiError::field(
                "stop",
                format!(
                    "`stop` must be a string or a list of strings of 1 to {MAX_STOP_BYTES} bytes"
                ),
            )),
        })
        .collect()
}

/// The conversation: roles checked, content as text (text parts joined).
fn messages(v: Option<&Value>) -> Result<Vec<Message>, ApiError> {
    let bad = |msg: String| ApiError::field("messages", msg);
    let list = match v {
        Some(Value::Array(a)) if !a.is_empty() => a,
        Some(Value::Array(_)) => return Err(bad("`messages` must not be empty".into())),
        Some(_) => return Err(bad("`messages` must be a list of messages".into())),
        None => return Err(bad("`messages` is required".into())),
    };
    if list.len() > MAX_MESSAGES {
        return Err(bad(format!("at most {MAX_MESSAGES} messages")));
    }
    list.iter()
        .enumerate()
        .map(|(i, m)| {
            let m = m
                .as_object()
                .ok_or_else(|| bad(format!("messages[{i}] must be an object")))?;
            let role = match m.get("role").and_then(Value::as_str) {
                Some("developer") => "system",
                Some(r @ ("system" | "user" | "assistant")) => r,
                Some(r) => {
                    return Err(bad(format!(
                        "messages[{i}].role `{r}` is not supported (system, developer, user, assistant)"
                    )))
                }
                None => return Err(bad(format!("messages[{i}].role is required"))),
            };
            let content = match m.get("content") {
                Some(Value::String(s)) => s.clone(),
                None | Some(Value::Null) if role == "assistant" => String::new(),
                Some(Value::Array(parts)) => parts
                    .iter()
                    .map(|p| match (p.get("type").and_then(Value::as_str), p.get("text")) {
                        (Some("text"), Some(Value::String(t))) => Ok(t.as_str()),
                        _ => Err(bad(format!(
                            "messages[{i}].content: only text parts are supported"
                        ))),
                    })
                    .collect::<Result<Vec<_>, _>>()?
                    .join("\n"),
                _ => {
                    return Err(bad(format!(
                        "messages[{i}].content must be a string or a list of text parts"
                    )))
                }
            };
            Ok(Message::new(role, &content))
        })
        .collect()
}
