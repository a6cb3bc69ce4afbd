//! SentencePiece-style tokenization (`tokenizer.ggml.model = llama`), llama.cpp's
//! `llm_tokenizer_spm_session`.
//!
//! Written here rather than taken from the `tokenizers` crate: llama.cpp does not run
//! SentencePiece's unigram search nor rank-based BPE, but a greedy bigram merge ordered by the
//! *score of the merged token*: start from single characters, repeatedly merge the adjacent pair
//! whose concatenation is a token with the highest score (leftmost on ties), and emit whatever
//! is left; a piece that is not a token falls back to its bytes (`<0xXX>` tokens).

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::vocab::Vocab;
use super::TokenizerError;

/// A run of the text, linked to its neighbours; `len == 0` once merged into its left neighbour.
#[derive(Clone, Copy)]
struct Symbol {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

/// A candidate merge of `left` with its right neighbour `right`.
struct Bigram {
    left: usize,
    right: usize,
    score: f32,
    /// Byte length of the merged text, to detect candidates made stale by other merges.
    size: usize,
}

impl Ord for Bigram {
    /// Highest score first, then leftmost (llama.cpp's `llm_bigram_spm::comparator`, which
    /// compares with `<`, so equal and unordered scores tie).
    fn cmp(&self, other: &Self) -> Ordering {
        if self.score < other.score {
            Ordering::Less
        } else if self.score > other.score {
            Ordering::Greater
        } else {
            other.left.cmp(&self.left)
        }
    }
}

impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Bigram {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Bigram {}

/// Tokenizes `text` (spaces already replaced by `▁`) into `out`.
pub(crate) fn tokenize(
    vocab: &Vocab,
    text: &str,
    out: &mut Vec<u32>,
) -> Result<(), TokenizerError> {
    let mut symbols: Vec<Symbol> = Vec::with_capacity(text.len());
    for (i, (start, c)) in text.char_indices().enumerate() {
        symbols.push(Symbol {
            start,
            len: c.len_utf8(),
            prev: i.checked_sub(1),
            next: None,
        });
        if let Some(prev) = i.checked_sub(1) {
            symbols[prev].next = Some(i);
        }
    }
    let mut queue = BinaryHeap::new();
    for i in 1..symbols.len() {
        push_bigram(vocab, text, &symbols, &mut queue, Some(i - 1), Some(i));
    }
    while let Some(bigram) = queue.pop() {
        let (left, right) = (symbols[bigram.left], symbols[bigram.right]);
        // Skip candidates whose sides were merged into something else meanwhile.
        if left.len == 0 || right.len == 0 || left.len + right.len != bigram.size {
            continue;
        }
        symbols[bigram.left].len += right.len;
        symbols[bigram.right].len = 0;
        symbols[bigram.left].next = right.next;
        if let Some(next) = right.next {
            symbols[next].prev = Some(bigram.left);
        }
        let prev = symbols[bigram.left].prev;
        push_bigram(vocab, text, &symbols, &mut queue, prev, Some(bigram.left));
        push_bigram(
            vocab,
            text,
            &symbols,
            &mut queue,
            Some(bigram.left),
            right.next,
        );
    }
    let mut cur = (!symbols.is_empty()).then_some(0);
    while let Some(i) = cur {
        let s = symbols[i];
        emit(vocab, &text[s.start..s.start + s.len], out)?;
        cur = s.next;
    }
    Ok(())
}

/// Queues the merge of `left` and `right` if their concatenation is a token
/// (llama.cpp's `try_add_bigram`).
fn push_bigram(
    vocab: &Vocab,
    text: &str,
    symbols: &[Symbol],
    queue: &mut BinaryHeap<Bigram>,
    left: Option<usize>,
    right: Option<usize>,
) {
    let (Some(left), Some(right)) = (left, right) else {
        return;
    };
    let (l, r) = (symbols[left], symbols[right]);
    let merged = &text[l.start..l.start + l.len + r.len];
    if let Some(id) = vocab.text_to_token(merged) {
        queue.push(Bigram {
            left,
            right,
            score: vocab.scores[id as usize],
            size: merged.len(),
        });
    }
}

/// Emits a final piece: its token, or its bytes (llama.cpp's `resegment`; every merged piece is
/// a token, so only single characters can fall back to bytes).
fn emit(vocab: &Vocab, piece: &str, out: &mut Vec<u32>) -> Result<(), TokenizerError> {
    if let Some(id) = vocab.text_to_token(piece) {
        out.push(id);
        return Ok(());
    }
    for &b in piece.as_bytes() {
        out.push(byte_to_token(vocab, b)?);
    }
    Ok(())
}

/// The `<0xXX>` token of a byte, else the token whose text is that single byte
/// (llama.cpp's `byte_to_token` for SPM).
pub(crate) fn byte_to_token(vocab: &Vocab, b: u8) -> Result<u32, TokenizerError> {
    let hex = format!("<0x{b:02X}>");
    if let Some(id) = vocab.text_to_token(&hex) {
        return Ok(id);
    }
    let single = [b];
    std::str::from_utf8(&single)
        .ok()
        .and_then(|s| vocab.text_to_token(s))
        .ok_or(TokenizerError::MissingByteToken(b))
}
