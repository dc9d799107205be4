//! The check of a JSON body: every string and every key, however deeply nested, for NUL and
//! lone surrogates, by a minimal reader that knows where in the document it is.

use super::refusal::{Place, Problem, Refusal};

/// Checks every string and every key of a JSON document for NUL and lone surrogates (the only
/// ways valid JSON spells them are `\u` escapes, so a body without one is passed at once). The
/// refusal names the value by its path, e.g. `events[2].payload.label`. A document that is not
/// valid JSON is left to the deserializer, which says what is wrong with it.
pub fn check_json(body: &[u8]) -> Result<(), Refusal> {
    if !body.windows(2).any(|w| w == b"\\u") {
        return Ok(());
    }
    let mut walker = JsonWalker { bytes: body, at: 0, path: String::new(), depth: 0 };
    match walker.value() {
        Err(Stop::Refused(refusal)) => Err(refusal),
        Ok(()) | Err(Stop::Malformed) => Ok(()),
    }
}

enum Stop {
    Refused(Refusal),
    Malformed,
}

/// A minimal reader of JSON that knows where it is; it decodes only what it must (escapes).
struct JsonWalker<'a> {
    bytes: &'a [u8],
    at: usize,
    path: String,
    depth: usize,
}

impl JsonWalker<'_> {
    fn peek(&mut self) -> Option<u8> {
        while let Some(&b) = self.bytes.get(self.at) {
            if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                self.at += 1;
            } else {
                return Some(b);
            }
        }
        None
    }

    fn expect(&mut self, byte: u8) -> Result<(), Stop> {
        if self.peek() == Some(byte) {
            self.at += 1;
            Ok(())
        } else {
            Err(Stop::Malformed)
        }
    }

    fn value(&mut self) -> Result<(), Stop> {
        self.depth += 1;
        if self.depth > 128 {
            return Err(Stop::Malformed);
        }
        let result = match self.peek().ok_or(Stop::Malformed)? {
            b'{' => self.object(),
            b'[' => self.array(),
            b'"' => {
                let field = if self.path.is_empty() { "the value".to_owned() } else { self.path.clone() };
                self.string().map(|_| ()).map_err(|problem| problem.at(field))
            }
            _ => {
                while self.bytes.get(self.at).is_some_and(|b| !b",]} \t\r\n".contains(b)) {
                    self.at += 1;
                }
                Ok(())
            }
        };
        self.depth -= 1;
        result
    }

    fn object(&mut self) -> Result<(), Stop> {
        self.at += 1;
        if self.peek() == Some(b'}') {
            self.at += 1;
            return Ok(());
        }
        loop {
            if self.peek() != Some(b'"') {
                return Err(Stop::Malformed);
            }
            let parent = self.path.len();
            let parent_path = self.path.clone();
            let key = self.string().map_err(|problem| problem.at_key(parent_path))?;
            if !self.path.is_empty() {
                self.path.push('.');
            }
            self.path.push_str(&key);
            self.expect(b':')?;
            self.value()?;
            self.path.truncate(parent);
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b'}') => {
                    self.at += 1;
                    return Ok(());
                }
                _ => return Err(Stop::Malformed),
            }
        }
    }

    fn array(&mut self) -> Result<(), Stop> {
        self.at += 1;
        if self.peek() == Some(b']') {
            self.at += 1;
            return Ok(());
        }
        let mut index = 0;
        loop {
            let parent = self.path.len();
            self.path.push_str(&format!("[{index}]"));
            self.value()?;
            self.path.truncate(parent);
            index += 1;
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b']') => {
                    self.at += 1;
                    return Ok(());
                }
                _ => return Err(Stop::Malformed),
            }
        }
    }

    fn hex4(&self, at: usize) -> Option<u16> {
        let digits = std::str::from_utf8(self.bytes.get(at..at + 4)?).ok()?;
        u16::from_str_radix(digits, 16).ok()
    }

    /// Reads a string (the cursor on its opening quote) and returns its text, escapes decoded
    /// (lossily: it only names fields).
    fn string(&mut self) -> Result<String, StringStop> {
        self.at += 1;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let b = *self.bytes.get(self.at).ok_or(StringStop::Malformed)?;
            self.at += 1;
            match b {
                b'"' => return Ok(String::from_utf8_lossy(&out).into_owned()),
                b'\\' => {
                    let escape = *self.bytes.get(self.at).ok_or(StringStop::Malformed)?;
                    self.at += 1;
                    if escape != b'u' {
                        out.push(escape);
                        continue;
                    }
                    let unit = self.hex4(self.at).ok_or(StringStop::Malformed)?;
                    self.at += 4;
                    let c = match unit {
                        0 => return Err(StringStop::Problem(Problem::Nul)),
                        0xD800..=0xDBFF => {
                            let low = (self.bytes.get(self.at..self.at + 2) == Some(b"\\u"))
                                .then(|| self.hex4(self.at + 2))
                                .flatten()
                                .filter(|low| (0xDC00..=0xDFFF).contains(low))
                                .ok_or(StringStop::Problem(Problem::LoneSurrogate))?;
                            self.at += 6;
                            let code = 0x10000 + ((u32::from(unit) - 0xD800) << 10) + (u32::from(low) - 0xDC00);
                            char::from_u32(code).unwrap_or('\u{fffd}')
                        }
                        0xDC00..=0xDFFF => return Err(StringStop::Problem(Problem::LoneSurrogate)),
                        unit => char::from_u32(u32::from(unit)).unwrap_or('\u{fffd}'),
                    };
                    let mut buffer = [0; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buffer).as_bytes());
                }
                b => out.push(b),
            }
        }
    }
}

enum StringStop {
    Problem(Problem),
    Malformed,
}

impl StringStop {
    fn at(self, field: String) -> Stop {
        self.refuse(Place::Json, field)
    }

    fn at_key(self, object: String) -> Stop {
        self.refuse(Place::JsonKey, object)
    }

    fn refuse(self, place: Place, field: String) -> Stop {
        match self {
            Self::Problem(problem) => Stop::Refused(Refusal::new(place, field, problem)),
            Self::Malformed => Stop::Malformed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(text: &str) -> Result<(), String> {
        check_json(text.as_bytes()).map_err(|r| r.to_string())
    }

    #[test]
    fn json_strings_and_keys_are_checked_where_they_are() {
        assert_eq!(json(r#"{"a":"\u00e9\ud83d\ude00","b":[1,true,null,{"c":"\n"}]}"#), Ok(()));
        assert_eq!(
            json(r#"{"events":[{"kind":"click"},{"payload":{"x":"a\u0000"}}]}"#).unwrap_err(),
            "`events[1].payload.x` contains a NUL character (U+0000), which is not accepted"
        );
        assert!(
            json(r#"{"events":[{"payload":{"k\u0000":1}}]}"#).unwrap_err().starts_with("a key of `events[0].payload`")
        );
        assert!(json(r#"{"k\u0000":1}"#).unwrap_err().starts_with("a key of the body contains a NUL"));
        assert!(json(r#"{"body":"\udc00"}"#).unwrap_err().contains("`body` contains a lone UTF-16 surrogate"));
        assert!(json(r#"{"body":"\ud800x"}"#).unwrap_err().contains("lone"));
        assert!(json(r#"{"body":"\ud800\u0041"}"#).unwrap_err().contains("lone"));
        assert!(json(r#""\u0000""#).unwrap_err().starts_with("`the value`"));
        // Escaped backslashes are not escapes; malformed documents are the deserializer's.
        assert_eq!(json(r#"{"a":"\\u0000"}"#), Ok(()));
        assert_eq!(json(r#"{"a":"\u0000"#), Err("`a` contains a NUL character (U+0000), which is not accepted".into()));
        assert_eq!(json(r#"{"a" "\u0041"}"#), Ok(()));
        assert_eq!(json(&"[".repeat(1000)), Ok(()));
    }
}
