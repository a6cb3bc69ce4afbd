//! Response bodies: OpenAI's chat completion and (legacy) completion objects, whole or as a
//! stream of server-sent events (`data: {...}` chunks, then `data: [DONE]`).

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use serde_json::{json, Map, Value};
use tokio::sync::mpsc::UnboundedReceiver;

use super::error::ApiError;
use super::request::Kind;
use super::worker::{Msg, TokenProb};
use crate::chat::reasoning::Channel;
use crate::engine::{GenStats, StopReason};

/// What every chunk and response of one request carries.
#[derive(Clone, Debug)]
pub struct Meta {
    pub id: String,
    pub created: u64,
    pub model: String,
    pub kind: Kind,
    pub include_usage: bool,
    pub show_reasoning: bool,
    pub logprobs: bool,
}

/// Sets the request's cancel flag when dropped: the handler's future or the stream's body is
/// dropped when the client goes away, and the inference thread stops at the next token.
pub struct CancelOnDrop(pub Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

pub fn finish_reason(stop: StopReason) -> &'static str {
    match stop {
        StopReason::Length | StopReason::Context => "length",
        StopReason::Eog | StopReason::StopString | StopReason::Cancelled => "stop",
    }
}

pub fn usage(stats: &GenStats) -> Value {
    json!({
        "prompt_tokens": stats.prompt_tokens,
        "completion_tokens": stats.gen_tokens,
        "total_tokens": stats.prompt_tokens + stats.gen_tokens,
        "prompt_tokens_details": { "cached_tokens": stats.prompt_reused },
        "completion_tokens_details": { "reasoning_tokens": stats.reasoning_tokens },
    })
}

/// `-inf` has no JSON form; OpenAI reports such tokens at -9999.
fn finite(lp: f32) -> f32 {
    lp.max(-9999.0)
}

fn text_of(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Chat logprobs entries (`choices[].logprobs.content`).
fn chat_logprobs(tokens: &[TokenProb]) -> Value {
    let entry = |bytes: &[u8], lp: f32| {
        let mut m = Map::new();
        m.insert("token".into(), text_of(bytes).into());
        m.insert("logprob".into(), finite(lp).into());
        m.insert("bytes".into(), bytes.to_vec().into());
        m
    };
    let content: Vec<Value> = tokens
        .iter()
        .map(|t| {
            let mut m = entry(&t.bytes, t.logprob);
            let top: Vec<Value> = t
                .top
                .iter()
                .map(|(b, lp)| Value::Object(entry(b, *lp)))
                .collect();
            m.insert("top_logprobs".into(), top.into());
            Value::Object(m)
        })
        .collect();
    json!({ "content": content })
}

/// Legacy completion logprobs; `offset` is where the first token's text starts.
fn completion_logprobs(tokens: &[TokenProb], mut offset: usize) -> Value {
    let mut text_offset = Vec::with_capacity(tokens.len());
    for t in tokens {
        text_offset.push(offset);
        offset += text_of(&t.bytes).len();
    }
    let top: Vec<Value> = tokens
        .iter()
        .map(|t| {
            let m: Map<String, Value> = t
                .top
                .iter()
                .map(|(b, lp)| (text_of(b), finite(*lp).into()))
                .collect();
            Value::Object(m)
        })
        .collect();
    json!({
        "tokens": tokens.iter().map(|t| text_of(&t.bytes)).collect::<Vec<_>>(),
        "token_logprobs": tokens.iter().map(|t| finite(t.logprob)).collect::<Vec<_>>(),
        "top_logprobs": top,
        "text_offset": text_offset,
    })
}

/// A whole generation, gathered for a non-streaming response.
#[derive(Default)]
pub struct Collected {
    pub content: String,
    pub reasoning: String,
    pub tokens: Vec<TokenProb>,
}

/// Wait for the generation to end.
pub async fn collect(rx: &mut UnboundedReceiver<Msg>) -> Result<(Collected, GenStats), ApiError> {
    let mut c = Collected::default();
    while let Some(msg) = rx.recv().await {
        match msg {
            Msg::Text(Channel::Answer, t) => c.content.push_str(&t),
            Msg::Text(Channel::Reasoning, t) => c.reasoning.push_str(&t),
            Msg::Token(t) => c.tokens.push(t),
            Msg::Done(stats) => return Ok((c, stats)),
            Msg::Failed(e) => return Err(e),
        }
    }
    Err(ApiError::internal("the generation ended without a result"))
}

/// The non-streaming response object.
pub fn whole(meta: &Meta, c: &Collected, stats: &GenStats) -> Value {
    let logprobs = match (meta.logprobs, meta.kind) {
        (false, _) => Value::Null,
        (true, Kind::Chat) => chat_logprobs(&c.tokens),
        (true, Kind::Completion) => completion_logprobs(&c.tokens, 0),
    };
    let choice = match meta.kind {
        Kind::Chat => {
            let mut message = json!({ "role": "assistant", "content": c.content });
            if meta.show_reasoning && !c.reasoning.is_empty() {
                message["reasoning_content"] = c.reasoning.clone().into();
            }
            json!({
                "index": 0,
                "message": message,
                "logprobs": logprobs,
                "finish_reason": finish_reason(stats.stop),
            })
        }
        Kind::Completion => json!({
            "index": 0,
            "text": c.content,
            "logprobs": logprobs,
            "finish_reason": finish_reason(stats.stop),
        }),
    };
    json!({
        "id": meta.id,
        "object": object(meta.kind, false),
        "created": meta.created,
        "model": meta.model,
        "system_fingerprint": super::FINGERPRINT,
        "choices": [choice],
        "usage": usage(stats),
    })
}

fn object(kind: Kind, chunk: bool) -> &'static str {
    match (kind, chunk) {
        (Kind::Chat, false) => "chat.completion",
        (Kind::Chat, true) => "chat.completion.chunk",
        (Kind::Completion, _) => "text_completion",
    }
}

/// Turns the inference thread's messages into SSE events.
struct Chunker {
    meta: Meta,
    /// Token logprobs not sent yet (they ride on the next text chunk).
    tokens: Vec<TokenProb>,
    /// Bytes of completion text sent so far (for legacy `text_offset`).
    sent: usize,
}

impl Chunker {
    fn event(value: &Value) -> Bytes {
        Bytes::from(format!("data: {value}\n\n"))
    }

    fn chunk(&mut self, delta: Value, finish: Option<&str>) -> Bytes {
        let logprobs = if self.meta.logprobs && !self.tokens.is_empty() {
            let tokens = std::mem::take(&mut self.tokens);
            match self.meta.kind {
                Kind::Chat => chat_logprobs(&tokens),
                Kind::Completion => completion_logprobs(&tokens, self.sent),
            }
        } else {
            Value::Null
        };
        let choice = match self.meta.kind {
            Kind::Chat => json!({
                "index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish,
            }),
            Kind::Completion => {
                let text = delta.get("content").cloned().unwrap_or_else(|| "".into());
                self.sent += text.as_str().map_or(0, str::len);
                json!({ "index": 0, "text": text, "logprobs": logprobs, "finish_reason": finish })
            }
        };
        let mut v = json!({
            "id": self.meta.id,
            "object": object(self.meta.kind, true),
            "created": self.meta.created,
            "model": self.meta.model,
            "system_fingerprint": super::FINGERPRINT,
            "choices": [choice],
        });
        if self.meta.include_usage {
            v["usage"] = Value::Null;
        }
        Chunker::event(&v)
    }

    /// The events for one message; `true` when the stream is over.
    fn handle(&mut self, msg: Msg, out: &mut VecDeque<Bytes>) -> bool {
        match msg {
            Msg::Token(t) => self.tokens.push(t),
            Msg::Text(Channel::Answer, t) => {
                out.push_back(self.chunk(json!({ "content": t }), None))
            }
            Msg::Text(Channel::Reasoning, t) => {
                if self.meta.show_reasoning {
                    out.push_back(self.chunk(json!({ "reasoning_content": t }), None));
                }
            }
            Msg::Done(stats) => {
                out.push_back(self.chunk(json!({}), Some(finish_reason(stats.stop))));
                if self.meta.include_usage {
                    let v = json!({
                        "id": self.meta.id,
                        "object": object(self.meta.kind, true),
                        "created": self.meta.created,
                        "model": self.meta.model,
                        "system_fingerprint": super::FINGERPRINT,
                        "choices": [],
                        "usage": usage(&stats),
                    });
                    out.push_back(Chunker::event(&v));
                }
                out.push_back(Bytes::from_static(b"data: [DONE]\n\n"));
                return true;
            }
            Msg::Failed(e) => {
                out.push_back(Chunker::event(&e.body()));
                out.push_back(Bytes::from_static(b"data: [DONE]\n\n"));
                return true;
            }
        }
        false
    }
}

/// The body of a streaming response. Dropping it (the client went away) cancels the generation.
pub struct SseBody {
    rx: UnboundedReceiver<Msg>,
    chunker: Chunker,
    out: VecDeque<Bytes>,
    done: bool,
    _cancel: CancelOnDrop,
}

impl SseBody {
    pub fn new(meta: Meta, rx: UnboundedReceiver<Msg>, cancel: CancelOnDrop) -> SseBody {
        let mut chunker = Chunker {
            meta,
            tokens: Vec::new(),
            sent: 0,
        };
        let mut out = VecDeque::new();
        // The first chunk goes out at once, before the request leaves the queue.
        if chunker.meta.kind == Kind::Chat {
            out.push_back(chunker.chunk(json!({ "role": "assistant", "content": "" }), None));
        }
        SseBody {
            rx,
            chunker,
            out,
            done: false,
            _cancel: cancel,
        }
    }
}

impl Body for SseBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        loop {
            if let Some(b) = this.out.pop_front() {
                return Poll::Ready(Some(Ok(Frame::data(b))));
            }
            if this.done {
                return Poll::Ready(None);
            }
            match this.rx.poll_recv(cx) {
                Poll::Ready(Some(msg)) => this.done = this.chunker.handle(msg, &mut this.out),
                Poll::Ready(None) => {
                    let e = ApiError::internal("the generation ended without a result");
                    this.done = this.chunker.handle(Msg::Failed(e), &mut this.out);
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.out.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn stats(stop: StopReason) -> GenStats {
        GenStats {
            prompt_tokens: 10,
            prompt_reused: 4,
            prompt_time: Duration::ZERO,
            gen_tokens: 5,
            reasoning_tokens: 3,
            gen_time: Duration::ZERO,
            stop,
            closed: None,
        }
    }

    fn meta(kind: Kind, include_usage: bool) -> Meta {
        Meta {
            id: "chatcmpl-x".into(),
            created: 1,
            model: "m".into(),
            kind,
            include_usage,
            show_reasoning: true,
            logprobs: false,
        }
    }

    /// The events a scripted generation turns into, parsed back.
    fn events(meta: Meta, msgs: Vec<Msg>) -> Vec<Value> {
        let mut c = Chunker {
            meta,
            tokens: Vec::new(),
            sent: 0,
        };
        let mut out = VecDeque::new();
        if c.meta.kind == Kind::Chat {
            out.push_back(c.chunk(json!({ "role": "assistant", "content": "" }), None));
        }
        for m in msgs {
            if c.handle(m, &mut out) {
                break;
            }
        }
        out.iter()
            .map(|b| {
                let s = std::str::from_utf8(b).unwrap();
                let data = s
                    .strip_prefix("data: ")
                    .unwrap()
                    .strip_suffix("\n\n")
                    .unwrap();
                if data == "[DONE]" {
                    Value::String(data.into())
                } else {
                    serde_json::from_str(data).unwrap()
                }
            })
            .collect()
    }

    /// A reasoning model's stream as the engine reports it (thinking, then the answer) becomes
    /// `reasoning_content` deltas, then `content` deltas, then the finish and usage chunks.
    #[test]
    fn a_reasoning_stream_splits_into_reasoning_and_content_deltas() {
        let msgs = vec![
            Msg::Text(Channel::Reasoning, "Two and two".into()),
            Msg::Text(Channel::Reasoning, " make four.".into()),
            Msg::Text(Channel::Answer, "4".into()),
            Msg::Done(stats(StopReason::Eog)),
        ];
        let ev = events(meta(Kind::Chat, true), msgs);
        assert_eq!(ev.len(), 7, "{ev:?}");
        assert_eq!(ev[0]["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(
            ev[1]["choices"][0]["delta"]["reasoning_content"],
            "Two and two"
        );
        assert!(ev[1]["choices"][0]["delta"].get("content").is_none());
        assert_eq!(
            ev[2]["choices"][0]["delta"]["reasoning_content"],
            " make four."
        );
        assert_eq!(ev[3]["choices"][0]["delta"]["content"], "4");
        assert_eq!(ev[4]["choices"][0]["finish_reason"], "stop");
        assert_eq!(ev[4]["usage"], Value::Null);
        assert_eq!(ev[5]["choices"], json!([]));
        assert_eq!(ev[5]["usage"]["completion_tokens"], 5);
        assert_eq!(
            ev[5]["usage"]["completion_tokens_details"]["reasoning_tokens"],
            3
        );
        assert_eq!(ev[6], "[DONE]");
        assert!(ev[..6]
            .iter()
            .all(|e| e["object"] == "chat.completion.chunk"));
    }

    #[test]
    fn hidden_reasoning_and_failures() {
        let mut m = meta(Kind::Chat, false);
        m.show_reasoning = false;
        let ev = events(
            m,
            vec![
                Msg::Text(Channel::Reasoning, "secret".into()),
                Msg::Text(Channel::Answer, "hi".into()),
                Msg::Failed(ApiError::internal("boom")),
            ],
        );
        assert_eq!(ev.len(), 4, "{ev:?}");
        assert_eq!(ev[1]["choices"][0]["delta"]["content"], "hi");
        assert_eq!(ev[2]["error"]["message"], "boom");
        assert_eq!(ev[2]["error"]["type"], "server_error");
        assert_eq!(ev[3], "[DONE]");
    }

    #[test]
    fn completion_chunks_carry_text_and_logprobs() {
        let mut m = meta(Kind::Completion, false);
        m.logprobs = true;
        let tok = |s: &str, lp: f32| {
            Msg::Token(TokenProb {
                bytes: s.as_bytes().to_vec(),
                logprob: lp,
                top: vec![(s.as_bytes().to_vec(), lp)],
            })
        };
        let ev = events(
            m,
            vec![
                tok("a", -0.5),
                Msg::Text(Channel::Answer, "a".into()),
                tok("bc", f32::NEG_INFINITY),
                Msg::Text(Channel::Answer, "bc".into()),
                Msg::Done(stats(StopReason::Length)),
            ],
        );
        assert_eq!(ev.len(), 4, "{ev:?}");
        assert_eq!(ev[0]["choices"][0]["text"], "a");
        assert_eq!(
            ev[0]["choices"][0]["logprobs"]["token_logprobs"],
            json!([-0.5])
        );
        assert_eq!(ev[1]["choices"][0]["logprobs"]["text_offset"], json!([1]));
        assert_eq!(
            ev[1]["choices"][0]["logprobs"]["token_logprobs"],
            json!([-9999.0])
        );
        assert_eq!(ev[2]["choices"][0]["finish_reason"], "length");
        assert_eq!(ev[2]["object"], "text_completion");
    }
}
