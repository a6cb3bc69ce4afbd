//! A vocabulary with llama.cpp's defaults and fix-ups applied (`llama_vocab::impl::load`).
//!
//! GGUF metadata does not say everything llama.cpp acts on: the type of tokenizer implies
//! default BOS/EOS ids and whether to add BOS, the pre-tokenizer name implies flags, and the
//! end-of-generation set and several token attributes are derived from token *texts*. Token ids
//! only match llama.cpp's if all of that is reproduced, so this module does it in llama.cpp's
//! order.

use std::collections::BTreeSet;

use ahash::AHashMap;

use super::pretokenize::PreKind;
use super::spec::{SpecialIds, SpecialSlot, TokenType, VocabSpec};
use super::TokenizerError;

/// Token attributes, with llama.cpp's bit values (`llama_token_attr`).
pub(crate) mod attr {
    pub const UNKNOWN: u16 = 1 << 0;
    pub const UNUSED: u16 = 1 << 1;
    pub const NORMAL: u16 = 1 << 2;
    pub const CONTROL: u16 = 1 << 3;
    pub const USER_DEFINED: u16 = 1 << 4;
    pub const BYTE: u16 = 1 << 5;
    pub const LSTRIP: u16 = 1 << 7;
    pub const RSTRIP: u16 = 1 << 8;
}

/// Which tokenization algorithm a vocabulary uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum VocabType {
    /// `tokenizer.ggml.model = llama`: SentencePiece-style, merges by score, byte fallback.
    Spm,
    /// `tokenizer.ggml.model = gpt2`: byte-level BPE with ranked merges.
    Bpe,
}

/// Everything a tokenizer needs to know about its vocabulary.
#[derive(Debug)]
pub(crate) struct Vocab {
    pub(crate) vtype: VocabType,
    pub(crate) model: String,
    pub(crate) pre: Option<String>,
    /// The pre-tokenizer (BPE only).
    pub(crate) pre_kind: PreKind,
    /// Whole words found in the vocabulary skip the merges (Llama 3 and a few others).
    pub(crate) ignore_merges: bool,
    pub(crate) texts: Vec<String>,
    pub(crate) attrs: Vec<u16>,
    pub(crate) scores: Vec<f32>,
    /// Text to id; with duplicate texts the last id wins, as in llama.cpp's `token_to_id`.
    pub(crate) token_to_id: AHashMap<String, u32>,
    pub(crate) special: SpecialIds,
    pub(crate) add_bos: bool,
    pub(crate) add_eos: bool,
    pub(crate) add_space_prefix: bool,
    /// Tokens that end generation, ascending.
    pub(crate) eog: Vec<u32>,
    /// Control, user-defined and unknown tokens, longest text first: the order in which they
    /// are searched for in the text (`cache_special_tokens`).
    pub(crate) special_cache: Vec<u32>,
}

/// Candidate texts for special roles the metadata may leave out, in the order hearth prefers
/// them (`load`'s "auto-detect special tokens by text").
const DETECTED_BY_TEXT: [(SpecialSlot, &[&str]); 8] = [
    (
        SpecialSlot::Eot,
        &[
            "<|eot_id|>",
            "<|im_end|>",
            "<|end|>",
            "<end_of_turn>",
            "<|endoftext|>",
            "<|end_of_text|>",
            "<EOT>",
            "_<EOT>",
            "[EOT]",
            "<｜end▁of▁sentence｜>",
            "<end_of_utterance>",
        ],
    ),
    (SpecialSlot::Eom, &["<|eom_id|>"]),
    (
        SpecialSlot::FimPre,
        &[
            "<|fim_prefix|>",
            "<fim-prefix>",
            "<fim_prefix>",
            "<｜fim▁begin｜>",
            "<PRE>",
            "▁<PRE>",
            "<|code_prefix|>",
            "<|prefix|>",
        ],
    ),
    (
        SpecialSlot::FimSuf,
        &[
            "<|fim_suffix|>",
            "<fim-suffix>",
            "<fim_suffix>",
            "<｜fim▁hole｜>",
            "<SUF>",
            "▁<SUF>",
            "<|code_suffix|>",
            "<|suffix|>",
        ],
    ),
    (
        SpecialSlot::FimMid,
        &[
            "<|fim_middle|>",
            "<fim-middle>",
            "<fim_middle>",
            "<｜fim▁end｜>",
            "<MID>",
            "▁<MID>",
            "<|code_middle|>",
            "<|middle|>",
        ],
    ),
    (
        SpecialSlot::FimPad,
        &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"],
    ),
    (
        SpecialSlot::FimRep,
        &[
            "<|fim_repo|>",
            "<|repo_name|>",
            "<fim-repo>",
            "<REPO>",
            "<reponame>",
        ],
    ),
    (SpecialSlot::FimSep, &["<|file_sep|>"]),
];

/// Texts of tokens that end generation (`load`'s EOG list).
const EOG_TEXTS: [&str; 22] = [
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
    "[e~[",
];

/// Settings implied by a BPE pre-tokenizer name (the big `if` chain of `load`).
struct PreSettings {
    kind: PreKind,
    ignore_merges: bool,
    add_bos: bool,
    no_bos: bool,
}

/// The pre-tokenizer names hearth implements, grouped by the regexes llama.cpp uses for them.
fn pre_settings(name: Option<&str>) -> Result<PreSettings, TokenizerError> {
    let plain = |kind| PreSettings {
        kind,
        ignore_merges: false,
        add_bos: false,
        no_bos: false,
    };
    let Some(name) = name else {
        // llama.cpp warns ("GENERATION QUALITY WILL BE DEGRADED") and uses the default.
        return Ok(plain(PreKind::Default));
    };
    let settings = match name {
        "default" => plain(PreKind::Default),
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0"
        | "lfm2" | "jina-v5-nano" => PreSettings {
            ignore_merges: true,
            add_bos: true,
            ..plain(PreKind::Llama3)
        },
        "dbrx" | "smaug-bpe" => plain(PreKind::Llama3),
        "chatglm-bpe" => PreSettings {
            no_bos: true,
            ..plain(PreKind::Llama3)
        },
        "glm4" | "glm5" => PreSettings {
            no_bos: true,
            ignore_merges: true,
            ..plain(PreKind::Llama3)
        },
        "qwen2" | "deepseek-r1-qwen" | "kormo" | "f2llmv2" | "megrez" | "stablelm2" | "hunyuan"
        | "solar-open" | "grok-2" => plain(PreKind::Qwen2),
        "starcoder" | "refact" | "command-r" | "smollm" | "codeshell" | "exaone" | "minerva-7b"
        | "mellum2" => plain(PreKind::StarCoder),
        "gpt-2" | "phi-2" | "jina-es" | "jina-de" | "gigachat" | "jina-v2-es" | "jina-v2-de"
        | "a.x-4.0" | "mellum" | "modern-bert" | "jina-v1-en" | "jina-v2-code" | "roberta-bpe"
        | "mpt" | "olmo" | "jais" | "trillion" | "exaone4" | "granite-docling" => {
            plain(PreKind::Gpt2)
        }
        other => return Err(TokenizerError::UnknownPre(other.to_string())),
    };
    Ok(settings)
}

impl Vocab {
    pub(crate) fn build(spec: VocabSpec) -> Result<Vocab, TokenizerError> {
        let (vtype, defaults, pre_kind, ignore_merges, mut add_bos, mut add_space_prefix) =
            match spec.model.as_str() {
                "llama" => {
                    let ids = SpecialIds {
                        bos: Some(1),
                        eos: Some(2),
                        unk: Some(0),
                        ..SpecialIds::default()
                    };
                    (VocabType::Spm, ids, PreKind::Default, false, true, true)
                }
                "gpt2" => {
                    let pre = pre_settings(spec.pre.as_deref())?;
                    let ids = SpecialIds {
                        bos: (!pre.no_bos).then_some(11),
                        eos: Some(11),
                        ..SpecialIds::default()
                    };
                    (
                        VocabType::Bpe,
                        ids,
                        pre.kind,
                        pre.ignore_merges,
                        pre.add_bos,
                        false,
                    )
                }
                other => return Err(TokenizerError::UnknownModel(other.to_string())),
            };
        if let Some(v) = spec.add_space_prefix {
            add_space_prefix = v;
        }
        let mut vocab = Vocab {
            vtype,
            model: spec.model.clone(),
            pre: spec.pre.clone(),
            pre_kind,
            ignore_merges,
            texts: Vec::new(),
            attrs: Vec::new(),
            scores: Vec::new(),
            token_to_id: AHashMap::new(),
            special: SpecialIds::default(),
            add_bos,
            add_eos: false,
            add_space_prefix,
            eog: Vec::new(),
            special_cache: Vec::new(),
        };
        vocab.load_tokens(spec.tokens, spec.token_types, spec.scores)?;
        vocab.resolve_special_ids(defaults, &spec.special)?;
        if let Some(v) = spec.add_bos {
            add_bos = v;
        }
        vocab.add_bos = add_bos;
        vocab.add_eos = spec.add_eos.unwrap_or(false);
        vocab.detect_special_by_text();
        vocab.mark_unused();
        vocab.build_eog();
        vocab.build_special_cache();
        vocab.apply_model_name_attrs(spec.model_name.as_deref());
        Ok(vocab)
    }

    /// Texts, attributes, scores and the text-to-id map, with the arrays' lengths checked.
    fn load_tokens(
        &mut self,
        tokens: Vec<String>,
        types: Option<Vec<i32>>,
        scores: Option<Vec<f32>>,
    ) -> Result<(), TokenizerError> {
        let n = tokens.len();
        if n == 0 {
            return Err(invalid("tokenizer.ggml.tokens", "the vocabulary is empty"));
        }
        if u32::try_from(n).is_err() {
            return Err(invalid(
                "tokenizer.ggml.tokens",
                format!("{n} tokens is too many"),
            ));
        }
        if let Some(types) = &types {
            if types.len() != n {
                return Err(length_mismatch("tokenizer.ggml.token_type", types.len(), n));
            }
        }
        if let Some(scores) = &scores {
            if scores.len() != n {
                return Err(length_mismatch("tokenizer.ggml.scores", scores.len(), n));
            }
        }
        self.texts = tokens;
        self.token_to_id = AHashMap::with_capacity(n);
        for (i, text) in self.texts.iter_mut().enumerate() {
            // llama.cpp renames empty tokens so that every text is unique and non-empty.
            if text.is_empty() {
                *text = format!("[EMPTY_{i}]");
            }
            self.token_to_id.insert(text.clone(), i as u32);
        }
        self.attrs = match types {
            Some(types) => types
                .into_iter()
                .map(|t| type_to_attr(TokenType::from_gguf(t)))
                .collect(),
            None => vec![attr::NORMAL; n],
        };
        self.scores = scores.unwrap_or_else(|| vec![0.0; n]);
        Ok(())
    }

    /// Defaults that fall outside the vocabulary are dropped (llama.cpp does the same); ids
    /// given by the metadata must be in range.
    fn resolve_special_ids(
        &mut self,
        defaults: SpecialIds,
        given: &SpecialIds,
    ) -> Result<(), TokenizerError> {
        let n = self.texts.len();
        self.special = defaults;
        for (_, slot) in SpecialIds::KEYS {
            let current = self.special.slot_mut(slot);
            if current.is_some_and(|id| id as usize >= n) {
                *current = None;
            }
        }
        for (key, slot) in SpecialIds::KEYS {
            if let Some(id) = given.slot(slot) {
                if id as usize >= n {
                    return Err(invalid(
                        key,
                        format!("token id {id} is out of range (the vocabulary has {n} tokens)"),
                    ));
                }
                *self.special.slot_mut(slot) = Some(id);
            }
        }
        Ok(())
    }

    /// Finds EOT, EOM and FIM tokens by their text where the metadata did not name them, and
    /// makes them control tokens. llama.cpp takes the first match in hash-map order when a
    /// vocabulary has several candidates for one role; hearth takes the first in the list
    /// below, which is deterministic.
    fn detect_special_by_text(&mut self) {
        for (slot, texts) in DETECTED_BY_TEXT {
            if self.special.slot(slot).is_some() {
                continue;
            }
            if let Some(id) = texts.iter().find_map(|t| self.token_to_id.get(*t).copied()) {
                *self.special.slot_mut(slot) = Some(id);
                self.attrs[id as usize] |= attr::CONTROL;
            }
        }
    }

    /// Control tokens whose text says "unused" are unused (Gemma's `<unused0>`, ...).
    fn mark_unused(&mut self) {
        for (text, a) in self.texts.iter().zip(self.attrs.iter_mut()) {
            if *a & attr::CONTROL != 0 && text.contains("unused") {
                *a |= attr::UNUSED;
            }
        }
    }

    /// The end-of-generation set, as llama.cpp derives it from ids and token texts.
    fn build_eog(&mut self) {
        let mut eog = BTreeSet::new();
        let s = &self.special;
        eog.extend([s.fim_pad, s.fim_rep, s.fim_sep].into_iter().flatten());
        for text in EOG_TEXTS {
            if let Some(&id) = self.token_to_id.get(text) {
                eog.insert(id);
                self.attrs[id as usize] |= attr::CONTROL;
            }
        }
        // gpt-oss renders these always (llama.cpp: "quick hack for gpt-oss").
        for text in ["<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"] {
            if let Some(&id) = self.token_to_id.get(text) {
                self.attrs[id as usize] = attr::USER_DEFINED;
            }
        }
        let s = &self.special;
        eog.extend([s.eos, s.eot, s.eom].into_iter().flatten());
        let id_of = |t: &str| {
            self.token_to_id
                .get(t)
                .copied()
                .filter(|id| eog.contains(id))
        };
        // o200k_harmony and solar-open: `<|end|>` ends a message, not the generation.
        if let Some(end) = id_of("<|end|>") {
            let call = id_of("<|call|>").or(id_of("<|calls|>")).is_some();
            if call && (id_of("<|return|>").is_some() || id_of("<|flush|>").is_some()) {
                eog.remove(&end);
                self.attrs[end as usize] = attr::USER_DEFINED;
            }
        }
        // Gemma 4 and PLaMo have an ordinary `</s>`.
        let id_of = |t: &str| {
            self.token_to_id
                .get(t)
                .copied()
                .filter(|id| eog.contains(id))
        };
        if let Some(s) = id_of("</s>") {
            if id_of("<|tool_response>").is_some() || id_of("<|plamo:eos|>").is_some() {
                eog.remove(&s);
                self.attrs[s as usize] = attr::NORMAL;
            }
        }
        self.eog = eog.into_iter().collect();
    }

    fn build_special_cache(&mut self) {
        let wanted = attr::CONTROL | attr::USER_DEFINED | attr::UNKNOWN;
        let mut ids: Vec<u32> = (0..self.texts.len() as u32)
            .filter(|&id| self.attrs[id as usize] & wanted != 0)
            .collect();
        // llama.cpp's sort is not stable; ties (same length) keep id order here.
        ids.sort_by_key(|&id| std::cmp::Reverse(self.texts[id as usize].len()));
        self.special_cache = ids;
    }

    /// Per-model attributes llama.cpp sets by `general.name`: Phi-3's special tokens swallow
    /// the whitespace after them.
    fn apply_model_name_attrs(&mut self, model_name: Option<&str>) {
        let name = model_name.unwrap_or("").to_lowercase();
        if !(name.contains("phi-3") || name.contains("phi3")) {
            return;
        }
        for &id in &self.special_cache {
            self.attrs[id as usize] |= attr::RSTRIP;
        }
        if let Some(&id) = self.token_to_id.get("</s>") {
            self.attrs[id as usize] |= attr::RSTRIP;
        }
        for text in ["<unk>", "<s>", "<|endoftext|>"] {
            if let Some(&id) = self.token_to_id.get(text) {
                self.attrs[id as usize] &= !attr::RSTRIP;
            }
        }
    }

    pub(crate) fn n_tokens(&self) -> usize {
        self.texts.len()
    }

    pub(crate) fn attr(&self, id: u32) -> u16 {
        self.attrs.get(id as usize).copied().unwrap_or(0)
    }

    pub(crate) fn text_to_token(&self, text: &str) -> Option<u32> {
        self.token_to_id.get(text).copied()
    }

    /// The effective type of a token, after llama.cpp's fix-ups.
    pub(crate) fn token_type(&self, id: u32) -> Option<TokenType> {
        let a = *self.attrs.get(id as usize)?;
        let t = if a & attr::CONTROL != 0 {
            TokenType::Control
        } else if a & attr::USER_DEFINED != 0 {
            TokenType::UserDefined
        } else if a & attr::UNKNOWN != 0 {
            TokenType::Unknown
        } else if a & attr::BYTE != 0 {
            TokenType::Byte
        } else if a & attr::UNUSED != 0 {
            TokenType::Unused
        } else if a & attr::NORMAL != 0 {
            TokenType::Normal
        } else {
            TokenType::Undefined
        };
        Some(t)
    }
}

fn type_to_attr(t: TokenType) -> u16 {
    match t {
        TokenType::Undefined => 0,
        TokenType::Normal => attr::NORMAL,
        TokenType::Unknown => attr::UNKNOWN,
        TokenType::Control => attr::CONTROL,
        TokenType::UserDefined => attr::USER_DEFINED,
        TokenType::Unused => attr::UNUSED,
        TokenType::Byte => attr::BYTE,
    }
}

fn invalid(key: &'static str, detail: impl Into<String>) -> TokenizerError {
    TokenizerError::Invalid {
        key,
        detail: detail.into(),
    }
}

fn length_mismatch(key: &'static str, got: usize, tokens: usize) -> TokenizerError {
    invalid(
        key,
        format!("has {got} entries but tokenizer.ggml.tokens has {tokens}"),
    )
}
