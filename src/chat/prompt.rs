//! Turning a conversation into prompt tokens that cannot be injected: the template's own
//! scaffolding becomes control tokens, message content is always text.

use anyhow::Context;
use hearth_models::gguf::GgufFile;
use hearth_models::tokenizer::Tokenizer;

use super::defaults::ModelDefaults;
use super::reasoning::{Start, CLOSE, OPEN};
use super::template::{ChatTemplate, Message};
use crate::engine::Engine;

/// What to do with a reasoning model's thinking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThinkMode {
    /// Print it (dimmed on a terminal).
    Show,
    /// Let the model think, print a one-line indicator instead.
    Hide,
    /// No thinking: the prompt closes an empty reasoning block, as the distills accept.
    Off,
}

impl ThinkMode {
    pub fn parse(s: &str) -> Option<ThinkMode> {
        match s {
            "show" => Some(ThinkMode::Show),
            "hide" => Some(ThinkMode::Hide),
            "off" => Some(ThinkMode::Off),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ThinkMode::Show => "show",
            ThinkMode::Hide => "hide",
            ThinkMode::Off => "off",
        }
    }
}

/// A model's chat conventions: its template and family defaults.
pub struct ChatFormat {
    pub template: ChatTemplate,
    pub defaults: ModelDefaults,
}

/// A rendered, tokenized prompt.
#[derive(Clone, Debug)]
pub struct Prompt {
    pub tokens: Vec<u32>,
    /// Where the model's output starts: inside a reasoning span or not.
    pub start: Start,
    /// A system message was folded into the first user turn (the model works best without one).
    pub folded_system: bool,
}

/// The answer part of an assistant message: what follows the last `</think>`, if any.
pub fn strip_reasoning(content: &str) -> &str {
    match content.rfind(CLOSE) {
        Some(at) => content[at + CLOSE.len()..].trim_start(),
        None => content,
    }
}

impl ChatFormat {
    /// A model's format: its chat template (or `template_override`, a built-in name or a file)
    /// and its family's defaults.
    pub fn for_model(
        file: &GgufFile,
        tokenizer: &Tokenizer,
        template_override: Option<&str>,
    ) -> anyhow::Result<ChatFormat> {
        Ok(ChatFormat {
            template: ChatTemplate::for_model(file, tokenizer, template_override)?,
            defaults: ModelDefaults::detect(file, tokenizer),
        })
    }

    /// The format of the model an engine runs.
    pub fn for_engine(
        engine: &Engine,
        template_override: Option<&str>,
    ) -> anyhow::Result<ChatFormat> {
        Ok(ChatFormat {
            template: ChatTemplate::for_model(
                engine.model.file(),
                &engine.tokenizer,
                template_override,
            )?,
            defaults: engine.defaults.clone(),
        })
    }

    /// The prompt that asks the model for the next assistant turn after `messages`
    /// (or, when the last message is the assistant's, continues nothing: it renders them as is).
    pub fn prompt(
        &self,
        tokenizer: &Tokenizer,
        messages: &[Message],
        think: ThinkMode,
    ) -> anyhow::Result<Prompt> {
        let mut folded_system = false;
        let mut prepared: Vec<Message> = Vec::with_capacity(messages.len());
        let mut pending_system: Option<String> = None;
        for m in messages {
            let content = if m.role == "assistant" {
                strip_reasoning(&m.content)
            } else {
                m.content.as_str()
            };
            let content = tokenizer.defuse(content);
            if m.role == "system" && !self.defaults.system_prompt {
                folded_system = true;
                pending_system = Some(match pending_system {
                    Some(s) => format!("{s}\n\n{content}"),
                    None => content,
                });
                continue;
            }
            if m.role == "user" {
                if let Some(system) = pending_system.take() {
                    prepared.push(Message::new("user", &format!("{system}\n\n{content}")));
                    continue;
                }
            }
            prepared.push(Message::new(&m.role, &content));
        }
        if let Some(system) = pending_system {
            prepared.push(Message::new("user", &system));
        }
        let add_generation_prompt = prepared.last().is_some_and(|m| m.role != "assistant");
        let mut text = self
            .template
            .render(&prepared, add_generation_prompt)
            .with_context(|| format!("rendering the chat template ({})", self.template.name()))?;
        let mut start = Start::InAnswer;
        if add_generation_prompt && self.defaults.reasoning {
            let opened = text.trim_end_matches(['\n', ' ']).ends_with(OPEN);
            start = match think {
                ThinkMode::Off => {
                    if !opened {
                        text.push_str(OPEN);
                    }
                    text.push_str("\n\n");
                    text.push_str(CLOSE);
                    text.push_str("\n\n");
                    Start::InAnswer
                }
                _ if opened => Start::InReasoning,
                _ if self.defaults.open_thinking => {
                    text.push_str(OPEN);
                    text.push('\n');
                    Start::InReasoning
                }
                _ => Start::Detect,
            };
        }
        let tokens = tokenizer
            .encode_templated(&text)
            .context("tokenizing the chat prompt")?;
        Ok(Prompt {
            tokens,
            start,
            folded_system,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasoning_is_stripped_from_history() {
        assert_eq!(
            strip_reasoning("<think>\nx\n</think>\n\nThe answer."),
            "The answer."
        );
        assert_eq!(strip_reasoning("plain"), "plain");
        assert_eq!(strip_reasoning("a</think>b</think> c"), "c");
    }
}
