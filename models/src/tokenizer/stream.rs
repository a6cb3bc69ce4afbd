//! Streaming detokenization: text out as tokens come in, never half a character.
//!
//! A token's bytes need not end on a character boundary (byte-level BPE splits rare characters
//! and emoji across tokens; byte-fallback tokens carry single bytes). The decoder holds back an
//! incomplete UTF-8 sequence at the end of what it has seen, and turns a sequence that can no
//! longer become valid into U+FFFD at once, so it never stalls. Its output, concatenated and
//! followed by [`StreamDecoder::flush`], equals [`Tokenizer::decode`](super::Tokenizer::decode)
//! of the same ids: both replace invalid sequences the way `String::from_utf8_lossy` does.

use super::Tokenizer;

/// Turns token ids into text one at a time.
#[derive(Debug)]
pub struct StreamDecoder<'a> {
    tokenizer: &'a Tokenizer,
    special: bool,
    /// Bytes not yet emitted: at most an incomplete UTF-8 sequence (3 bytes) between calls.
    pending: Vec<u8>,
}

impl<'a> StreamDecoder<'a> {
    /// A decoder that renders control tokens as nothing (what a user should see; `<think>` and
    /// other user-defined tokens still show).
    pub fn new(tokenizer: &'a Tokenizer) -> StreamDecoder<'a> {
        StreamDecoder::with_special(tokenizer, false)
    }

    /// A decoder that renders control tokens' text too when `special` is true.
    pub fn with_special(tokenizer: &'a Tokenizer, special: bool) -> StreamDecoder<'a> {
        StreamDecoder {
            tokenizer,
            special,
            pending: Vec::new(),
        }
    }

    /// Adds one token; returns the text that is now complete (possibly empty).
    pub fn push(&mut self, id: u32) -> String {
        let piece = self.tokenizer.token_to_piece(id, self.special);
        self.push_bytes(&piece)
    }

    /// Adds raw bytes, as if a token with these bytes had come; returns the complete text.
    pub fn push_bytes(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        let mut rest: &[u8] = &self.pending;
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    out.push_str(s);
                    rest = &[];
                    break;
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    // `valid` was just checked by `from_utf8`.
                    out.push_str(&String::from_utf8_lossy(valid));
                    match e.error_len() {
                        // Invalid whatever follows: replace it now.
                        Some(n) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            rest = &after[n..];
                        }
                        // The start of a character whose other bytes may come next.
                        None => {
                            rest = after;
                            break;
                        }
                    }
                }
            }
        }
        self.pending = rest.to_vec();
        out
    }

    /// Ends the stream: whatever is still held back (an unfinished character) as U+FFFD.
    pub fn flush(&mut self) -> String {
        let out = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        out
    }

    /// Whether bytes are held back waiting for the rest of a character.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }
}
