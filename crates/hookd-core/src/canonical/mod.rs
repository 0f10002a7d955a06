//! The one canonical text of an event's `data`: exactly what JavaScript's
//! `JSON.stringify(JSON.parse(text))` returns, so that a receiver which re-serializes the parsed body
//! (the original specification's Node receiver) computes the bytes hookd signed.
//!
//! - no insignificant whitespace; strings keep every character as UTF-8 except the escapes
//!   `JSON.stringify` writes (`\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`, `\u00XX` for other controls);
//! - numbers in JavaScript's shortest form (`1.0` -> `1`, `1e2` -> `100`, `1e21` -> `1e+21`), except
//!   integers beyond 2^53, which JavaScript cannot hold exactly: they are kept as written;
//! - object keys in JavaScript's order: array-index keys (`"0"` .. `"4294967294"`) first, ascending,
//!   then the others in their original order.
//!
//! Refused, with the path of the offending value: syntax errors, duplicate keys (parsers disagree on
//! which value wins), lone surrogate escapes (`"\ud800"`, which strict parsers refuse), numbers beyond
//! the range of a double, and nesting deeper than [`MAX_DEPTH`].
//!
//! [`python_sorted`] writes the text Python's `json.dumps(json.loads(text), sort_keys=True)` returns,
//! for the original specification's Python receiver.

use std::fmt::Write as _;

/// Deepest nesting of arrays and objects accepted (the limit serde_json applies too).
pub const MAX_DEPTH: usize = 128;

/// 2^53: integers above this (in magnitude) are kept as written.
const MAX_SAFE: u128 = 1 << 53;
/// The largest array index JavaScript orders first: 2^32 - 2.
const MAX_ARRAY_INDEX: u64 = 4_294_967_294;

/// Why a text has no canonical form, and where (`.a.b[2]`; empty for the whole text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}{}", if path.is_empty() { String::new() } else { format!(" at {path}") })]
pub struct JsonError {
    /// The offending value, as a path below the text's root (`.items[3].name`).
    pub path: String,
    pub kind: JsonErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonErrorKind {
    #[error("is not valid JSON ({0})")]
    Syntax(&'static str),
    #[error("has a duplicate key")]
    DuplicateKey,
    #[error("has a lone surrogate escape (not valid Unicode)")]
    LoneSurrogate,
    #[error("has a number beyond the range of a double")]
    NumberOutOfRange,
    #[error("nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

/// A parsed JSON value; numbers keep their literal, objects their key order.
#[derive(Debug)]
enum Value<'a> {
    Null,
    Bool(bool),
    Number(Number<'a>),
    String(String),
    Array(Vec<Value<'a>>),
    Object(Vec<(String, Value<'a>)>),
}

#[derive(Debug)]
struct Number<'a> {
    /// As written.
    literal: &'a str,
    /// The double JavaScript reads it as.
    value: f64,
    /// An integer literal beyond 2^53: written as it came.
    keep: bool,
}

/// `JSON.stringify(JSON.parse(text))`, or why `text` is refused.
pub fn canonicalize(text: &str) -> Result<String, JsonError> {
    let value = parse(text)?;
    let mut out = String::with_capacity(text.len());
    write_js(&mut out, &value);
    Ok(out)
}

/// Python's `json.dumps(json.loads(text), sort_keys=True)`: keys sorted by code point, `", "` and
/// `": "` separators, every non-ASCII character as a `\uXXXX` escape, floats in Python's `repr`.
pub fn python_sorted(text: &str) -> Result<String, JsonError> {
    let value = parse(text)?;
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    write_python(&mut out, &value);
    Ok(out)
}

fn parse(text: &str) -> Result<Value<'_>, JsonError> {
    let mut parser = Parser {
        bytes: text.as_bytes(),
        text,
        at: 0,
        path: String::new(),
    };
    parser.skip_whitespace();
    let value = parser.value(0)?;
    parser.skip_whitespace();
    if parser.at != parser.bytes.len() {
        return Err(parser.error(JsonErrorKind::Syntax("trailing characters")));
    }
    Ok(value)
}

struct Parser<'a> {
    bytes: &'a [u8],
    text: &'a str,
    at: usize,
    /// The path of the value being parsed.
    path: String,
}

impl<'a> Parser<'a> {
    fn error(&self, kind: JsonErrorKind) -> JsonError {
        JsonError {
            path: self.path.clone(),
            kind,
        }
    }

    fn syntax(&self, what: &'static str) -> JsonError {
        self.error(JsonErrorKind::Syntax(what))
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    fn literal(&mut self, word: &'static str, value: Value<'a>) -> Result<Value<'a>, JsonError> {
        if self.bytes[self.at..].starts_with(word.as_bytes()) {
            self.at += word.len();
            Ok(value)
        } else {
            Err(self.syntax("unexpected character"))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value<'a>, JsonError> {
        match self.peek() {
            None => Err(self.syntax("unexpected end")),
            Some(b'n') => self.literal("null", Value::Null),
            Some(b't') => self.literal("true", Value::Bool(true)),
            Some(b'f') => self.literal("false", Value::Bool(false)),
            Some(b'"') => self.string().map(Value::String),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b'[') => self.array(depth + 1),
            Some(b'{') => self.object(depth + 1),
            Some(_) => Err(self.syntax("unexpected character")),
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value<'a>, JsonError> {
        if depth > MAX_DEPTH {
            return Err(self.error(JsonErrorKind::TooDeep));
        }
        self.at += 1;
        let mut items = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(b']') {
            self.at += 1;
            return Ok(Value::Array(items));
        }
        let base = self.path.len();
        loop {
            let _ = write!(self.path, "[{}]", items.len());
            self.skip_whitespace();
            items.push(self.value(depth)?);
            self.path.truncate(base);
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b']') => {
                    self.at += 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.syntax("expected ',' or ']'")),
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value<'a>, JsonError> {
        if depth > MAX_DEPTH {
            return Err(self.error(JsonErrorKind::TooDeep));
        }
        self.at += 1;
        let mut members: Vec<(String, Value<'a>)> = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.at += 1;
            return Ok(Value::Object(members));
        }
        let base = self.path.len();
        loop {
            self.skip_whitespace();
            if self.peek() != Some(b'"') {
                return Err(self.syntax("expected a key"));
            }
            let key = self.string()?;
            push_key(&mut self.path, &key);
            if members.iter().any(|(k, _)| *k == key) {
                return Err(self.error(JsonErrorKind::DuplicateKey));
            }
            self.skip_whitespace();
            if self.peek() != Some(b':') {
                return Err(self.syntax("expected ':'"));
            }
            self.at += 1;
            self.skip_whitespace();
            let value = self.value(depth)?;
            self.path.truncate(base);
            members.push((key, value));
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b'}') => {
                    self.at += 1;
                    return Ok(Value::Object(members));
                }
                _ => return Err(self.syntax("expected ',' or '}'")),
            }
        }
    }

    fn string(&mut self) -> Result<String, JsonError> {
        self.at += 1;
        let mut out = String::new();
        loop {
            let start = self.at;
            let rest = &self.bytes[start..];
            self.at += rest
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
                .unwrap_or(rest.len());
            // `start..at` lies between ASCII bytes (or the ends), so it is on character boundaries.
            out.push_str(&self.text[start..self.at]);
            match self.peek() {
                None => return Err(self.syntax("unterminated string")),
                Some(b'"') => {
                    self.at += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.at += 1;
                    self.escape(&mut out)?;
                }
                Some(_) => return Err(self.syntax("control character in a string")),
            }
        }
    }

    fn escape(&mut self, out: &mut String) -> Result<(), JsonError> {
        let Some(b) = self.peek() else {
            return Err(self.syntax("unterminated string"));
        };
        self.at += 1;
        let c = match b {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let unit = self.hex4()?;
                match unit {
                    0xD800..=0xDBFF => {
                        if !self.bytes[self.at..].starts_with(b"\\u") {
                            return Err(self.error(JsonErrorKind::LoneSurrogate));
                        }
                        self.at += 2;
                        let low = self.hex4()?;
                        if !(0xDC00..=0xDFFF).contains(&low) {
                            return Err(self.error(JsonErrorKind::LoneSurrogate));
                        }
                        let code = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
                        char::from_u32(code).ok_or_else(|| self.syntax("invalid escape"))?
                    }
                    0xDC00..=0xDFFF => return Err(self.error(JsonErrorKind::LoneSurrogate)),
                    _ => char::from_u32(unit).ok_or_else(|| self.syntax("invalid escape"))?,
                }
            }
            _ => return Err(self.syntax("invalid escape")),
        };
        out.push(c);
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let digits = self
            .bytes
            .get(self.at..self.at + 4)
            .ok_or_else(|| self.syntax("invalid escape"))?;
        let mut unit = 0u32;
        for &d in digits {
            let v = (d as char)
                .to_digit(16)
                .ok_or_else(|| self.syntax("invalid escape"))?;
            unit = unit * 16 + v;
        }
        self.at += 4;
        Ok(unit)
    }

    fn digits(&mut self) -> usize {
        let start = self.at;
        while let Some(b'0'..=b'9') = self.peek() {
            self.at += 1;
        }
        self.at - start
    }

    fn number(&mut self) -> Result<Value<'a>, JsonError> {
        let start = self.at;
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        let int_start = self.at;
        let int_digits = self.digits();
        if int_digits == 0 || (int_digits > 1 && self.bytes[int_start] == b'0') {
            return Err(self.syntax("invalid number"));
        }
        let mut integer = true;
        if self.peek() == Some(b'.') {
            self.at += 1;
            integer = false;
            if self.digits() == 0 {
                return Err(self.syntax("invalid number"));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            integer = false;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            if self.digits() == 0 {
                return Err(self.syntax("invalid number"));
            }
        }
        let literal = &self.text[start..self.at];
        let value: f64 = literal.parse().map_err(|_| self.syntax("invalid number"))?;
        if !value.is_finite() {
            return Err(self.error(JsonErrorKind::NumberOutOfRange));
        }
        let keep = integer
            && (int_digits > 20
                || self.text[int_start..self.at]
                    .parse::<u128>()
                    .map_or(true, |magnitude| magnitude > MAX_SAFE));
        Ok(Value::Number(Number {
            literal,
            value,
            keep,
        }))
    }
}

/// JavaScript's `Number.prototype.toString` for a finite double (`-0` is `0`), or the literal of an
/// integer beyond 2^53.
fn write_js_number(out: &mut String, number: &Number<'_>) {
    if number.keep {
        out.push_str(number.literal);
    } else if number.value == 0.0 {
        out.push('0');
    } else {
        out.push_str(ryu_js::Buffer::new().format_finite(number.value));
    }
}

/// Appends `.key` (or `["key"]` when the key is not a plain identifier) to an error path.
fn push_key(path: &mut String, key: &str) {
    let plain = key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
    if plain {
        path.push('.');
        path.push_str(key);
    } else {
        path.push('[');
        write_js_string(path, key);
        path.push(']');
    }
}

/// The array index a key names, if it is one: JavaScript orders these first, ascending.
fn array_index(key: &str) -> Option<u64> {
    let bytes = key.as_bytes();
    if bytes.is_empty() || bytes.len() > 10 || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if bytes.len() > 1 && bytes[0] == b'0' {
        return None;
    }
    key.parse().ok().filter(|index| *index <= MAX_ARRAY_INDEX)
}

fn write_js(out: &mut String, value: &Value<'_>) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(number) => write_js_number(out, number),
        Value::String(text) => write_js_string(out, text),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_js(out, item);
            }
            out.push(']');
        }
        Value::Object(members) => {
            let mut indexed: Vec<(u64, usize)> = members
                .iter()
                .enumerate()
                .filter_map(|(i, (key, _))| array_index(key).map(|index| (index, i)))
                .collect();
            indexed.sort_unstable();
            let named = members
                .iter()
                .enumerate()
                .filter(|(_, (key, _))| array_index(key).is_none())
                .map(|(i, _)| i);
            out.push('{');
            let order = indexed.iter().map(|(_, i)| *i).chain(named);
            for (n, i) in order.enumerate() {
                if n > 0 {
                    out.push(',');
                }
                let (key, value) = &members[i];
                write_js_string(out, key);
                out.push(':');
                write_js(out, value);
            }
            out.push('}');
        }
    }
}

/// A string as `JSON.stringify` writes it.
fn write_js_string(out: &mut String, text: &str) {
    out.push('"');
    let mut rest = text;
    // Runs of characters written as they are (everything but `"`, `\` and controls, which are
    // all ASCII) are copied whole.
    while let Some(at) = rest
        .bytes()
        .position(|b| b == b'"' || b == b'\\' || b < 0x20)
    {
        out.push_str(&rest[..at]);
        match rest.as_bytes()[at] {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x08 => out.push_str("\\b"),
            0x0c => out.push_str("\\f"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            control => {
                let _ = write!(out, "\\u{control:04x}");
            }
        }
        // The byte at `at` is ASCII, so `at + 1` is a character boundary.
        rest = &rest[at + 1..];
    }
    out.push_str(rest);
    out.push('"');
}

fn write_python(out: &mut String, value: &Value<'_>) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(number) => write_python_number(out, number),
        Value::String(text) => write_python_string(out, text),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_python(out, item);
            }
            out.push(']');
        }
        Value::Object(members) => {
            let mut sorted: Vec<&(String, Value<'_>)> = members.iter().collect();
            // Byte order of UTF-8 is code point order, which is how Python sorts `str` keys.
            sorted.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            out.push('{');
            for (i, (key, value)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_python_string(out, key);
                out.push_str(": ");
                write_python(out, value);
            }
            out.push('}');
        }
    }
}

/// `json.loads` makes a literal without `.`/`e` an `int` (printed as its digits) and any other a
/// `float` (printed with `float.__repr__`).
fn write_python_number(out: &mut String, number: &Number<'_>) {
    let literal = number.literal;
    if !literal.contains(['.', 'e', 'E']) {
        // JSON forbids leading zeros, so only "-0" differs from Python's `str(int)`.
        out.push_str(if literal == "-0" { "0" } else { literal });
        return;
    }
    out.push_str(&python_float_repr(number.value));
}

/// Python's `repr(float)`: the shortest round-tripping digits, in positional notation when the
/// decimal exponent is in `-4..16`, otherwise as `d.ddde+XX`; always with a `.0` or an exponent.
fn python_float_repr(value: f64) -> String {
    if value == 0.0 {
        return if value.is_sign_negative() {
            "-0.0"
        } else {
            "0.0"
        }
        .to_owned();
    }
    // Rust's `{:e}` prints the shortest round-tripping digits: `-1.2345e-7`.
    let scientific = format!("{:e}", value.abs());
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if value < 0.0 { "-" } else { "" };
    // Python's `decpt`: value = 0.DIGITS * 10^decpt.
    let decpt = exponent + 1;
    if decpt <= -4 || decpt > 16 {
        let (first, rest) = digits.split_at(1);
        let dot = if rest.is_empty() { "" } else { "." };
        let exp_sign = if exponent < 0 { '-' } else { '+' };
        return format!("{sign}{first}{dot}{rest}e{exp_sign}{:02}", exponent.abs());
    }
    let len = digits.len() as i32;
    if decpt <= 0 {
        let zeros = "0".repeat((-decpt) as usize);
        format!("{sign}0.{zeros}{digits}")
    } else if decpt >= len {
        let zeros = "0".repeat((decpt - len) as usize);
        format!("{sign}{digits}{zeros}.0")
    } else {
        let (int_part, frac_part) = digits.split_at(decpt as usize);
        format!("{sign}{int_part}.{frac_part}")
    }
}

/// A string as Python's `json.dumps` writes it with `ensure_ascii=True` (the default).
fn write_python_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            ' '..='~' => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests;
