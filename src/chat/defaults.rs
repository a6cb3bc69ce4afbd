//! What a model family wants by default: the DeepSeek-R1 distills' recommended settings, and
//! whether the model reasons inside `<think>…</think>`.

use hearth_models::gguf::GgufFile;
use hearth_models::tokenizer::Tokenizer;

use super::reasoning::{CLOSE, OPEN};

/// Context length when none is asked for, for most models (capped at the trained length).
pub const DEFAULT_CTX: usize = 4096;
/// Context length for reasoning models, whose thinking alone often takes thousands of tokens,
/// when memory allows.
pub const REASONING_CTX: usize = 8192;

/// The defaults hearth applies to a model; every one can be overridden on the command line.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelDefaults {
    /// A DeepSeek-R1 distill (from the metadata name or its chat template).
    pub r1: bool,
    /// The vocabulary has `<think>` and `</think>`: output is parsed for reasoning.
    pub reasoning: bool,
    /// Sampling temperature (`None`: llama.cpp's default).
    pub temperature: Option<f32>,
    /// Top-p (`None`: llama.cpp's default).
    pub top_p: Option<f32>,
    /// Whether a system prompt is passed as one; R1 works best without (it is folded into the
    /// first user turn).
    pub system_prompt: bool,
    /// The answer starts with `<think>\n`, written after the generation prompt, so the model
    /// always reasons (DeepSeek's advice for the distills).
    pub open_thinking: bool,
    /// Context length when none is asked for (before capping at the trained length).
    pub n_ctx: usize,
}

impl ModelDefaults {
    /// What suits a model with no special needs.
    pub fn generic() -> ModelDefaults {
        ModelDefaults {
            r1: false,
            reasoning: false,
            temperature: None,
            top_p: None,
            system_prompt: true,
            open_thinking: false,
            n_ctx: DEFAULT_CTX,
        }
    }

    /// Recognise the model from its metadata, vocabulary and chat template.
    pub fn detect(file: &GgufFile, tokenizer: &Tokenizer) -> ModelDefaults {
        let meta = file.metadata();
        let text = |key: &str| meta.get(key).and_then(|v| v.as_str()).unwrap_or("");
        let template = text("tokenizer.chat_template");
        let reasoning = tokenizer.id_of(OPEN).is_some() && tokenizer.id_of(CLOSE).is_some();
        let named_r1 = ["general.name", "general.basename", "general.finetune"]
            .iter()
            .any(|k| is_r1_name(text(k)));
        // The distills' template: DeepSeek's role markers and the removal of old thinking.
        let r1_template = template.contains("<｜Assistant｜>") && template.contains(CLOSE);
        if reasoning && (named_r1 || r1_template) {
            ModelDefaults {
                r1: true,
                reasoning: true,
                temperature: Some(0.6),
                top_p: Some(0.95),
                system_prompt: false,
                open_thinking: true,
                n_ctx: REASONING_CTX,
            }
        } else if reasoning {
            ModelDefaults {
                reasoning: true,
                n_ctx: REASONING_CTX,
                ..ModelDefaults::generic()
            }
        } else {
            ModelDefaults::generic()
        }
    }

    /// Lines for `hearth info` / `hearth show`: (what, value).
    pub fn describe(&self) -> Vec<(&'static str, String)> {
        let or_default = |v: Option<f32>, d: &str| v.map_or(d.to_string(), |v| v.to_string());
        vec![
            (
                "family",
                if self.r1 {
                    "DeepSeek-R1 distill".to_string()
                } else if self.reasoning {
                    "reasoning (<think>)".to_string()
                } else {
                    "generic".to_string()
                },
            ),
            ("temperature", or_default(self.temperature, "0.8")),
            ("top-p", or_default(self.top_p, "0.95")),
            (
                "system prompt",
                if self.system_prompt {
                    "as given".to_string()
                } else {
                    "folded into the first user turn".to_string()
                },
            ),
            (
                "thinking",
                if self.open_thinking {
                    "answer starts with <think>".to_string()
                } else if self.reasoning {
                    "parsed when the model opens it".to_string()
                } else {
                    "none".to_string()
                },
            ),
            ("context", format!("{} (if memory allows)", self.n_ctx)),
        ]
    }
}

/// "DeepSeek R1 Distill Qwen 7B", "DeepSeek-R1-Distill-Llama-8B", "deepseek-r1": R1 by name.
fn is_r1_name(name: &str) -> bool {
    let squashed: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    squashed.contains("deepseekr1") || squashed.contains("r1distill")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r1_names() {
        assert!(is_r1_name("DeepSeek R1 Distill Qwen 7B"));
        assert!(is_r1_name("DeepSeek-R1-Distill-Llama-8B"));
        assert!(is_r1_name("deepseek_r1"));
        assert!(!is_r1_name("Qwen2.5 Coder 0.5B Instruct"));
        assert!(!is_r1_name("DeepSeek V3"));
        assert!(!is_r1_name(""));
    }
}
