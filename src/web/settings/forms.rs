//! Form parsing shared by the settings pages: field errors, slugs and embed origins.

use std::collections::BTreeMap;

/// Messages next to the fields they concern, by field name.
#[derive(Debug, Clone, Default)]
pub struct FieldErrors(BTreeMap<&'static str, String>);

impl FieldErrors {
    /// Records the first problem of a field.
    pub fn add(&mut self, field: &'static str, message: impl Into<String>) {
        self.0.entry(field).or_insert_with(|| message.into());
    }

    /// A field's message, for the templates.
    pub fn get(&self, field: &str) -> Option<&String> {
        self.0.get(field)
    }

    /// Whether a field has a message.
    pub fn has(&self, field: &str) -> bool {
        self.0.contains_key(field)
    }

    /// No problems.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Checks `value` with `parse` and records its message under `field`.
    pub fn check<T>(&mut self, field: &'static str, parse: Result<T, String>) -> Option<T> {
        match parse {
            Ok(value) => Some(value),
            Err(message) => {
                self.add(field, message);
                None
            }
        }
    }
}

/// A URL slug: 1–64 lowercase letters, digits and dashes, starting with a letter or digit.
pub fn slug(raw: &str) -> Result<String, String> {
    let slug = raw.trim();
    let ok = !slug.is_empty()
        && slug.len() <= 64
        && slug.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && slug.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(slug.to_owned())
    } else {
        Err("Use 1–64 lowercase letters, digits and dashes, starting with a letter or digit.".into())
    }
}

/// A required single-line text of at most `max` characters.
pub fn name(raw: &str, max: usize) -> Result<String, String> {
    let name = raw.trim();
    if name.is_empty() {
        Err("Enter a name.".into())
    } else if name.chars().count() > max {
        Err(format!("Keep it to {max} characters."))
    } else {
        Ok(name.to_owned())
    }
}

/// An optional text of at most `max` characters.
pub fn description(raw: &str, max: usize) -> Result<String, String> {
    let text = raw.trim();
    if text.chars().count() > max { Err(format!("Keep it to {max} characters.")) } else { Ok(text.to_owned()) }
}

/// One embed origin as a browser sends it in `Origin`: `http` or `https`, a host, an optional
/// port, nothing else. Returned in canonical form (lower case, no default port, no trailing
/// slash), so the embed's comparison with the request's `Origin` is a plain string match.
pub fn origin(raw: &str) -> Result<String, String> {
    let bad = || format!("{raw} is not an origin: write scheme://host[:port], e.g. https://shop.example.com");
    let (scheme, rest) = raw.split_once("://").ok_or_else(bad)?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(format!("{raw}: an origin starts with https:// or http://"));
    }
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', '?', '#', '@', '\\', ' ']) {
        return Err(format!("{raw}: an origin has no path, query or credentials (e.g. https://shop.example.com)"));
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => (host, Some(port)),
        _ => (rest, None),
    };
    let host = host.to_ascii_lowercase();
    let host_ok = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        v6.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            })
    };
    if !host_ok {
        return Err(bad());
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(0) | Err(_) => return Err(format!("{raw}: the port must be a number from 1 to 65535")),
            Ok(p) if (scheme == "https" && p == 443) || (scheme == "http" && p == 80) => None,
            Ok(p) => Some(p),
        },
    };
    Ok(match port {
        Some(port) => format!("{scheme}://{host}:{port}"),
        None => format!("{scheme}://{host}"),
    })
}

/// A list of origins, one per line or separated by spaces or commas; stored space-separated.
/// The message names the first bad entry.
pub fn origins(raw: &str) -> Result<String, String> {
    let mut out: Vec<String> = Vec::new();
    for entry in raw.split(|c: char| c.is_whitespace() || c == ',').filter(|e| !e.is_empty()) {
        let origin = origin(entry)?;
        if !out.contains(&origin) {
            out.push(origin);
        }
    }
    Ok(out.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert!(slug("checkout-2").is_ok());
        for bad in ["", "-x", "Upper", "a b", "a/b", &"x".repeat(65)] {
            assert!(slug(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn origins_are_canonical() {
        assert_eq!(origin("https://Shop.Example.com").as_deref(), Ok("https://shop.example.com"));
        assert_eq!(origin("https://shop.example.com/").as_deref(), Ok("https://shop.example.com"));
        assert_eq!(origin("http://localhost:3000").as_deref(), Ok("http://localhost:3000"));
        assert_eq!(origin("https://a.example:443").as_deref(), Ok("https://a.example"));
        assert_eq!(origin("http://[::1]:8080").as_deref(), Ok("http://[::1]:8080"));
        for bad in [
            "shop.example.com",
            "ftp://shop.example.com",
            "https://shop.example.com/path",
            "https://shop.example.com?q",
            "https://user@shop.example.com",
            "https://shop.example.com:0",
            "https://shop.example.com:99999",
            "https://",
            "https://-bad.example",
            "javascript://x",
        ] {
            assert!(origin(bad).is_err(), "{bad}");
        }
        assert_eq!(
            origins("https://a.example\nhttps://b.example, https://a.example").as_deref(),
            Ok("https://a.example https://b.example")
        );
        assert!(origins("https://a.example https://b.example/x").unwrap_err().contains("https://b.example/x"));
        assert_eq!(origins("  ").as_deref(), Ok(""));
    }
}
