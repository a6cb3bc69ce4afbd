//! Pre-tokenization of byte-level BPE vocabularies: splitting text into words before merging.
//!
//! llama.cpp (`unicode_regex_split`) applies a list of regexes in sequence, each one splitting the
//! pieces left by the previous one, and never lets a match cross a piece boundary. For the common
//! regexes it does not run a regex engine at all but hand-written splitters
//! (`unicode_regex_split_custom_gpt2`, `..._llama3`, `..._qwen2`), and the remaining simple ones
//! run through `std::regex` on a "collapsed" text where every non-ASCII code point is replaced
//! by one byte naming its category. Both differ in corner cases from what the `tokenizers` crate
//! (or any real regex engine with Rust's Unicode tables) would do, so the splitting is done here,
//! by hand, with llama.cpp's character table: the same pieces, by construction.
//!
//! Pieces are counted in code points, as in llama.cpp, and turned into byte ranges at the end.

use std::ops::Range;

use super::unicode::Flags;

/// The pre-tokenizer families hearth implements, by the regex list llama.cpp uses for them
/// (`llm_tokenizer_bpe::llm_tokenizer_bpe`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PreKind {
    /// `LLAMA_VOCAB_PRE_TYPE_DEFAULT`: punctuation runs, the GPT-2 regex, digit runs, digit
    /// triples.
    Default,
    /// The GPT-2 regex alone.
    Gpt2,
    /// The Llama 3 regex (numbers in groups of up to three digits).
    Llama3,
    /// The Qwen2 regex: the Llama 3 one with single digits.
    Qwen2,
    /// StarCoder/SmolLM: every digit isolated, then the GPT-2 regex.
    StarCoder,
}

/// One splitting stage.
#[derive(Clone, Copy)]
enum Stage {
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)`
    Gpt2,
    /// `(?i:'s|...)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,max}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    Llama3 { max_digits: usize },
    /// A character class matched `min..=max` times, through llama.cpp's collapsed `std::regex`.
    Class {
        class: CharClass,
        min: usize,
        max: usize,
    },
}

/// The character classes of the `std::regex` stages, as they read on llama.cpp's collapsed text.
#[derive(Clone, Copy)]
enum CharClass {
    /// `\p{N}`: ASCII digits and non-ASCII numbers.
    Number,
    /// `[\p{P}\$\+<=>\^~\|]`: ASCII punctuation and symbols except the backtick (llama.cpp's
    /// collapsed `\p{P}` lists ASCII `!-#%-*,-/:-;?-@[-]_{}`), and non-ASCII punctuation.
    PunctDefault,
    /// `[0-9]`, matched on code points.
    AsciiDigit,
}

impl CharClass {
    fn matches(self, c: char) -> bool {
        match self {
            CharClass::Number => {
                if c.is_ascii() {
                    c.is_ascii_digit()
                } else {
                    let f = Flags::of(c);
                    !f.is_whitespace() && f.is_number()
                }
            }
            CharClass::PunctDefault => {
                if c.is_ascii() {
                    c.is_ascii_punctuation() && c != '`'
                } else {
                    let f = Flags::of(c);
                    !f.is_whitespace() && f.is_punctuation()
                }
            }
            CharClass::AsciiDigit => c.is_ascii_digit(),
        }
    }
}

impl PreKind {
    fn stages(self) -> &'static [Stage] {
        const NUM_ONE: Stage = Stage::Class {
            class: CharClass::Number,
            min: 1,
            max: 1,
        };
        const NUM_RUN: Stage = Stage::Class {
            class: CharClass::Number,
            min: 1,
            max: usize::MAX,
        };
        const PUNCT_RUN: Stage = Stage::Class {
            class: CharClass::PunctDefault,
            min: 1,
            max: usize::MAX,
        };
        const DIGITS3: Stage = Stage::Class {
            class: CharClass::AsciiDigit,
            min: 3,
            max: 3,
        };
        match self {
            PreKind::Default => &[PUNCT_RUN, Stage::Gpt2, NUM_RUN, DIGITS3],
            PreKind::Gpt2 => &[Stage::Gpt2],
            PreKind::Llama3 => &[Stage::Llama3 { max_digits: 3 }],
            PreKind::Qwen2 => &[Stage::Llama3 { max_digits: 1 }],
            PreKind::StarCoder => &[NUM_ONE, Stage::Gpt2],
        }
    }

    /// Splits `text` into words, returned as byte ranges that cover `text` in order.
    pub(crate) fn split(self, text: &str) -> Vec<Range<usize>> {
        let cpts: Vec<char> = text.chars().collect();
        if cpts.is_empty() {
            return Vec::new();
        }
        let mut pieces = vec![cpts.len()];
        for stage in self.stages() {
            pieces = match *stage {
                Stage::Gpt2 => split_gpt2(&cpts, &pieces),
                Stage::Llama3 { max_digits } => split_llama3(&cpts, &pieces, max_digits),
                Stage::Class { class, min, max } => split_class(&cpts, &pieces, class, min, max),
            };
        }
        to_byte_ranges(&cpts, &pieces)
    }
}

fn to_byte_ranges(cpts: &[char], pieces: &[usize]) -> Vec<Range<usize>> {
    let mut out = Vec::with_capacity(pieces.len());
    let mut byte = 0;
    let mut cp = 0;
    for &len in pieces {
        let start = byte;
        byte += cpts[cp..cp + len]
            .iter()
            .map(|c| c.len_utf8())
            .sum::<usize>();
        cp += len;
        out.push(start..byte);
    }
    out
}

/// One piece being split: code points `ini..end` of the text, and the lengths found so far.
/// Reads outside the piece see nothing (`None`, [`Flags::OUT`]), as llama.cpp's `_get_cpt` and
/// `_get_flags` do.
struct Cursor<'a> {
    cpts: &'a [char],
    ini: usize,
    end: usize,
    prev_end: usize,
    out: &'a mut Vec<usize>,
}

impl Cursor<'_> {
    fn cpt(&self, pos: usize) -> Option<char> {
        (self.ini <= pos && pos < self.end).then(|| self.cpts[pos])
    }
    fn flags(&self, pos: usize) -> Flags {
        self.cpt(pos).map_or(Flags::OUT, Flags::of)
    }
    /// Ends the current word at `end` (llama.cpp's `_add_token`).
    fn add(&mut self, end: usize) {
        if end > self.prev_end {
            self.out.push(end - self.prev_end);
        }
        self.prev_end = end;
    }
}

/// Runs `step` over every piece; `step` gets the cursor and the current position and returns
/// the next position.
fn split_pieces(
    cpts: &[char],
    pieces: &[usize],
    step: impl Fn(&mut Cursor<'_>, usize) -> usize,
) -> Vec<usize> {
    let mut out = Vec::with_capacity(pieces.len());
    let mut start = 0;
    for &len in pieces {
        let mut cur = Cursor {
            cpts,
            ini: start,
            end: start + len,
            prev_end: start,
            out: &mut out,
        };
        let mut pos = start;
        while pos < cur.end {
            pos = step(&mut cur, pos);
        }
        start += len;
    }
    out
}

/// The contraction alternatives `'s|'t|'re|'ve|'m|'ll|'d`, case-insensitive or not: the end of
/// the match starting at `pos`, if there is one.
fn contraction(cur: &Cursor<'_>, pos: usize, fold_case: bool) -> Option<usize> {
    if cur.cpt(pos) != Some('\'') || pos + 1 >= cur.end {
        return None;
    }
    // Only ASCII capitals lowercase to these letters in llama.cpp's `unicode_tolower` table.
    let fold = |c: Option<char>| c.map(|c| if fold_case { c.to_ascii_lowercase() } else { c });
    let next = fold(cur.cpt(pos + 1));
    if matches!(next, Some('s' | 't' | 'm' | 'd')) {
        return Some(pos + 2);
    }
    if pos + 2 < cur.end {
        let pair = (next, fold(cur.cpt(pos + 2)));
        if matches!(
            pair,
            (Some('r'), Some('e')) | (Some('v'), Some('e')) | (Some('l'), Some('l'))
        ) {
            return Some(pos + 3);
        }
    }
    None
}

/// `\s+(?!\S)|\s+` at `pos`: all the whitespace, but one less if something follows it in the
/// piece. Returns `None` when `pos` is not whitespace.
fn whitespace_run(cur: &Cursor<'_>, pos: usize) -> Option<usize> {
    let mut n = 0;
    while cur.flags(pos + n).is_whitespace() {
        n += 1;
    }
    if n > 1 && cur.cpt(pos + n).is_some() {
        return Some(pos + n - 1);
    }
    (n > 0).then_some(pos + n)
}

/// llama.cpp's `unicode_regex_split_custom_gpt2`.
fn split_gpt2(cpts: &[char], pieces: &[usize]) -> Vec<usize> {
    split_pieces(cpts, pieces, |cur, pos| {
        if let Some(end) = contraction(cur, pos, false) {
            cur.add(end);
            return end;
        }
        let space = cur.cpt(pos) == Some(' ');
        let mut f = if space {
            cur.flags(pos + 1)
        } else {
            cur.flags(pos)
        };
        // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`
        type Class = fn(Flags) -> bool;
        let classes: [Class; 3] = [
            |f| f.is_letter(),
            |f| f.is_number(),
            |f| !(f.is_whitespace() || f.is_letter() || f.is_number()) && f.is_some(),
        ];
        for class in classes {
            if class(f) {
                let mut p = pos + usize::from(space);
                while class(f) {
                    p += 1;
                    f = cur.flags(p);
                }
                cur.add(p);
                return p;
            }
        }
        let end = whitespace_run(cur, pos).unwrap_or(pos + 1);
        cur.add(end);
        end
    })
}

/// llama.cpp's `unicode_regex_split_custom_llama3` (`max_digits` 3) and
/// `unicode_regex_split_custom_qwen2` (`max_digits` 1).
fn split_llama3(cpts: &[char], pieces: &[usize], max_digits: usize) -> Vec<usize> {
    split_pieces(cpts, pieces, |cur, pos| {
        if let Some(end) = contraction(cur, pos, true) {
            cur.add(end);
            return end;
        }
        let cpt = cur.cpt(pos);
        let flags = cur.flags(pos);
        let newline = matches!(cpt, Some('\r' | '\n'));
        // `[^\r\n\p{L}\p{N}]?\p{L}+`
        if !(newline || flags.is_number()) && (flags.is_letter() || cur.flags(pos + 1).is_letter())
        {
            let mut p = pos + 1;
            while cur.flags(p).is_letter() {
                p += 1;
            }
            cur.add(p);
            return p;
        }
        // `\p{N}{1,max}`, repeated over the whole run of digits
        if flags.is_number() {
            let mut p = pos;
            let mut ini = pos;
            while cur.flags(p).is_number() {
                p += 1;
                if p - ini >= max_digits {
                    cur.add(p);
                    ini = p;
                }
            }
            cur.add(p);
            return p;
        }
        // ` ?[^\s\p{L}\p{N}]+[\r\n]*` (llama.cpp tests the current code point's flags for
        // "is a code point", not the next one's)
        let other =
            |f: Flags| !(f.is_whitespace() || f.is_letter() || f.is_number()) && f.is_some();
        let space = cpt == Some(' ');
        let mut f = if space { cur.flags(pos + 1) } else { flags };
        if !(f.is_whitespace() || f.is_letter() || f.is_number()) && flags.is_some() {
            let mut p = pos + usize::from(space);
            while other(f) {
                p += 1;
                f = cur.flags(p);
            }
            while matches!(cur.cpt(p), Some('\r' | '\n')) {
                p += 1;
            }
            cur.add(p);
            return p;
        }
        // `\s*[\r\n]+`: the whitespace up to and including its last newline
        let mut n = 0;
        let mut last_newline_end = None;
        while cur.flags(pos + n).is_whitespace() {
            if matches!(cur.cpt(pos + n), Some('\r' | '\n')) {
                last_newline_end = Some(pos + n + 1);
            }
            n += 1;
        }
        let end = last_newline_end
            .or_else(|| whitespace_run(cur, pos))
            .unwrap_or(pos + 1);
        cur.add(end);
        end
    })
}

/// A `std::regex` stage of llama.cpp (`unicode_regex_split_stl`) for a regex that is one
/// character class repeated `min..=max` times: leftmost, greedy, non-overlapping matches become
/// words, and the text between two matches becomes one word too.
fn split_class(
    cpts: &[char],
    pieces: &[usize],
    class: CharClass,
    min: usize,
    max: usize,
) -> Vec<usize> {
    let mut out = Vec::with_capacity(pieces.len());
    let mut start = 0;
    for &len in pieces {
        let end = start + len;
        let mut gap_start = start;
        let mut pos = start;
        while pos < end {
            let mut n = 0;
            while n < max && pos + n < end && class.matches(cpts[pos + n]) {
                n += 1;
            }
            if n < min {
                pos += 1;
                continue;
            }
            if pos > gap_start {
                out.push(pos - gap_start);
            }
            out.push(n);
            pos += n;
            gap_start = pos;
        }
        if end > gap_start {
            out.push(end - gap_start);
        }
        start = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(kind: PreKind, text: &str) -> Vec<String> {
        kind.split(text)
            .into_iter()
            .map(|r| text[r].to_string())
            .collect()
    }

    #[test]
    fn gpt2_words() {
        assert_eq!(
            words(PreKind::Gpt2, "Hello  world's 123!!"),
            ["Hello", " ", " world", "'s", " 123", "!!"]
        );
        assert_eq!(words(PreKind::Gpt2, "a   "), ["a", "   "]);
        assert_eq!(words(PreKind::Gpt2, "I'M"), ["I", "'", "M"]);
    }

    #[test]
    fn llama3_words() {
        assert_eq!(
            words(PreKind::Llama3, "I'M 12345 ok\n\n  x"),
            ["I", "'M", " ", "123", "45", " ok", "\n\n", " ", " x"]
        );
        assert_eq!(words(PreKind::Llama3, "a...\n\nb"), ["a", "...\n\n", "b"]);
    }

    #[test]
    fn qwen2_single_digits() {
        assert_eq!(words(PreKind::Qwen2, "x=42;"), ["x", "=", "4", "2", ";"]);
    }

    #[test]
    fn starcoder_isolates_digits_first() {
        assert_eq!(words(PreKind::StarCoder, "ab 12"), ["ab", " ", "1", "2"]);
    }

    #[test]
    fn default_stages() {
        assert_eq!(
            words(PreKind::Default, "a, 12345"),
            ["a", ",", " ", "123", "45"]
        );
    }

    #[test]
    fn covers_text() {
        let text = "  mixed\r\n\tТекст 你好 🙂 'll\u{3000}x ";
        for kind in [
            PreKind::Default,
            PreKind::Gpt2,
            PreKind::Llama3,
            PreKind::Qwen2,
            PreKind::StarCoder,
        ] {
            assert_eq!(words(kind, text).concat(), text);
        }
    }
}
