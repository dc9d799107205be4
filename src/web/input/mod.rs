//! The input layer: every text a request brings — the address, the query string, a form body, a
//! JSON body (strings *and* keys, however deeply nested) — is checked here once, before a handler
//! and so the database see it. Both databases then behave the same, and no constraint is the
//! first to notice.
//!
//! Refused everywhere, with a message naming the field:
//! - NUL (U+0000): PostgreSQL's `text` and `jsonb` cannot hold it, and SQLite's `length()` stops
//!   at it (a title of NUL bytes has length 0 there, and the `CHECK` would refuse it);
//! - lone UTF-16 surrogates (`\udc00` in JSON; PostgreSQL's `jsonb` refuses them) and bytes that
//!   are not UTF-8 in the address, the query or a form (a percent-encoded surrogate is such);
//! - query values over [`MAX_QUERY_VALUE`] characters and path segments over
//!   [`MAX_SEGMENT`] characters; each field's own bound (a slug, a title of at most 200 characters,
//!   the search text of [`search`]) is checked by its parser, by the rule the database's `CHECK`
//!   states.
//!
//! The address and the query string answer 400, a form or JSON body 422; under `/api/` the
//! answer is the API's JSON error, elsewhere the error page (or the htmx error fragment).
//! The [`guard`] middleware checks the address, the query string and urlencoded forms; JSON
//! bodies are checked by the API's body reader with [`check_json`] (they only go there).

use std::fmt;

use actix_web::HttpMessage;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::web::{Bytes, BytesMut};
use futures_util::StreamExt;

use crate::error::AppError;
use crate::web::api::error::ApiError;

/// Longest query value, in characters (tokens and region lists fit; search texts have their own,
/// smaller bound).
pub const MAX_QUERY_VALUE: usize = 2048;
/// Longest path segment, in characters once decoded (slugs are at most 64).
pub const MAX_SEGMENT: usize = 256;
/// Largest form body the guard reads (the `web::Form` limit; beyond it the extractor refuses).
pub const MAX_FORM: usize = 64 * 1024;
/// Longest search text (`q=`), in characters.
pub const SEARCH_MAX: usize = 200;
/// Longest slug filter (`widget=`, `category=`): no slug is longer.
pub const SLUG_FILTER_MAX: usize = 64;

/// What is wrong with a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// U+0000.
    Nul,
    /// Bytes that are not UTF-8.
    NotUtf8,
    /// A UTF-16 surrogate escape without its pair.
    LoneSurrogate,
    /// Longer than the given bound.
    TooLong(usize),
}

/// Where a value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Path,
    Query,
    Form,
    Json,
    /// A key of the JSON object at the field's path.
    JsonKey,
}

/// A refused value: where, which field, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub place: Place,
    pub field: String,
    pub problem: Problem,
}

impl Refusal {
    fn new(place: Place, field: impl Into<String>, problem: Problem) -> Self {
        Self { place, field: field.into(), problem }
    }

    /// 400 for the address and the query string, 422 for a body.
    pub fn status(&self) -> StatusCode {
        match self.place {
            Place::Path | Place::Query => StatusCode::BAD_REQUEST,
            Place::Form | Place::Json | Place::JsonKey => StatusCode::UNPROCESSABLE_ENTITY,
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let field = shorten(&self.field);
        match self.place {
            Place::Path => write!(f, "the address ({field})")?,
            Place::Query => write!(f, "the query parameter `{field}`")?,
            Place::Form => write!(f, "the field `{field}`")?,
            Place::Json => write!(f, "`{field}`")?,
            Place::JsonKey if field.is_empty() => write!(f, "a key of the body")?,
            Place::JsonKey => write!(f, "a key of `{field}`")?,
        }
        match self.problem {
            Problem::Nul => write!(f, " contains a NUL character (U+0000), which is not accepted"),
            Problem::NotUtf8 => write!(f, " is not valid UTF-8"),
            Problem::LoneSurrogate => {
                write!(f, " contains a lone UTF-16 surrogate escape (e.g. \\udc00), which is not a character")
            }
            Problem::TooLong(max) => write!(f, " is longer than {max} characters"),
        }
    }
}

impl From<Refusal> for AppError {
    fn from(refusal: Refusal) -> Self {
        match refusal.place {
            Place::Path | Place::Query => AppError::BadRequest(refusal.to_string()),
            Place::Form | Place::Json | Place::JsonKey => AppError::Invalid(refusal.to_string()),
        }
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        match refusal.place {
            Place::Path | Place::Query => ApiError::BadRequest(refusal.to_string()),
            Place::Form | Place::Json | Place::JsonKey => ApiError::Invalid(refusal.to_string()),
        }
    }
}

/// A field name fit for a message: at most 60 characters, NUL and control characters shown as `�`.
fn shorten(field: &str) -> String {
    let mut out: String = field.chars().take(60).map(|c| if c.is_control() { '\u{fffd}' } else { c }).collect();
    if field.chars().count() > 60 {
        out.push('…');
    }
    out
}

/// Checks one text that is already UTF-8: no NUL, at most `max` characters.
pub fn check_text(value: &str, max: usize) -> Result<(), Problem> {
    if value.contains('\0') {
        Err(Problem::Nul)
    } else if value.len() > max && value.chars().count() > max {
        Err(Problem::TooLong(max))
    } else {
        Ok(())
    }
}

/// Percent-decodes a urlencoded key or value (`+` is a space) and checks it.
fn decode(raw: &[u8], max: usize) -> Result<String, (String, Problem)> {
    let spaced: Vec<u8> = raw.iter().map(|&b| if b == b'+' { b' ' } else { b }).collect();
    let bytes: Vec<u8> = percent_encoding::percent_decode(&spaced).collect();
    match String::from_utf8(bytes) {
        Ok(text) => match check_text(&text, max) {
            Ok(()) => Ok(text),
            Err(problem) => Err((text, problem)),
        },
        Err(e) => Err((String::from_utf8_lossy(e.as_bytes()).into_owned(), Problem::NotUtf8)),
    }
}

/// Checks every key and value of a urlencoded text (a query string or a form body); values of
/// at most `max` characters.
pub fn check_urlencoded(place: Place, raw: &[u8], max: usize) -> Result<(), Refusal> {
    for pair in raw.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        let (key, value) = match pair.iter().position(|&b| b == b'=') {
            Some(at) => (&pair[..at], &pair[at + 1..]),
            None => (pair, &pair[pair.len()..]),
        };
        let name = decode(key, MAX_QUERY_VALUE).map_err(|(name, problem)| Refusal::new(place, name, problem))?;
        decode(value, max).map_err(|(_, problem)| Refusal::new(place, name.clone(), problem))?;
    }
    Ok(())
}

/// Checks every segment of a request path (as sent, percent-encoded).
pub fn check_path(path: &str) -> Result<(), Refusal> {
    for (n, segment) in path.split('/').filter(|s| !s.is_empty()).enumerate() {
        let bytes: Vec<u8> = percent_encoding::percent_decode_str(segment).collect();
        let field = || format!("part {} of the path", n + 1);
        let text = std::str::from_utf8(&bytes).map_err(|_| Refusal::new(Place::Path, field(), Problem::NotUtf8))?;
        if text.contains('\0') {
            return Err(Refusal::new(Place::Path, field(), Problem::Nul));
        }
        if text.chars().count() > MAX_SEGMENT {
            return Err(Refusal::new(Place::Path, field(), Problem::TooLong(MAX_SEGMENT)));
        }
    }
    Ok(())
}

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

/// A search text from a query (`q=`): trimmed, at most [`SEARCH_MAX`] characters.
pub fn search(raw: Option<&str>) -> Result<String, AppError> {
    let text = raw.unwrap_or_default().trim();
    check_text(text, SEARCH_MAX)
        .map(|()| text.to_owned())
        .map_err(|problem| Refusal::new(Place::Query, "q", problem).into())
}

/// A slug filter from a query (`widget=`, `category=`): trimmed, at most [`SLUG_FILTER_MAX`]
/// characters (which slug it names is the caller's to check).
pub fn slug_filter(field: &'static str, raw: Option<&str>) -> Result<String, AppError> {
    let text = raw.unwrap_or_default().trim();
    check_text(text, SLUG_FILTER_MAX)
        .map(|()| text.to_owned())
        .map_err(|problem| Refusal::new(Place::Query, field, problem).into())
}

fn is_form(req: &ServiceRequest) -> bool {
    req.headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.trim_start().to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"))
}

/// Reads the body up to `limit` bytes. A longer body is put back whole (the part read, then the
/// rest), for the handler's extractor to refuse with its own limit.
async fn read_up_to(req: &mut ServiceRequest, limit: usize) -> Result<Option<Bytes>, actix_web::Error> {
    let mut payload = req.take_payload();
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk?;
        body.extend_from_slice(&chunk);
        if body.len() > limit {
            let read = futures_util::stream::once(futures_util::future::ready(Ok(body.freeze())));
            req.set_payload(Payload::Stream { payload: Box::pin(read.chain(payload)) });
            return Ok(None);
        }
    }
    Ok(Some(body.freeze()))
}

/// Middleware: refuses a request whose address, query string or form carries text that cannot
/// be stored (see the module's documentation).
pub async fn guard(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let mut checked = check_path(req.uri().path())
        .and_then(|()| check_urlencoded(Place::Query, req.query_string().as_bytes(), MAX_QUERY_VALUE));
    if checked.is_ok()
        && is_form(&req)
        && let Some(body) = read_up_to(&mut req, MAX_FORM).await?
    {
        checked = check_urlencoded(Place::Form, &body, usize::MAX);
        req.set_payload(Payload::from(body));
    }
    match checked {
        Ok(()) => Ok(next.call(req).await?.map_into_left_body()),
        Err(refusal) => {
            tracing::info!(path = %shorten(req.path()), refused = %refusal, "refused input");
            let response = if req.path().starts_with("/api/") {
                req.error_response(ApiError::from(refusal))
            } else {
                req.error_response(AppError::from(refusal))
            };
            Ok(response.map_into_right_body())
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

    #[test]
    fn urlencoded_values_are_decoded_then_checked() {
        assert_eq!(check_urlencoded(Place::Query, b"q=caf%C3%A9+au+lait&status=all", 12), Ok(()));
        let nul = check_urlencoded(Place::Query, b"status=new&q=a%00b", 10).unwrap_err();
        assert_eq!(nul.to_string(), "the query parameter `q` contains a NUL character (U+0000), which is not accepted");
        assert_eq!(nul.status(), StatusCode::BAD_REQUEST);
        let surrogate = check_urlencoded(Place::Form, b"title=%ED%B0%80", 10).unwrap_err();
        assert_eq!(surrogate.problem, Problem::NotUtf8);
        assert_eq!(surrogate.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(check_urlencoded(Place::Query, b"q=abcdefghijk", 10).unwrap_err().problem, Problem::TooLong(10));
        assert!(
            check_urlencoded(Place::Form, b"a%00=1", 10).unwrap_err().to_string().starts_with("the field `a\u{fffd}`")
        );
    }

    #[test]
    fn path_segments_are_decoded_then_checked() {
        assert_eq!(check_path("/hubs/checkout/widgets/caf%C3%A9"), Ok(()));
        assert_eq!(
            check_path("/hubs/%00").unwrap_err().to_string(),
            "the address (part 2 of the path) contains a NUL character (U+0000), which is not accepted"
        );
        assert_eq!(check_path("/embed/%ED%A0%80").unwrap_err().problem, Problem::NotUtf8);
        assert_eq!(
            check_path(&format!("/hubs/{}", "x".repeat(MAX_SEGMENT + 1))).unwrap_err().problem,
            Problem::TooLong(MAX_SEGMENT)
        );
    }

    #[test]
    fn filters_are_bounded() {
        assert_eq!(search(Some("  needle ")).ok().as_deref(), Some("needle"));
        assert!(search(Some(&"x".repeat(SEARCH_MAX + 1))).is_err());
        assert!(search(Some(&"é".repeat(SEARCH_MAX))).is_ok());
        assert!(slug_filter("widget", Some(&"w".repeat(65))).unwrap_err().to_string().contains("`widget`"));
    }
}
