//! Python's `repr()` of JSON values, for the display strings Celery puts on
//! the wire: `argsrepr`/`kwargsrepr` headers, the `args`, `kwargs` and
//! `result` fields of task events, and exception reprs like
//! `ValueError('bad value 7')`.
//!
//! Celery renders these in Python from the decoded values; we only have
//! JSON, so a JSON array shows as a Python list (`[2, 3]`, as a Celery client
//! that sent `args=[2, 3]` shows it), an object as a dict with its keys in
//! wire order (Python dicts keep insertion order), `null`/`true`/`false` as
//! `None`/`True`/`False`, strings with Python's quoting and escapes, and
//! floats in Python's shortest round-trip form (`1e-05`, `1e+16`, `7.0`).
//!
//! The rendering streams over the raw text with a serde visitor: no
//! intermediate `Value` (which would sort object keys), and past `limit`
//! bytes the rest is only skipped. Long output is cut at `limit` with `...`,
//! like Celery's `saferepr` (which cuts inside containers instead; these
//! strings are for display only).

use std::fmt::Write as _;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::ExceptionInfo;

/// Celery's default `argsrepr_maxsize`, `kwargsrepr_maxsize` and `resultrepr_maxsize`.
pub const REPR_LIMIT: usize = 1024;

/// Python's repr of a JSON document, cut at `limit` bytes. Text that is not
/// JSON is returned as it is (cut the same way).
pub fn python_repr(json: &str, limit: usize) -> String {
    let mut out = String::with_capacity(json.len().min(limit) + 8);
    let mut deserializer = serde_json::Deserializer::from_str(json);
    let rendered = Repr { out: &mut out, limit }.deserialize(&mut deserializer);
    if rendered.is_err() {
        out.clear();
        out.push_str(json);
    }
    cut(out, limit)
}

/// Python's repr of one value.
pub fn value_repr(value: &Value) -> String {
    python_repr(&value.to_string(), usize::MAX)
}

/// `ValueError('bad value 7')`: the repr of the exception Celery would
/// rebuild from this document (the bare class name, then its args).
pub fn exception_repr(exception: &ExceptionInfo) -> String {
    let args: Vec<String> = exception.exc_message.iter().map(value_repr).collect();
    format!("{}({})", exception.exc_type, args.join(", "))
}

/// Python's `str()` of the exception: its only argument as text, or the
/// repr of the argument tuple.
pub fn exception_str(exception: &ExceptionInfo) -> String {
    match exception.exc_message.as_slice() {
        [] => String::new(),
        [Value::String(text)] => text.clone(),
        [single] => value_repr(single),
        several => format!("({})", several.iter().map(value_repr).collect::<Vec<_>>().join(", ")),
    }
}

fn cut(mut text: String, limit: usize) -> String {
    if text.len() > limit {
        let mut end = limit;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("...");
    }
    text
}

/// Writes the repr of whatever it deserializes; past `limit` it only skips.
struct Repr<'a> {
    out: &'a mut String,
    limit: usize,
}

impl Repr<'_> {
    fn full(&self) -> bool {
        self.out.len() > self.limit
    }
}

impl<'de> DeserializeSeed<'de> for Repr<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

/// One element of a list or one key of a dict: writes the separator only
/// once it knows there is an element (serde calls a seed only for one).
struct Item<'a> {
    out: &'a mut String,
    limit: usize,
    first: bool,
}

impl<'de> DeserializeSeed<'de> for Item<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        if !self.first {
            self.out.push_str(", ");
        }
        deserializer.deserialize_any(Repr { out: self.out, limit: self.limit })
    }
}

impl<'de> Visitor<'de> for Repr<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        self.out.push_str("None");
        Ok(())
    }

    fn visit_bool<E>(self, value: bool) -> Result<(), E> {
        self.out.push_str(if value { "True" } else { "False" });
        Ok(())
    }

    fn visit_i64<E>(self, value: i64) -> Result<(), E> {
        let _ = write!(self.out, "{value}");
        Ok(())
    }

    fn visit_u64<E>(self, value: u64) -> Result<(), E> {
        let _ = write!(self.out, "{value}");
        Ok(())
    }

    fn visit_f64<E>(self, value: f64) -> Result<(), E> {
        float_repr(value, self.out);
        Ok(())
    }

    fn visit_str<E>(self, value: &str) -> Result<(), E> {
        str_repr(value, self.out);
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.out.push('[');
        let mut first = true;
        while !self.full() {
            if seq.next_element_seed(Item { out: self.out, limit: self.limit, first })?.is_none() {
                self.out.push(']');
                return Ok(());
            }
            first = false;
        }
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.out.push('{');
        let mut first = true;
        while !self.full() {
            if map.next_key_seed(Item { out: self.out, limit: self.limit, first })?.is_none() {
                self.out.push('}');
                return Ok(());
            }
            first = false;
            self.out.push_str(": ");
            map.next_value_seed(Repr { out: self.out, limit: self.limit })?;
        }
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(())
    }
}

/// Python's float repr. Rust's `{:?}` is also the shortest round-trip
/// form and switches to an exponent at the same points (below 1e-4, from
/// 1e16); only the exponent is spelled differently (`1e-5` vs `1e-05`).
fn float_repr(value: f64, out: &mut String) {
    if value.is_nan() {
        out.push_str("nan");
        return;
    }
    if value.is_infinite() {
        out.push_str(if value > 0.0 { "inf" } else { "-inf" });
        return;
    }
    let text = format!("{value:?}");
    match text.split_once('e') {
        Some((mantissa, exponent)) => {
            let (sign, digits) = match exponent.strip_prefix('-') {
                Some(digits) => ('-', digits),
                None => ('+', exponent),
            };
            let _ = write!(out, "{mantissa}e{sign}{digits:0>2}");
        }
        None => out.push_str(&text),
    }
}

/// Python's str repr: single quotes unless the text has a `'` and no `"`;
/// non-printable characters escaped as `\xNN`, `\uNNNN` or `\UNNNNNNNN`.
fn str_repr(text: &str, out: &mut String) {
    let quote = if text.contains('\'') && !text.contains('"') { '"' } else { '\'' };
    out.push(quote);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if is_printable(c) => out.push(c),
            c => {
                let _ = match c as u32 {
                    code @ 0..=0xff => write!(out, "\\x{code:02x}"),
                    code @ 0x100..=0xffff => write!(out, "\\u{code:04x}"),
                    code => write!(out, "\\U{code:08x}"),
                };
            }
        }
    }
    out.push(quote);
}

/// Python's `str.isprintable` for the characters that matter in practice:
/// controls, separators other than the space, format characters and the
/// private use area are escaped. (Unassigned code points, which Python also
/// escapes, would need Unicode tables; they are shown as they are.)
fn is_printable(c: char) -> bool {
    !(c.is_control()
        || matches!(c,
            '\u{a0}' | '\u{ad}' | '\u{1680}' | '\u{2000}'..='\u{200f}' | '\u{2028}'..='\u{202f}' | '\u{205f}'..='\u{2064}'
            | '\u{3000}' | '\u{feff}' | '\u{e000}'..='\u{f8ff}'))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected strings are Python 3.11's `repr(json.loads(...))`.
    #[test]
    fn matches_python_for_scalars_and_containers() {
        assert_eq!(python_repr("[2, 3]", REPR_LIMIT), "[2, 3]");
        assert_eq!(python_repr(r#"{"b": 1, "a": [true, false, null]}"#, REPR_LIMIT), "{'b': 1, 'a': [True, False, None]}");
        assert_eq!(python_repr(r#"[[1,[2]],{"k":{}}]"#, REPR_LIMIT), "[[1, [2]], {'k': {}}]");
        assert_eq!(python_repr("{}", REPR_LIMIT), "{}");
        assert_eq!(python_repr("[]", REPR_LIMIT), "[]");
        assert_eq!(python_repr("5", REPR_LIMIT), "5");
        assert_eq!(python_repr("-9223372036854775808", REPR_LIMIT), "-9223372036854775808");
        assert_eq!(python_repr("18446744073709551615", REPR_LIMIT), "18446744073709551615");
    }

    #[test]
    fn floats_are_spelled_as_python_does() {
        assert_eq!(
            python_repr("[1.5, 7.0, 1e16, 1e15, 0.0001, 1e-05, 1.5e-7, -0.0, 123456789.123, 1e300]", REPR_LIMIT),
            "[1.5, 7.0, 1e+16, 1000000000000000.0, 0.0001, 1e-05, 1.5e-07, -0.0, 123456789.123, 1e+300]"
        );
    }

    #[test]
    fn strings_are_quoted_and_escaped_as_python_does() {
        let json = r#"["it's", "say \"hi\"", "both ' and \"", "tab\there\nnl\r", "héllo", "\\", "\u0007\u007f\u00a0\u2028\u00ad\ue000", "😀"]"#;
        let expected = r#"["it's", 'say "hi"', 'both \' and "', 'tab\there\nnl\r', 'héllo', '\\', '\x07\x7f\xa0\u2028\xad\ue000', '😀']"#;
        assert_eq!(python_repr(json, REPR_LIMIT), expected);
    }

    #[test]
    fn long_values_are_cut_and_not_json_is_shown_as_is() {
        let long = serde_json::to_string(&(0..10_000).collect::<Vec<u32>>()).unwrap();
        let shown = python_repr(&long, 20);
        assert_eq!(shown, "[0, 1, 2, 3, 4, 5, 6...");
        assert_eq!(python_repr("not json", REPR_LIMIT), "not json");
        assert_eq!(python_repr("ééé", 3), "é...");
    }

    #[test]
    fn exceptions_render_as_python_would() {
        let exception = ExceptionInfo::new("builtins", "ValueError", "bad value 7");
        assert_eq!(exception_repr(&exception), "ValueError('bad value 7')");
        assert_eq!(exception_str(&exception), "bad value 7");
        let several = ExceptionInfo { exc_type: "MyError".into(), exc_message: vec!["a".into(), 1.into()], exc_module: "app".into() };
        assert_eq!(exception_repr(&several), "MyError('a', 1)");
        assert_eq!(exception_str(&several), "('a', 1)");
        let limit = ExceptionInfo::new("billiard.exceptions", "TimeLimitExceeded", serde_json::json!(1.0));
        assert_eq!(exception_repr(&limit), "TimeLimitExceeded(1.0)");
    }
}
