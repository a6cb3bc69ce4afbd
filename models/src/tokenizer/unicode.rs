//! Character classes and the GPT-2 byte-to-character mapping, as llama.cpp defines them.
//!
//! The pre-tokenizers must classify characters exactly as llama.cpp's `unicode.cpp` does
//! (`unicode_cpt_flags_from_cpt`): its own category table (see `unicode_data.rs`) and its own
//! whitespace set, not Rust's `char` methods nor the `regex` crate's tables, which follow other
//! Unicode versions and other definitions (`char::is_alphabetic` is not `\p{L}`).

use super::unicode_data::CATEGORY_RANGES;

// Category flags, with llama.cpp's values (`unicode_cpt_flags`), so the generated table reads
// the same as the C++ one.
pub(super) const NONE: u16 = 0x0000;
pub(super) const UNDEF: u16 = 0x0001;
pub(super) const NUM: u16 = 0x0002;
pub(super) const LET: u16 = 0x0004;
pub(super) const SEP: u16 = 0x0008;
pub(super) const MARK: u16 = 0x0010;
pub(super) const PUNCT: u16 = 0x0020;
pub(super) const SYM: u16 = 0x0040;
pub(super) const CTRL: u16 = 0x0080;
#[cfg(test)]
const CATEGORY_MASK: u16 = 0x00FF;
/// Not a category: `\s`, llama.cpp's `unicode_set_whitespace`.
const WHITESPACE: u16 = 0x0100;

/// llama.cpp's `unicode_set_whitespace` (the Unicode `White_Space` property).
const WHITESPACE_SET: [u32; 25] = [
    0x0009, 0x000A, 0x000B, 0x000C, 0x000D, 0x0020, 0x0085, 0x00A0, 0x1680, 0x2000, 0x2001, 0x2002,
    0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200A, 0x2028, 0x2029, 0x202F, 0x205F,
    0x3000,
];

/// The flags of one code point, or of a position outside the text being split (all zero), the
/// way llama.cpp's custom splitters see them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Flags(u16);

impl Flags {
    /// Flags of a position past the end of the current piece: no category, not whitespace.
    pub(crate) const OUT: Flags = Flags(0);

    pub(crate) fn of(c: char) -> Flags {
        let cp = c as u32;
        let cat = category(cp);
        let ws = if WHITESPACE_SET.binary_search(&cp).is_ok() {
            WHITESPACE
        } else {
            0
        };
        Flags(cat | ws)
    }

    pub(crate) fn is_letter(self) -> bool {
        self.0 & LET != 0
    }
    pub(crate) fn is_number(self) -> bool {
        self.0 & NUM != 0
    }
    pub(crate) fn is_punctuation(self) -> bool {
        self.0 & PUNCT != 0
    }
    pub(crate) fn is_whitespace(self) -> bool {
        self.0 & WHITESPACE != 0
    }
    /// True for every real code point (undefined ones have the UNDEFINED flag); false only for
    /// [`Flags::OUT`]. llama.cpp's `flags.as_uint() != 0`.
    pub(crate) fn is_some(self) -> bool {
        self.0 != 0
    }
    /// The category alone, without the whitespace bit.
    #[cfg(test)]
    pub(crate) fn category(self) -> u16 {
        self.0 & CATEGORY_MASK
    }
}

/// The category flag of a code point: binary search in the range table.
fn category(cp: u32) -> u16 {
    // The table starts at 0 and ends with 0x110000, so the partition point is always >= 1.
    let idx = CATEGORY_RANGES.partition_point(|&(start, _)| start <= cp);
    match idx.checked_sub(1).and_then(|i| CATEGORY_RANGES.get(i)) {
        Some(&(_, flags)) => flags,
        None => UNDEF,
    }
}

/// GPT-2's byte-to-unicode table (`bytes_to_unicode` in OpenAI's encoder, llama.cpp's
/// `unicode_byte_to_utf8_map`): printable bytes stand for themselves, the 68 others are moved to
/// U+0100.. in byte order, so every byte string becomes a printable string.
const BYTE_TO_CHAR: [char; 256] = build_byte_to_char();

const fn is_printable_byte(b: u32) -> bool {
    (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)
}

const fn build_byte_to_char() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut next = 256u32;
    let mut b = 0u32;
    while b < 256 {
        let cp = if is_printable_byte(b) {
            b
        } else {
            next += 1;
            next - 1
        };
        // Every value is below 0x144, a valid scalar value.
        table[b as usize] = match char::from_u32(cp) {
            Some(c) => c,
            None => '\0',
        };
        b += 1;
    }
    table
}

/// The character that stands for `byte` in byte-level BPE vocabularies.
pub(crate) fn byte_to_char(byte: u8) -> char {
    BYTE_TO_CHAR[byte as usize]
}

/// The byte a byte-level character stands for, or `None` for characters outside the table.
pub(crate) fn char_to_byte(c: char) -> Option<u8> {
    let cp = c as u32;
    if cp < 256 && is_printable_byte(cp) {
        return u8::try_from(cp).ok();
    }
    if !(256..256 + 68).contains(&cp) {
        return None;
    }
    // The n-th non-printable byte maps to U+0100 + n.
    let n = (cp - 256) as usize;
    (0u8..=255).filter(|&b| !is_printable_byte(b as u32)).nth(n)
}

/// Byte-level encoding of a word (llama.cpp's `unicode_byte_encoding_process`).
pub(crate) fn byte_encode(word: &str) -> String {
    let mut out = String::with_capacity(word.len() * 2);
    for &b in word.as_bytes() {
        out.push(byte_to_char(b));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_table_round_trips() {
        for b in 0..=255u8 {
            assert_eq!(char_to_byte(byte_to_char(b)), Some(b));
        }
        assert_eq!(byte_to_char(b' '), 'Ġ');
        assert_eq!(byte_to_char(b'\n'), 'Ċ');
        assert_eq!(char_to_byte('a'), Some(b'a'));
        assert_eq!(char_to_byte('€'), None);
    }

    #[test]
    fn categories_follow_llama_cpp() {
        assert!(Flags::of('a').is_letter());
        assert!(Flags::of('Ж').is_letter());
        assert!(Flags::of('你').is_letter());
        assert!(Flags::of('7').is_number());
        assert!(Flags::of('²').is_number());
        assert!(Flags::of('!').is_punctuation());
        assert!(Flags::of(' ').is_whitespace());
        assert!(Flags::of('\u{3000}').is_whitespace());
        assert!(!Flags::of('\u{200B}').is_whitespace());
        assert!(Flags::of('\u{10FFFF}').is_some());
        assert!(!Flags::OUT.is_some());
        assert_eq!(Flags::of('$').category(), SYM);
        assert_eq!(Flags::of('\u{0301}').category(), MARK);
        assert_eq!(Flags::of('\u{E000}').category(), CTRL);
    }
}
