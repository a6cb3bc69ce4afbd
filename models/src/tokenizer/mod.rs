//! Text to token ids and back, exactly as llama.cpp does it.
//!
//! A [`Tokenizer`] is built from a GGUF file's `tokenizer.ggml.*` metadata
//! ([`Tokenizer::from_gguf`]) or from a plain [`VocabSpec`]. Two vocabulary types are supported:
//! byte-level BPE (`gpt2`: Qwen2, Llama 3, SmolLM, the DeepSeek-R1 distills) and
//! SentencePiece-style (`llama`: Gemma, Llama 2). Token ids are llama.cpp's, including its
//! defaults and quirks, because the models were run and evaluated with them:
//!
//! - special tokens are split out first (`special.rs`), longest first; control tokens only when
//!   the text is a prompt (`parse_special`), user-defined tokens always;
//! - BPE text is pre-tokenized by llama.cpp's splitters (`pretokenize.rs`) and merged by the
//!   `tokenizers` crate (`bpe.rs`); SPM text is merged by score (`spm.rs`);
//! - decoding works on bytes, and the [`StreamDecoder`] only ever emits whole characters.

mod bpe;
mod gguf;
mod pretokenize;
mod spec;
mod special;
mod spm;
mod stream;
mod unicode;
mod unicode_data;
mod vocab;

pub use spec::{SpecialIds, SpecialSlot, TokenType, VocabSpec};
pub use stream::StreamDecoder;

use bpe::BpeTokenizer;
use special::{Fragment, SpecialMatcher};
use vocab::{attr, Vocab, VocabType};

/// What can go wrong building a tokenizer or tokenizing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenizerError {
    /// `tokenizer.ggml.model` names a tokenizer hearth does not implement.
    #[error(
        "unknown tokenizer model `{0}` (tokenizer.ggml.model): hearth supports `gpt2` (byte-level BPE) and `llama` (SentencePiece-style)"
    )]
    UnknownModel(String),
    /// `tokenizer.ggml.pre` names a pre-tokenizer hearth does not implement.
    #[error("unknown or unsupported pre-tokenizer `{0}` (tokenizer.ggml.pre)")]
    UnknownPre(String),
    /// A metadata value is missing, malformed or inconsistent with the others.
    #[error("{key}: {detail}")]
    Invalid { key: &'static str, detail: String },
    /// The GGUF reader could not give a value of the expected type.
    #[error(transparent)]
    Metadata(#[from] crate::gguf::MetadataError),
    /// The vocabulary asks for a BOS (or EOS) token it does not have.
    #[error("the vocabulary asks to add a {0} token but has none")]
    MissingSpecial(&'static str),
    /// A character of the input has no token and no byte-fallback token (SPM).
    #[error("the vocabulary has no token for byte 0x{0:02X} (no <0x{0:02X}> byte-fallback token)")]
    MissingByteToken(u8),
    /// The BPE model failed on a word.
    #[error("BPE tokenization failed: {0}")]
    Bpe(String),
}

/// The algorithm behind a vocabulary.
#[derive(Debug)]
enum Engine {
    Bpe(Box<BpeTokenizer>),
    Spm,
}

/// A vocabulary and the means to tokenize with it. Cheap to share (`&Tokenizer` is `Sync`).
#[derive(Debug)]
pub struct Tokenizer {
    vocab: Vocab,
    engine: Engine,
    specials: SpecialMatcher,
}

impl Tokenizer {
    /// Builds a tokenizer from a vocabulary description, applying llama.cpp's defaults.
    pub fn from_spec(mut spec: VocabSpec) -> Result<Tokenizer, TokenizerError> {
        let merges = spec.merges.take();
        let vocab = Vocab::build(spec)?;
        let engine = match vocab.vtype {
            VocabType::Spm => Engine::Spm,
            VocabType::Bpe => {
                let merges = merges.ok_or(TokenizerError::Invalid {
                    key: "tokenizer.ggml.merges",
                    detail: "missing: a gpt2 vocabulary needs its merges".to_string(),
                })?;
                Engine::Bpe(Box::new(BpeTokenizer::new(&vocab, &merges)?))
            }
        };
        let specials = SpecialMatcher::new(&vocab)?;
        Ok(Tokenizer {
            vocab,
            engine,
            specials,
        })
    }

    /// Tokenizes `text`.
    ///
    /// - `add_special`: add BOS/EOS as the vocabulary asks (`tokenizer.ggml.add_bos_token`).
    /// - `parse_special`: the text is a prompt, and control-token text (`<|im_start|>`) becomes
    ///   the control token. Leave it false for anything a user typed: then such text is
    ///   tokenized as ordinary text and cannot inject control tokens.
    pub fn encode(
        &self,
        text: &str,
        add_special: bool,
        parse_special: bool,
    ) -> Result<Vec<u32>, TokenizerError> {
        let fragments = self.specials.partition(&self.vocab, text, parse_special);
        self.encode_fragments(text, &fragments, add_special, false)
    }

    /// Makes `content` (a chat message a user or client wrote) safe to place inside a rendered
    /// chat template: every occurrence of a control token's text gets an invisible marker after
    /// its first character, so that [`Tokenizer::encode_templated`] finds only the template's
    /// own control tokens and tokenizes the content as the text it is. Template string methods
    /// (`strip`, `split`, ...) see the same text as before, apart from the markers.
    pub fn defuse(&self, content: &str) -> String {
        self.specials.defuse(&self.vocab, content)
    }

    /// Tokenizes a rendered chat template whose message contents went through
    /// [`Tokenizer::defuse`]: the template's control-token text becomes control tokens, the
    /// markers are removed and the text around them is tokenized as raw text. BOS is added as
    /// the vocabulary asks, unless the template already wrote it.
    pub fn encode_templated(&self, rendered: &str) -> Result<Vec<u32>, TokenizerError> {
        let fragments = self.specials.partition(&self.vocab, rendered, true);
        let starts_with_bos = matches!(
            (fragments.first(), self.vocab.special.bos),
            (Some(Fragment::Token(id)), Some(bos)) if *id == bos
        );
        self.encode_fragments(rendered, &fragments, !starts_with_bos, true)
    }

    /// Tokenizes the text fragments of `text` between the special tokens already found; with
    /// `defused`, the markers of [`Tokenizer::defuse`] are removed from each text first.
    fn encode_fragments<'a>(
        &self,
        text: &'a str,
        fragments: &[Fragment],
        add_special: bool,
        defused: bool,
    ) -> Result<Vec<u32>, TokenizerError> {
        let v = &self.vocab;
        let piece = |r: &std::ops::Range<usize>| -> std::borrow::Cow<'a, str> {
            if defused {
                special::undefuse(&text[r.clone()])
            } else {
                std::borrow::Cow::Borrowed(&text[r.clone()])
            }
        };
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        if add_special && v.add_bos {
            out.push(v.special.bos.ok_or(TokenizerError::MissingSpecial("BOS"))?);
        }
        match &self.engine {
            Engine::Bpe(bpe) => {
                for fragment in fragments {
                    match fragment {
                        Fragment::Text(r) => bpe.tokenize(v, &piece(r), &mut out)?,
                        Fragment::Token(id) => out.push(*id),
                    }
                }
            }
            Engine::Spm => self.encode_spm(fragments, &piece, &mut out)?,
        }
        if add_special && v.add_eos {
            out.push(v.special.eos.ok_or(TokenizerError::MissingSpecial("EOS"))?);
        }
        Ok(out)
    }

    /// The SPM branch of llama.cpp's `llama_vocab::impl::tokenize`: with `add_space_prefix`, a
    /// space goes before the first text and before every text that follows a special token.
    fn encode_spm<'t>(
        &self,
        fragments: &[Fragment],
        piece_of: &dyn Fn(&std::ops::Range<usize>) -> std::borrow::Cow<'t, str>,
        out: &mut Vec<u32>,
    ) -> Result<(), TokenizerError> {
        let mut prev_special = true;
        for fragment in fragments {
            match fragment {
                Fragment::Text(r) => {
                    let mut piece = String::with_capacity(r.len() + 4);
                    if self.vocab.add_space_prefix && prev_special {
                        piece.push(' ');
                    }
                    piece.push_str(&piece_of(r));
                    let escaped = piece.replace(' ', "\u{2581}");
                    spm::tokenize(&self.vocab, &escaped, out)?;
                    prev_special = false;
                }
                Fragment::Token(id) => {
                    out.push(*id);
                    prev_special = true;
                }
            }
        }
        Ok(())
    }

    /// The bytes a token stands for (llama.cpp's `llama_token_to_piece` with `lstrip` 0).
    ///
    /// Control and unknown tokens render their text only when `special` is true; user-defined
    /// tokens always do; unused and undefined tokens render as nothing. Ids out of range give
    /// nothing.
    pub fn token_to_piece(&self, id: u32, special: bool) -> Vec<u8> {
        let v = &self.vocab;
        let Some(text) = v.texts.get(id as usize) else {
            return Vec::new();
        };
        let a = v.attr(id);
        if !special && a & (attr::UNKNOWN | attr::CONTROL) != 0 {
            return Vec::new();
        }
        if a & (attr::UNKNOWN | attr::CONTROL | attr::USER_DEFINED) != 0 {
            return text.as_bytes().to_vec();
        }
        if a & attr::NORMAL != 0 {
            return match v.vtype {
                VocabType::Spm => text.replace('\u{2581}', " ").into_bytes(),
                VocabType::Bpe => decode_byte_level(text),
            };
        }
        if a & attr::BYTE != 0 {
            return vec![byte_token_value(text)];
        }
        Vec::new()
    }

    /// The text of `ids`: their pieces concatenated, invalid UTF-8 replaced by U+FFFD at the
    /// very end (so a character split across tokens survives).
    pub fn decode(&self, ids: &[u32], special: bool) -> String {
        let mut bytes = Vec::new();
        for &id in ids {
            bytes.extend(self.token_to_piece(id, special));
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// A decoder that takes ids one at a time and gives back whole characters.
    pub fn stream_decoder(&self, special: bool) -> StreamDecoder<'_> {
        StreamDecoder::with_special(self, special)
    }

    /// Number of tokens in the vocabulary (the logits' length).
    pub fn n_vocab(&self) -> usize {
        self.vocab.n_tokens()
    }

    /// `tokenizer.ggml.model`.
    pub fn model(&self) -> &str {
        &self.vocab.model
    }

    /// `tokenizer.ggml.pre`, as given.
    pub fn pre(&self) -> Option<&str> {
        self.vocab.pre.as_deref()
    }

    /// The special token ids after llama.cpp's defaults and text-based detection.
    pub fn special_ids(&self) -> &SpecialIds {
        &self.vocab.special
    }

    pub fn bos(&self) -> Option<u32> {
        self.vocab.special.bos
    }

    pub fn eos(&self) -> Option<u32> {
        self.vocab.special.eos
    }

    /// End of turn (`<|im_end|>`, `<end_of_turn>`, ...), from the metadata or found by text.
    pub fn eot(&self) -> Option<u32> {
        self.vocab.special.eot
    }

    /// Whether [`Tokenizer::encode`] with `add_special` puts BOS first.
    pub fn add_bos(&self) -> bool {
        self.vocab.add_bos
    }

    /// Whether [`Tokenizer::encode`] with `add_special` puts EOS last.
    pub fn add_eos(&self) -> bool {
        self.vocab.add_eos
    }

    /// Whether generation stops at `id` (llama.cpp's `llama_vocab_is_eog`).
    pub fn is_eog(&self, id: u32) -> bool {
        self.vocab.eog.binary_search(&id).is_ok()
    }

    /// Every end-of-generation id, ascending.
    pub fn eog_ids(&self) -> &[u32] {
        &self.vocab.eog
    }

    /// The type of a token after llama.cpp's fix-ups (tokens it recognizes as end-of-turn or
    /// FIM markers become control tokens even when the file says otherwise).
    pub fn token_type(&self, id: u32) -> Option<TokenType> {
        self.vocab.token_type(id)
    }

    /// Whether `id` is a control token (rendered only with `special`).
    pub fn is_control(&self, id: u32) -> bool {
        self.vocab.attr(id) & attr::CONTROL != 0
    }

    /// The vocabulary text of a token, as stored (byte-level characters, `▁` for spaces).
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.vocab.texts.get(id as usize).map(String::as_str)
    }

    /// The id whose vocabulary text is exactly `text`.
    pub fn id_of(&self, text: &str) -> Option<u32> {
        self.vocab.text_to_token(text)
    }
}

/// Byte-level decoding of a BPE token text (llama.cpp's `llama_decode_text`), including its
/// placeholder for characters outside the byte table.
fn decode_byte_level(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        match unicode::char_to_byte(c) {
            Some(b) => out.push(b),
            None => {
                out.extend_from_slice(b"[UNK_BYTE_0x");
                let mut buf = [0; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.extend_from_slice(format!("{b:02x}").as_bytes());
                }
                out.extend_from_slice(text.as_bytes());
                out.push(b']');
            }
        }
    }
    out
}

/// The byte of a `<0xXX>` token: C's `strtol` on the two characters after `<0x`, which reads
/// as many hex digits as there are and gives 0 for none.
fn byte_token_value(text: &str) -> u8 {
    let after = text.as_bytes().get(3..).unwrap_or(&[]);
    let digits = &after[..after.len().min(2)];
    let mut value: u8 = 0;
    for &d in digits {
        match (d as char).to_digit(16) {
            Some(x) => value = value.wrapping_mul(16).wrapping_add(x as u8),
            None => break,
        }
    }
    value
}

#[cfg(test)]
mod tests;
