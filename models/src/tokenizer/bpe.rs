//! Byte-level BPE (`tokenizer.ggml.model = gpt2`), llama.cpp's `llm_tokenizer_bpe_session`.
//!
//! Work is split between hearth and the `tokenizers` crate:
//! - hearth pre-tokenizes (see `pretokenize.rs`: llama.cpp's splitters, not the crate's regexes),
//!   maps bytes to GPT-2 characters, and applies llama.cpp's `ignore_merges` shortcut;
//! - the crate's [`BPE`] model merges each word by rank. Its merge loop is llama.cpp's: lowest
//!   rank first, leftmost on ties, stale pairs skipped.
//!
//! Where the crate and llama.cpp could disagree, the inputs are prepared so that they cannot:
//! - llama.cpp keeps the first of duplicate merges (`bpe_ranks.emplace`), the crate the last:
//!   duplicates are dropped before the crate sees them;
//! - the crate silently drops characters missing from the vocabulary and would then merge
//!   across the gap, where llama.cpp keeps them as symbols that block merging and emits nothing
//!   for them: words are cut at such characters and the gaps emit nothing;
//! - llama.cpp accepts merges whose parts or result are not tokens and falls back to bytes at
//!   the end; the crate refuses them. Hugging Face refuses them too, so no converted model has
//!   them: hearth rejects such a vocabulary with an error naming the string.

use ahash::AHashSet;
use tokenizers::models::bpe::{Vocab as CrateVocab, BPE};
use tokenizers::Model;

use super::unicode::{byte_encode, byte_to_char};
use super::vocab::Vocab;
use super::TokenizerError;

const MERGES_KEY: &str = "tokenizer.ggml.merges";

/// The merge model of a byte-level BPE vocabulary.
pub(crate) struct BpeTokenizer {
    model: BPE,
    /// Whether the GPT-2 character of each byte is a token.
    byte_known: [bool; 256],
}

impl std::fmt::Debug for BpeTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BpeTokenizer").finish_non_exhaustive()
    }
}

/// Splits a merge rule at its first space after the first byte, as llama.cpp does
/// (`word.find(' ', 1)`), so that a rule may merge a token that starts with a space.
fn split_merge(rule: &str) -> Option<(&str, &str)> {
    let pos = rule.bytes().skip(1).position(|b| b == b' ')? + 1;
    Some((&rule[..pos], &rule[pos + 1..]))
}

/// Splits the merge rules and drops repeated ones, keeping the first (llama.cpp's
/// `bpe_ranks.emplace`). Whether their parts and results are tokens is checked by the crate.
fn parse_merges(merges: &[String]) -> Result<Vec<(String, String)>, TokenizerError> {
    let mut seen: AHashSet<(&str, &str)> = AHashSet::with_capacity(merges.len());
    let mut out = Vec::with_capacity(merges.len());
    for (i, rule) in merges.iter().enumerate() {
        let (left, right) = split_merge(rule).ok_or_else(|| TokenizerError::Invalid {
            key: MERGES_KEY,
            detail: format!("merge #{i} `{rule}` has no space"),
        })?;
        if seen.insert((left, right)) {
            out.push((left.to_string(), right.to_string()));
        }
    }
    Ok(out)
}

impl BpeTokenizer {
    pub(crate) fn new(vocab: &Vocab, merges: &[String]) -> Result<BpeTokenizer, TokenizerError> {
        let merges = parse_merges(merges)?;
        let crate_vocab: CrateVocab = vocab
            .token_to_id
            .iter()
            .map(|(text, &id)| (text.clone(), id))
            .collect();
        let model = BPE::builder()
            .vocab_and_merges(crate_vocab, merges)
            .build()
            .map_err(|e| TokenizerError::Invalid {
                key: MERGES_KEY,
                detail: format!("a merge names or makes a string that is not a token: {e}"),
            })?;
        let mut byte_known = [false; 256];
        for (b, known) in byte_known.iter_mut().enumerate() {
            let c = byte_to_char(b as u8);
            *known = vocab.text_to_token(c.encode_utf8(&mut [0; 4])).is_some();
        }
        Ok(BpeTokenizer { model, byte_known })
    }

    /// Tokenizes one text fragment (no special tokens in it) into `out`.
    pub(crate) fn tokenize(
        &self,
        vocab: &Vocab,
        text: &str,
        out: &mut Vec<u32>,
    ) -> Result<(), TokenizerError> {
        for range in vocab.pre_kind.split(text) {
            let word = &text[range];
            let encoded = byte_encode(word);
            if vocab.ignore_merges {
                if let Some(id) = vocab.text_to_token(&encoded) {
                    out.push(id);
                    continue;
                }
            }
            self.merge_word(word.as_bytes(), &encoded, out)?;
        }
        Ok(())
    }

    /// Merges one byte-encoded word, cut at bytes whose character is not a token.
    fn merge_word(
        &self,
        raw: &[u8],
        encoded: &str,
        out: &mut Vec<u32>,
    ) -> Result<(), TokenizerError> {
        let mut seg_start = 0; // in `encoded`
        let mut pos = 0;
        for &b in raw {
            let len = byte_to_char(b).len_utf8();
            if !self.byte_known[b as usize] {
                self.merge_segment(&encoded[seg_start..pos], out)?;
                seg_start = pos + len;
            }
            pos += len;
        }
        self.merge_segment(&encoded[seg_start..], out)
    }

    fn merge_segment(&self, segment: &str, out: &mut Vec<u32>) -> Result<(), TokenizerError> {
        if segment.is_empty() {
            return Ok(());
        }
        let tokens = self
            .model
            .tokenize(segment)
            .map_err(|e| TokenizerError::Bpe(e.to_string()))?;
        out.extend(tokens.iter().map(|t| t.id));
        Ok(())
    }
}
