//! The plain description of a vocabulary that a [`Tokenizer`](super::Tokenizer) is built from.
//!
//! It holds the `tokenizer.ggml.*` metadata as read, before any of llama.cpp's defaults or
//! fix-ups: keeping it a plain struct lets tests build tiny vocabularies by hand and keeps the
//! tokenizer independent of how the GGUF reader stores values.

/// Token types as GGUF stores them in `tokenizer.ggml.token_type` (llama.cpp's
/// `llama_token_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenType {
    /// 0, or any value GGUF does not define.
    Undefined,
    /// 1: an ordinary piece of text.
    Normal,
    /// 2: the unknown token.
    Unknown,
    /// 3: a control token (`<|im_start|>`, `<eos>`): never produced from raw text, rendered only
    /// when asked for special tokens.
    Control,
    /// 4: a user-defined token (`<think>`): always kept whole, always rendered.
    UserDefined,
    /// 5: an unused slot (padding of the embedding matrix); renders as nothing.
    Unused,
    /// 6: a byte-fallback token (`<0x0A>`).
    Byte,
}

impl TokenType {
    /// The type of a `tokenizer.ggml.token_type` value; llama.cpp reads unknown values as
    /// undefined, and so does hearth.
    pub fn from_gguf(value: i32) -> TokenType {
        match value {
            1 => TokenType::Normal,
            2 => TokenType::Unknown,
            3 => TokenType::Control,
            4 => TokenType::UserDefined,
            5 => TokenType::Unused,
            6 => TokenType::Byte,
            _ => TokenType::Undefined,
        }
    }

    /// The GGUF value of this type.
    pub fn to_gguf(self) -> i32 {
        match self {
            TokenType::Undefined => 0,
            TokenType::Normal => 1,
            TokenType::Unknown => 2,
            TokenType::Control => 3,
            TokenType::UserDefined => 4,
            TokenType::Unused => 5,
            TokenType::Byte => 6,
        }
    }
}

/// Special token ids given by the metadata (`tokenizer.ggml.*_token_id`); `None` where the key
/// is absent. llama.cpp's defaults and text-based detection fill the gaps when the tokenizer is
/// built.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpecialIds {
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub eot: Option<u32>,
    pub eom: Option<u32>,
    pub unk: Option<u32>,
    pub sep: Option<u32>,
    pub pad: Option<u32>,
    pub mask: Option<u32>,
    pub fim_pre: Option<u32>,
    pub fim_suf: Option<u32>,
    pub fim_mid: Option<u32>,
    pub fim_pad: Option<u32>,
    pub fim_rep: Option<u32>,
    pub fim_sep: Option<u32>,
}

impl SpecialIds {
    /// The metadata key of each field, in llama.cpp's reading order.
    pub const KEYS: [(&'static str, SpecialSlot); 14] = [
        ("tokenizer.ggml.bos_token_id", SpecialSlot::Bos),
        ("tokenizer.ggml.eos_token_id", SpecialSlot::Eos),
        ("tokenizer.ggml.eot_token_id", SpecialSlot::Eot),
        ("tokenizer.ggml.eom_token_id", SpecialSlot::Eom),
        ("tokenizer.ggml.unknown_token_id", SpecialSlot::Unk),
        ("tokenizer.ggml.seperator_token_id", SpecialSlot::Sep),
        ("tokenizer.ggml.padding_token_id", SpecialSlot::Pad),
        ("tokenizer.ggml.mask_token_id", SpecialSlot::Mask),
        ("tokenizer.ggml.fim_pre_token_id", SpecialSlot::FimPre),
        ("tokenizer.ggml.fim_suf_token_id", SpecialSlot::FimSuf),
        ("tokenizer.ggml.fim_mid_token_id", SpecialSlot::FimMid),
        ("tokenizer.ggml.fim_pad_token_id", SpecialSlot::FimPad),
        ("tokenizer.ggml.fim_rep_token_id", SpecialSlot::FimRep),
        ("tokenizer.ggml.fim_sep_token_id", SpecialSlot::FimSep),
    ];

    /// Deprecated spellings of the FIM keys; llama.cpp reads them after [`SpecialIds::KEYS`],
    /// so where both are present these win.
    pub const DEPRECATED_KEYS: [(&'static str, SpecialSlot); 3] = [
        ("tokenizer.ggml.prefix_token_id", SpecialSlot::FimPre),
        ("tokenizer.ggml.suffix_token_id", SpecialSlot::FimSuf),
        ("tokenizer.ggml.middle_token_id", SpecialSlot::FimMid),
    ];

    /// The field for `slot`.
    pub fn slot_mut(&mut self, slot: SpecialSlot) -> &mut Option<u32> {
        match slot {
            SpecialSlot::Bos => &mut self.bos,
            SpecialSlot::Eos => &mut self.eos,
            SpecialSlot::Eot => &mut self.eot,
            SpecialSlot::Eom => &mut self.eom,
            SpecialSlot::Unk => &mut self.unk,
            SpecialSlot::Sep => &mut self.sep,
            SpecialSlot::Pad => &mut self.pad,
            SpecialSlot::Mask => &mut self.mask,
            SpecialSlot::FimPre => &mut self.fim_pre,
            SpecialSlot::FimSuf => &mut self.fim_suf,
            SpecialSlot::FimMid => &mut self.fim_mid,
            SpecialSlot::FimPad => &mut self.fim_pad,
            SpecialSlot::FimRep => &mut self.fim_rep,
            SpecialSlot::FimSep => &mut self.fim_sep,
        }
    }

    /// The value for `slot`.
    pub fn slot(&self, slot: SpecialSlot) -> Option<u32> {
        match slot {
            SpecialSlot::Bos => self.bos,
            SpecialSlot::Eos => self.eos,
            SpecialSlot::Eot => self.eot,
            SpecialSlot::Eom => self.eom,
            SpecialSlot::Unk => self.unk,
            SpecialSlot::Sep => self.sep,
            SpecialSlot::Pad => self.pad,
            SpecialSlot::Mask => self.mask,
            SpecialSlot::FimPre => self.fim_pre,
            SpecialSlot::FimSuf => self.fim_suf,
            SpecialSlot::FimMid => self.fim_mid,
            SpecialSlot::FimPad => self.fim_pad,
            SpecialSlot::FimRep => self.fim_rep,
            SpecialSlot::FimSep => self.fim_sep,
        }
    }
}

/// Names the fields of [`SpecialIds`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpecialSlot {
    Bos,
    Eos,
    Eot,
    Eom,
    Unk,
    Sep,
    Pad,
    Mask,
    FimPre,
    FimSuf,
    FimMid,
    FimPad,
    FimRep,
    FimSep,
}

/// A vocabulary as stored in GGUF metadata.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VocabSpec {
    /// `tokenizer.ggml.model`: `gpt2` (byte-level BPE) or `llama` (SentencePiece-style).
    pub model: String,
    /// `tokenizer.ggml.pre`: the pre-tokenizer of a BPE vocabulary (`qwen2`, `llama-bpe`, ...).
    pub pre: Option<String>,
    /// `tokenizer.ggml.tokens`.
    pub tokens: Vec<String>,
    /// `tokenizer.ggml.token_type`, one per token; absent means every token is normal.
    pub token_types: Option<Vec<i32>>,
    /// `tokenizer.ggml.scores`, one per token; absent means 0 for all (SPM merge priorities).
    pub scores: Option<Vec<f32>>,
    /// `tokenizer.ggml.merges` (`"left right"`, highest priority first); BPE only.
    pub merges: Option<Vec<String>>,
    /// `tokenizer.ggml.*_token_id`.
    pub special: SpecialIds,
    /// `tokenizer.ggml.add_bos_token`.
    pub add_bos: Option<bool>,
    /// `tokenizer.ggml.add_eos_token`.
    pub add_eos: Option<bool>,
    /// `tokenizer.ggml.add_space_prefix` (SPM only).
    pub add_space_prefix: Option<bool>,
    /// `general.name`: llama.cpp sets per-token attributes for some model families by name
    /// (Phi-3 strips spaces after its special tokens).
    pub model_name: Option<String>,
}

impl VocabSpec {
    /// A spec with the given model and tokens and nothing else, for building tiny vocabularies.
    pub fn new(model: &str, tokens: Vec<String>) -> VocabSpec {
        VocabSpec {
            model: model.to_string(),
            tokens,
            ..VocabSpec::default()
        }
    }
}
