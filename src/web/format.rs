//! Formatting helpers the templates call (stable output: live regions compare HTML).

use std::borrow::Borrow;

use time::macros::format_description;

use crate::clock::at;
pub use crate::clock::iso;

/// A short human form in UTC, e.g. `26 Nov 14:02`.
pub fn short(ms: impl Borrow<i64>) -> String {
    at(*ms.borrow())
        .format(format_description!("[day padding:none] [month repr:short] [hour]:[minute]"))
        .unwrap_or_default()
}

/// A number with thin grouping, e.g. `12 345`.
pub fn count(n: impl Borrow<i64>) -> String {
    let n = *n.borrow();
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push('\u{202f}');
        }
        out.push(c);
    }
    out
}

/// The first `max` characters of `text`, with an ellipsis when cut.
pub fn excerpt(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", text[..cut].trim_end()),
        None => text.to_owned(),
    }
}

/// Characters left as they are in a query parameter: unreserved ones, and `/` so paths stay readable.
const QUERY_VALUE: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~').remove(b'/');

/// Percent-encodes a value for a query parameter.
pub fn urlencode(raw: &str) -> String {
    percent_encoding::utf8_percent_encode(raw, QUERY_VALUE).to_string()
}

/// `word` or `word` + `s` for `n`.
pub fn plural(n: i64, word: &str) -> String {
    if n == 1 { word.to_owned() } else { format!("{word}s") }
}

/// The label of an event kind (`rage_click` → `rage click`).
pub fn kind(kind: &str) -> String {
    kind.replace('_', " ")
}

/// A UTC day, e.g. `26 Nov` (the charts' day labels).
pub fn day(ms: impl Borrow<i64>) -> String {
    at(*ms.borrow()).format(format_description!("[day padding:none] [month repr:short]")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times_and_counts() {
        assert_eq!(iso(0), "1970-01-01T00:00:00Z");
        assert_eq!(short(86_400_000 + 3_600_000), "2 Jan 01:00");
        assert_eq!(count(1234567), "1\u{202f}234\u{202f}567");
        assert_eq!(count(12), "12");
        assert_eq!(plural(1, "widget"), "widget");
        assert_eq!(plural(2, "widget"), "widgets");
        assert_eq!(excerpt("héllo world", 5), "héllo…");
        assert_eq!(excerpt("short", 10), "short");
        assert_eq!(urlencode("/hubs/a b?x=1&y"), "/hubs/a%20b%3Fx%3D1%26y");
    }
}
