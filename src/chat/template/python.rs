//! Python's way of turning template values into text, so that a chat template renders exactly as
//! under Hugging Face's `apply_chat_template` (Jinja2 running in Python):
//!
//! - `{{ value }}` prints `str(value)`: `True`/`False`/`None`, floats as `repr` (`1e-07`, `10.0`),
//!   lists and dicts as their `repr` (`['a', 1]`, `{'k': None}`).
//! - the `tojson` filter is transformers' override, `json.dumps(x, ensure_ascii=False, indent=None,
//!   separators=None, sort_keys=False)`, not Jinja2's HTML-safe one: `", "` and `": "` between items,
//!   no `<`/`>`/`&` escaping, non-ASCII kept.

use std::fmt::Write as _;

use minijinja::value::{Kwargs, ValueKind};
use minijinja::{Error, ErrorKind, Output, State, Value};

/// Deeper structures than this are refused (a template can build a cycle through a namespace;
/// Python answers one with "Circular reference detected").
const MAX_DEPTH: usize = 256;

fn invalid(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg.into())
}

/// The environment's formatter: what `{{ value }}` writes.
pub fn format_output(out: &mut Output, _state: &mut State, value: &Value) -> Result<(), Error> {
    let written = match value.kind() {
        ValueKind::Undefined => Ok(()),
        ValueKind::String => out.write_str(value.as_str().unwrap_or_default()),
        _ => out.write_str(&py_str(value)?),
    };
    written.map_err(|_| Error::new(ErrorKind::WriteFailure, "could not write template output"))
}

/// Python's `str(value)`: strings as they are, everything else as its `repr`.
pub fn py_str(value: &Value) -> Result<String, Error> {
    match value.as_str() {
        Some(s) if value.kind() == ValueKind::String => Ok(s.to_string()),
        _ => {
            let mut out = String::new();
            py_repr(value, &mut out, 0)?;
            Ok(out)
        }
    }
}

fn py_repr(value: &Value, out: &mut String, depth: usize) -> Result<(), Error> {
    if depth > MAX_DEPTH {
        return Err(invalid("value is nested too deeply to print"));
    }
    match value.kind() {
        ValueKind::Undefined => {}
        ValueKind::None => out.push_str("None"),
        ValueKind::Bool => out.push_str(if value.is_true() { "True" } else { "False" }),
        ValueKind::Number => out.push_str(&number_text(value, false)),
        ValueKind::String => repr_str(value.as_str().unwrap_or_default(), out),
        ValueKind::Seq | ValueKind::Iterable => {
            let tuple = value.is_tuple();
            out.push(if tuple { '(' } else { '[' });
            let mut n = 0;
            for (i, item) in value.try_iter()?.enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                py_repr(&item, out, depth + 1)?;
                n += 1;
            }
            if tuple && n == 1 {
                out.push(',');
            }
            out.push(if tuple { ')' } else { ']' });
        }
        ValueKind::Map => {
            out.push('{');
            for (i, key) in value.try_iter()?.enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                py_repr(&key, out, depth + 1)?;
                out.push_str(": ");
                py_repr(&value.get_item(&key)?, out, depth + 1)?;
            }
            out.push('}');
        }
        _ => {
            let _ = write!(out, "{value}");
        }
    }
    Ok(())
}

/// Python's `repr(str)`: single quotes unless the text holds `'` and no `"`, and escapes for
/// what `str.isprintable()` rejects (control characters, and the separators and format
/// characters that show up in real text).
fn repr_str(s: &str, out: &mut String) {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || (0x7f..=0xa0).contains(&(c as u32)) || c == '\u{ad}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if not_printable(c) && (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if not_printable(c) => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

/// The assigned characters above U+00FF that Python's `str.isprintable()` rejects: spaces other
/// than U+0020 (Zs), line/paragraph separators, format characters (Cf) and private use (Co).
/// (Unassigned code points are left alone: that set moves with each Unicode version.)
fn not_printable(c: char) -> bool {
    matches!(c as u32,
        0x600..=0x605 | 0x61c | 0x6dd | 0x70f | 0x890 | 0x891 | 0x8e2 | 0x1680 | 0x180e
        | 0x2000..=0x200f | 0x2028..=0x202f | 0x205f..=0x2064 | 0x2066..=0x206f | 0x3000
        | 0xe000..=0xf8ff | 0xfeff | 0xfff9..=0xfffb | 0x110bd | 0x110cd | 0x13430..=0x13438
        | 0x1bca0..=0x1bca3 | 0x1d173..=0x1d17a | 0xe0001 | 0xe0020..=0xe007f
        | 0xf0000..=0xffffd | 0x100000..=0x10fffd)
}

/// A number as Python prints it: integers plainly, floats as `repr(float)` (`json.dumps` uses the
/// same text, except for the non-finite values it spells `NaN`/`Infinity`).
fn number_text(value: &Value, json: bool) -> String {
    if value.is_integer() {
        return value.to_string();
    }
    let f = f64::try_from(value.clone()).unwrap_or(f64::NAN);
    match (f.is_nan(), f.is_infinite(), json) {
        (true, _, true) => "NaN".into(),
        (true, _, false) => "nan".into(),
        (_, true, true) => if f > 0.0 { "Infinity" } else { "-Infinity" }.into(),
        (_, true, false) => if f > 0.0 { "inf" } else { "-inf" }.into(),
        _ => float_repr(f),
    }
}

/// Python's `repr(float)` of a finite value: the shortest digits that round-trip (Rust's `{:e}`
/// finds the same ones), positional when the exponent is in `-4..16`, else `d.ddde±XX`.
pub fn float_repr(f: f64) -> String {
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let n = digits.len() as i32;
    let mut out = String::from(sign);
    if (-4..16).contains(&exp) {
        let point = exp + 1;
        if point <= 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-point) as usize));
            out.push_str(&digits);
        } else if point < n {
            out.push_str(&digits[..point as usize]);
            out.push('.');
            out.push_str(&digits[point as usize..]);
        } else {
            out.push_str(&digits);
            out.extend(std::iter::repeat_n('0', (point - n) as usize));
            out.push_str(".0");
        }
    } else {
        out.push_str(&digits[..1]);
        if n > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(out, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    }
    out
}

/// The options of `json.dumps` that transformers' `tojson` passes through.
#[derive(Clone, Debug)]
pub struct JsonOptions {
    pub ensure_ascii: bool,
    /// The text of one indentation level; `None` writes everything on one line.
    pub indent: Option<String>,
    pub item_separator: String,
    pub key_separator: String,
    pub sort_keys: bool,
}

impl Default for JsonOptions {
    fn default() -> JsonOptions {
        JsonOptions {
            ensure_ascii: false,
            indent: None,
            item_separator: ", ".into(),
            key_separator: ": ".into(),
            sort_keys: false,
        }
    }
}

/// The `tojson` filter: `tojson(ensure_ascii=False, indent=None, separators=None,
/// sort_keys=False)`, the first two also by position as in transformers' signature.
pub fn tojson(
    value: &Value,
    ensure_ascii: Option<Value>,
    indent: Option<Value>,
    kwargs: Kwargs,
) -> Result<Value, Error> {
    let pick = |positional: Option<Value>, name: &str| -> Result<Option<Value>, Error> {
        match (positional, kwargs.has(name)) {
            (Some(_), true) => Err(Error::new(
                ErrorKind::TooManyArguments,
                format!("tojson got multiple values for argument '{name}'"),
            )),
            (Some(v), false) => Ok(Some(v)),
            (None, true) => kwargs.get::<Value>(name).map(Some),
            (None, false) => Ok(None),
        }
    };
    let mut opts = JsonOptions::default();
    if let Some(v) = pick(ensure_ascii, "ensure_ascii")? {
        opts.ensure_ascii = v.is_true();
    }
    if let Some(v) = pick(indent, "indent")? {
        opts.indent = indent_text(&v)?;
        if opts.indent.is_some() {
            opts.item_separator = ",".into();
        }
    }
    if let Some(v) = pick(None, "separators")? {
        if !v.is_none() {
            let parts: Vec<Value> = v.try_iter()?.collect();
            match parts.as_slice() {
                [a, b] if a.as_str().is_some() && b.as_str().is_some() => {
                    opts.item_separator = a.as_str().unwrap_or_default().to_string();
                    opts.key_separator = b.as_str().unwrap_or_default().to_string();
                }
                _ => return Err(invalid("tojson: separators must be a pair of strings")),
            }
        }
    }
    if let Some(v) = pick(None, "sort_keys")? {
        opts.sort_keys = v.is_true();
    }
    kwargs.assert_all_used()?;
    let mut out = String::new();
    dumps(value, &opts, 0, &mut out)?;
    Ok(Value::from(out))
}

/// `indent` as `json.dumps` reads it: none, a string used as is, or a number of spaces.
fn indent_text(v: &Value) -> Result<Option<String>, Error> {
    match v.kind() {
        ValueKind::None | ValueKind::Undefined => Ok(None),
        ValueKind::String => Ok(Some(v.as_str().unwrap_or_default().to_string())),
        ValueKind::Bool => Ok(Some(if v.is_true() { " " } else { "" }.to_string())),
        ValueKind::Number if v.is_integer() => {
            let n = v.as_i64().unwrap_or(0).clamp(0, 64) as usize;
            Ok(Some(" ".repeat(n)))
        }
        _ => Err(invalid(format!(
            "tojson: indent must be an integer or a string, not {}",
            v.kind()
        ))),
    }
}

/// `json.dumps` of one value into `out`.
pub fn dumps(
    value: &Value,
    opts: &JsonOptions,
    level: usize,
    out: &mut String,
) -> Result<(), Error> {
    if level > MAX_DEPTH {
        return Err(invalid(
            "tojson: value is nested too deeply (circular reference?)",
        ));
    }
    match value.kind() {
        ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if value.is_true() { "true" } else { "false" }),
        ValueKind::Number => out.push_str(&number_text(value, true)),
        ValueKind::String => json_str(value.as_str().unwrap_or_default(), opts.ensure_ascii, out),
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<Value> = value.try_iter()?.collect();
            write_container(out, opts, level, ('[', ']'), &items, |item, out| {
                dumps(item, opts, level + 1, out)
            })?;
        }
        ValueKind::Map => {
            let mut entries = Vec::new();
            for key in value.try_iter()? {
                let item = value.get_item(&key)?;
                entries.push((json_key(&key)?, item));
            }
            if opts.sort_keys {
                entries.sort_by(|a, b| a.0.cmp(&b.0));
            }
            write_container(
                out,
                opts,
                level,
                ('{', '}'),
                &entries,
                |(key, item), out| {
                    json_str(key, opts.ensure_ascii, out);
                    out.push_str(&opts.key_separator);
                    dumps(item, opts, level + 1, out)
                },
            )?;
        }
        kind => {
            let type_name = match kind {
                ValueKind::Undefined => "Undefined".to_string(),
                other => other.to_string(),
            };
            return Err(invalid(format!(
                "tojson: Object of type {type_name} is not JSON serializable"
            )));
        }
    }
    Ok(())
}

/// Brackets, separators and Python's indentation around the items of a list or dict.
fn write_container<T>(
    out: &mut String,
    opts: &JsonOptions,
    level: usize,
    (open, close): (char, char),
    items: &[T],
    mut write_item: impl FnMut(&T, &mut String) -> Result<(), Error>,
) -> Result<(), Error> {
    out.push(open);
    if items.is_empty() {
        out.push(close);
        return Ok(());
    }
    let newline = |out: &mut String, depth: usize| {
        if let Some(indent) = &opts.indent {
            out.push('\n');
            for _ in 0..depth {
                out.push_str(indent);
            }
        }
    };
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(&opts.item_separator);
        }
        newline(out, level + 1);
        write_item(item, out)?;
    }
    newline(out, level);
    out.push(close);
    Ok(())
}

/// A dict key as `json.dumps` writes it: strings as they are, numbers, booleans and None
/// converted to their JSON text.
fn json_key(key: &Value) -> Result<String, Error> {
    match key.kind() {
        ValueKind::String => Ok(key.as_str().unwrap_or_default().to_string()),
        ValueKind::Number => Ok(number_text(key, true)),
        ValueKind::Bool => Ok(if key.is_true() { "true" } else { "false" }.to_string()),
        ValueKind::None => Ok("null".to_string()),
        kind => Err(invalid(format!(
            "tojson: keys must be str, int, float, bool or None, not {kind}"
        ))),
    }
}

/// A JSON string as Python writes it: `"` and `\` escaped, control characters as `\n`-style
/// escapes or `\u00XX`; with `ensure_ascii` every non-ASCII character as `\uXXXX` (surrogate
/// pairs above the BMP).
fn json_str(s: &str, ensure_ascii: bool, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if ensure_ascii && (c as u32) > 0x7e => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_repr_matches_python() {
        // Expected values from python3: [repr(x) for x in ...].
        let cases = [
            (1.5, "1.5"),
            (10.0, "10.0"),
            (1e-7, "1e-07"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (-2.5e-10, "-2.5e-10"),
            (0.1, "0.1"),
            (1.0 / 3.0, "0.3333333333333333"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1e300, "1e+300"),
            (5e-324, "5e-324"),
            (123.456, "123.456"),
        ];
        for (f, want) in cases {
            assert_eq!(float_repr(f), want, "repr({f:?})");
        }
    }

    #[test]
    fn str_repr_matches_python() {
        // python3 -c "print(repr(...))" for each.
        let cases = [
            ("abc", "'abc'"),
            ("it's", "\"it's\""),
            ("both ' and \"", "'both \\' and \"'"),
            ("a\nb\tc\\", "'a\\nb\\tc\\\\'"),
            ("\u{1}\u{7f}\u{a0}é", "'\\x01\\x7f\\xa0é'"),
            ("\u{2028}日本", "'\\u2028日本'"),
            ("\u{e000}\u{e0001}", "'\\ue000\\U000e0001'"),
        ];
        for (s, want) in cases {
            let mut out = String::new();
            repr_str(s, &mut out);
            assert_eq!(out, want, "repr({s:?})");
        }
    }
}
