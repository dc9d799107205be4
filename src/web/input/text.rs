//! The checks of text that is not JSON: one text already UTF-8, a urlencoded query or form
//! (decoded, then checked), the segments of a path, and the search and slug filters of a query.

use super::refusal::{Place, Problem, Refusal};
use crate::error::AppError;

/// Longest query value, in characters (tokens and region lists fit; search texts have their own,
/// smaller bound).
pub const MAX_QUERY_VALUE: usize = 2048;
/// Longest path segment, in characters once decoded (slugs are at most 64).
pub const MAX_SEGMENT: usize = 256;
/// Longest search text (`q=`), in characters.
pub const SEARCH_MAX: usize = 200;
/// Longest slug filter (`widget=`, `category=`): no slug is longer.
pub const SLUG_FILTER_MAX: usize = 64;

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

#[cfg(test)]
mod tests {
    use actix_web::http::StatusCode;

    use super::*;

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
