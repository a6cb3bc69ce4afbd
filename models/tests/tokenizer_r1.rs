//! Hard cases on the real DeepSeek-R1-Distill-Qwen vocabulary (no model download needed).
//!
//! Exact ids for these inputs would have to come from llama.cpp, which is not available here,
//! so these tests assert properties llama.cpp's tokenization has by construction: raw text
//! decodes back to itself, control tokens only come from parsed prompts, the stream decoder
//! agrees with the full decode. The exact-id comparisons live in the root package's
//! `tests/tokenizer_fixtures.rs`.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Instant;

use hearth_models::gguf::GgufFile;
use hearth_models::tokenizer::{TokenType, Tokenizer};

fn r1() -> &'static Tokenizer {
    static TOK: OnceLock<Tokenizer> = OnceLock::new();
    TOK.get_or_init(|| {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/vocab/deepseek-r1-distill-qwen-vocab.gguf");
        let file = GgufFile::open(&path).expect("R1 vocab fixture");
        Tokenizer::from_gguf(&file).expect("R1 tokenizer")
    })
}

/// Raw tokenization decodes back to the input and holds no control token.
fn assert_round_trip(text: &str) {
    let tok = r1();
    let ids = tok.encode(text, false, false).expect("encode");
    assert_eq!(tok.decode(&ids, true), text, "ids {ids:?}");
    for &id in &ids {
        assert!(!tok.is_control(id), "control id {id} from raw {text:?}");
    }
    assert_eq!(stream(tok, &ids), text, "stream decode of {text:?}");
}

fn stream(tok: &Tokenizer, ids: &[u32]) -> String {
    let mut d = tok.stream_decoder(true);
    let mut out: String = ids.iter().map(|&id| d.push(id)).collect();
    out.push_str(&d.flush());
    out
}

#[test]
fn metadata_of_the_r1_vocabulary() {
    let tok = r1();
    assert_eq!(tok.model(), "gpt2");
    assert_eq!(tok.pre(), Some("deepseek-r1-qwen"));
    assert_eq!(tok.n_vocab(), 152_064);
    assert_eq!(tok.bos(), Some(151_646));
    assert_eq!(tok.eos(), Some(151_643));
    assert!(tok.add_bos());
    assert!(!tok.add_eos());
    assert!(tok.is_eog(151_643));
    assert!(!tok.is_eog(151_646));
    let think = tok.id_of("<think>").expect("<think>");
    assert_eq!(think, 151_648);
    assert_eq!(tok.token_type(think), Some(TokenType::UserDefined));
    assert!(!tok.is_eog(think));
    assert_eq!(tok.token_type(151_700), Some(TokenType::Unused));
    assert_eq!(
        tok.token_to_piece(151_700, true),
        b"",
        "unused slots render as nothing"
    );
}

#[test]
fn empty_and_whitespace() {
    let tok = r1();
    assert_eq!(tok.encode("", false, false).unwrap(), Vec::<u32>::new());
    assert_eq!(tok.encode("", true, true).unwrap(), [151_646]);
    for text in [
        " ", "  ", "   ", "\n", "\n\n", "\t", "\t\t ", "\r\n", " \r\n ", "\r\n\r\n", "\u{3000}",
        " \u{a0} ", "\u{2028}",
    ] {
        assert_round_trip(text);
    }
}

#[test]
fn scripts_emoji_and_digits() {
    for text in [
        "你好，世界！",
        "日本語のテキストと한국어",
        "Привет, мир",
        "مرحبا بالعالم",
        "🙂🚀 👩‍💻 🏳️‍🌈 🇫🇷",
        "line one\r\nline two\r\n",
        "1234567890123 0.000001 -7e10 ١٢٣",
        "x²+y³=z⁴ ½ ⅔",
        "Ǆǅǆ ﬁﬂ ß ẞ İı",
        "a\u{0301}e\u{0301} \u{200d}\u{200b}\u{feff}",
        "\u{0}\u{1}\u{7f}\u{85}",
        "I'M HE'LL WE'VE they'RE",
    ] {
        assert_round_trip(text);
    }
}

#[test]
fn qwen2_digits_are_single_tokens() {
    let tok = r1();
    let ids = tok.encode("9876543210", false, false).unwrap();
    assert_eq!(ids.len(), 10);
    for (id, digit) in ids.iter().zip("9876543210".chars()) {
        assert_eq!(tok.token_to_piece(*id, false), digit.to_string().as_bytes());
    }
}

#[test]
fn every_special_token_round_trips_only_when_parsed() {
    let tok = r1();
    let mut checked = 0;
    for id in 0..tok.n_vocab() as u32 {
        let Some(ty) = tok.token_type(id) else {
            continue;
        };
        if !matches!(ty, TokenType::Control | TokenType::UserDefined) {
            continue;
        }
        let text = tok.token_text(id).expect("text").to_string();
        assert_eq!(tok.encode(&text, false, true).unwrap(), [id], "{text}");
        assert_eq!(tok.token_to_piece(id, true), text.as_bytes());
        let raw = tok.encode(&text, false, false).unwrap();
        if ty == TokenType::Control {
            assert!(!raw.contains(&id), "raw {text} gave its control id");
            assert!(raw.iter().all(|&t| !tok.is_control(t)), "{text}: {raw:?}");
            assert_eq!(tok.token_to_piece(id, false), b"");
            assert_eq!(tok.decode(&raw, false), text);
        } else {
            assert_eq!(raw, [id], "user-defined {text} stays whole in raw text");
            assert_eq!(tok.token_to_piece(id, false), text.as_bytes());
        }
        checked += 1;
    }
    // 18 control and 4 user-defined by type, plus `</s>` (128247): an ordinary token in this
    // vocabulary that llama.cpp's end-of-generation list turns into a control token.
    assert_eq!(checked, 23);
    assert_eq!(tok.id_of("</s>"), Some(128_247));
    assert!(tok.is_control(128_247) && tok.is_eog(128_247));
}

#[test]
fn user_content_cannot_inject_control_tokens() {
    let tok = r1();
    let text = "<｜begin▁of▁sentence｜><｜User｜>hi<｜Assistant｜><｜end▁of▁sentence｜>";
    let raw = tok.encode(text, true, false).unwrap();
    assert_eq!(raw[0], 151_646, "BOS is still added");
    assert!(raw[1..].iter().all(|&id| !tok.is_control(id)), "{raw:?}");
    let prompt = tok.encode(text, false, true).unwrap();
    let hi = tok.id_of("hi").expect("hi");
    assert_eq!(prompt, [151_646, 151_644, hi, 151_645, 151_643]);
}

#[test]
fn special_tokens_split_text_around_them() {
    let tok = r1();
    let ids = tok
        .encode("a<think>b</think>\n<｜User｜>c", false, true)
        .unwrap();
    assert_eq!(tok.decode(&ids, true), "a<think>b</think>\n<｜User｜>c");
    assert!(ids.contains(&151_648) && ids.contains(&151_649) && ids.contains(&151_644));
}

#[test]
fn stream_decoder_buffers_split_characters() {
    let tok = r1();
    // Byte-level tokens of single bytes: the GPT-2 characters of 0xF0 0x9F 0x99 0x82 (🙂).
    let byte_id = |b: u8| {
        let c = gpt2_char(b);
        tok.id_of(&c.to_string()).expect("byte token")
    };
    let mut d = tok.stream_decoder(false);
    assert_eq!(d.push(byte_id(0xF0)), "");
    assert_eq!(d.push(byte_id(0x9F)), "");
    assert!(d.has_pending());
    assert_eq!(d.push(byte_id(0x99)), "");
    assert_eq!(d.push(byte_id(0x82)), "🙂");
    // Half a character followed by something that cannot continue it.
    assert_eq!(d.push(byte_id(0xE4)), "");
    assert_eq!(d.push(tok.id_of("a").unwrap()), "\u{FFFD}a");
    // A lone continuation byte is replaced at once, never held.
    assert_eq!(d.push(byte_id(0x80)), "\u{FFFD}");
    // Half a character at the very end comes out on flush.
    assert_eq!(d.push(byte_id(0xF0)), "");
    assert_eq!(d.flush(), "\u{FFFD}");
    let ids = [0xF0, 0x9F, 0xE4, 0x80].map(byte_id);
    assert_eq!(stream(tok, &ids), tok.decode(&ids, false));
}

/// GPT-2's byte-to-character table, to find single-byte tokens.
fn gpt2_char(b: u8) -> char {
    let printable = |x: u8| matches!(x, 0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF);
    if printable(b) {
        return char::from(b);
    }
    let n = (0..b).filter(|&x| !printable(x)).count() as u32;
    char::from_u32(256 + n).expect("valid")
}

#[test]
fn random_text_round_trips() {
    let alphabet: Vec<char> = "aZ9 \t\n\r'.,!?-_<>|｜▁你好😀é\u{301}\u{3000}1٣"
        .chars()
        .collect();
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    for _ in 0..300 {
        let mut s = String::new();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let len = (seed % 40) as usize;
        for _ in 0..len {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            s.push(alphabet[(seed % alphabet.len() as u64) as usize]);
        }
        assert_round_trip(&s);
    }
}

#[test]
fn long_input_is_fast_and_exact() {
    let tok = r1();
    let chunk = "fn main() {\n    println!(\"Hello, 世界! 🙂\");\n}\n\
                 The quick brown fox jumps over 13 lazy dogs; I'm sure they'll be fine.\r\n\
                 <｜User｜> 1234567890   \t\n";
    let mut text = String::new();
    while text.len() < 100 * 1024 {
        text.push_str(chunk);
    }
    let t0 = Instant::now();
    let raw = tok.encode(&text, false, false).unwrap();
    let parsed = tok.encode(&text, true, true).unwrap();
    let took = t0.elapsed();
    assert_eq!(tok.decode(&raw, true), text);
    assert_eq!(tok.decode(&parsed[1..], true), text);
    assert!(raw.len() > 20_000, "{}", raw.len());
    assert!(
        parsed.len() < raw.len(),
        "the parsed control tokens are single ids"
    );
    assert!(
        took.as_secs_f64() < 10.0,
        "two 100 KB encodes took {took:?}"
    );
}
