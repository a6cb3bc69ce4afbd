//! Splitting text around special tokens before tokenizing the pieces in between
//! (llama.cpp's `tokenizer_st_partition`).
//!
//! Special tokens are searched longest first over the whole text, each one splitting every text
//! fragment left by the longer ones. With `parse_special` false, control and unknown tokens are
//! not searched for (their text stays text: user content cannot inject `<|im_start|>`), but
//! user-defined tokens (`<think>`) still are, as in llama.cpp and Hugging Face `tokenizers`.
//!
//! llama.cpp scans the text once per special token; a vocabulary like Gemma's has 6,000 of them.
//! Here an Aho-Corasick automaton first finds which special tokens occur in the text at all, and
//! only those take part in llama.cpp's longest-first splitting, which gives the same fragments.

use std::ops::Range;

use aho_corasick::{AhoCorasick, MatchKind};

use super::vocab::{attr, Vocab};
use super::TokenizerError;

/// A piece of the input: text still to tokenize, or a special token found whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Fragment {
    Text(Range<usize>),
    Token(u32),
}

/// The special tokens of a vocabulary and an automaton over their texts.
#[derive(Debug)]
pub(crate) struct SpecialMatcher {
    /// Ids in search order (longest text first); automaton pattern `i` is `ids[i]`.
    ids: Vec<u32>,
    automaton: Option<AhoCorasick>,
}

impl SpecialMatcher {
    pub(crate) fn new(vocab: &Vocab) -> Result<SpecialMatcher, TokenizerError> {
        let ids = vocab.special_cache.clone();
        let automaton = if ids.is_empty() {
            None
        } else {
            let texts = ids.iter().map(|&id| vocab.texts[id as usize].as_str());
            let ac = AhoCorasick::builder()
                .match_kind(MatchKind::Standard)
                .build(texts)
                .map_err(|e| TokenizerError::Invalid {
                    key: "tokenizer.ggml.tokens",
                    detail: format!("cannot index the special tokens: {e}"),
                })?;
            Some(ac)
        };
        Ok(SpecialMatcher { ids, automaton })
    }

    /// The special tokens (in search order) that occur somewhere in `text` and may be used.
    fn present(&self, vocab: &Vocab, text: &str, parse_special: bool) -> Vec<u32> {
        let Some(ac) = &self.automaton else {
            return Vec::new();
        };
        let mut seen = vec![false; self.ids.len()];
        for m in ac.find_overlapping_iter(text) {
            seen[m.pattern().as_usize()] = true;
        }
        let skipped = attr::CONTROL | attr::UNKNOWN;
        self.ids
            .iter()
            .zip(seen)
            .filter(|&(&id, seen)| seen && (parse_special || vocab.attr(id) & skipped == 0))
            .map(|(&id, _)| id)
            .collect()
    }

    /// Splits `text` into fragments (llama.cpp's `tokenizer_st_partition`).
    pub(crate) fn partition(
        &self,
        vocab: &Vocab,
        text: &str,
        parse_special: bool,
    ) -> Vec<Fragment> {
        if text.is_empty() {
            return Vec::new();
        }
        let mut fragments = vec![Fragment::Text(0..text.len())];
        for id in self.present(vocab, text, parse_special) {
            let needle = vocab.texts[id as usize].as_str();
            let a = vocab.attr(id);
            let mut next = Vec::with_capacity(fragments.len() + 2);
            for fragment in fragments {
                match fragment {
                    Fragment::Text(range) => split_one(text, range, needle, id, a, &mut next),
                    token => next.push(token),
                }
            }
            fragments = next;
        }
        fragments
    }
}

/// The marker [`SpecialMatcher::defuse`] puts inside special-token text found in user content: a
/// Unicode noncharacter, reserved for a program's internal use and never meaningful in text.
const MARK: char = '\u{FDD0}';
/// Follows a [`MARK`] that was already in the content, so that it survives the round trip.
const MARK_ESCAPE: char = '\u{FDD1}';

impl SpecialMatcher {
    /// Breaks every control-token text in `content` with a [`MARK`] after its first character
    /// (and escapes marks already there), so the text can no longer match a control token.
    /// User-defined tokens (`<think>`) are left alone: raw tokenization matches them anyway.
    pub(crate) fn defuse(&self, vocab: &Vocab, content: &str) -> String {
        let guarded = attr::CONTROL | attr::UNKNOWN;
        let mut cuts: Vec<usize> = match &self.automaton {
            Some(ac) => ac
                .find_overlapping_iter(content)
                .filter(|m| vocab.attr(self.ids[m.pattern().as_usize()]) & guarded != 0)
                .map(|m| {
                    let first = content[m.start()..]
                        .chars()
                        .next()
                        .map_or(0, char::len_utf8);
                    m.start() + first
                })
                .collect(),
            None => Vec::new(),
        };
        cuts.sort_unstable();
        cuts.dedup();
        let mut out = String::with_capacity(content.len() + cuts.len() * 3);
        let mut cuts = cuts.into_iter().peekable();
        for (i, c) in content.char_indices() {
            while cuts.next_if(|&at| at <= i).is_some() {
                out.push(MARK);
            }
            out.push(c);
            if c == MARK {
                out.push(MARK_ESCAPE);
            }
        }
        if cuts.next().is_some() {
            out.push(MARK);
        }
        out
    }
}

/// Undoes [`SpecialMatcher::defuse`] on a text fragment: drops the marks it added and restores
/// the ones that were in the content.
pub(crate) fn undefuse(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains(MARK) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == MARK {
            if chars.next_if_eq(&MARK_ESCAPE).is_some() {
                out.push(MARK);
            }
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Splits one text fragment at every occurrence of `needle`, honouring the token's
/// lstrip/rstrip attributes (which drop ASCII whitespace next to it, as C's `isspace`).
fn split_one(
    text: &str,
    range: Range<usize>,
    needle: &str,
    id: u32,
    attrs: u16,
    out: &mut Vec<Fragment>,
) {
    let bytes = text.as_bytes();
    let is_space = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r');
    let mut start = range.start;
    let end = range.end;
    while let Some(found) = text[start..end].find(needle) {
        let at = start + found;
        let mut left_end = at;
        if attrs & attr::LSTRIP != 0 {
            while left_end > start && is_space(bytes[left_end - 1]) {
                left_end -= 1;
            }
        }
        if left_end > start {
            out.push(Fragment::Text(start..left_end));
        }
        out.push(Fragment::Token(id));
        start = at + needle.len();
        if attrs & attr::RSTRIP != 0 {
            while start < end && is_space(bytes[start]) {
                start += 1;
            }
        }
    }
    if start < end {
        out.push(Fragment::Text(start..end));
    }
}
