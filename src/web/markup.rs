//! Annotation bodies as HTML: plain text, escaped, with http(s) URLs made into links.
//!
//! Links are found in the *escaped* text, so everything outside the `<a>` tags written here is
//! inert text, and a URL can never contain a raw `"`, `<` or `>`: those were escaped first and
//! their entities end the URL. Line breaks are kept by CSS (`white-space: pre-line`).

/// The body of an annotation as safe HTML, for `{{ …|safe }}` in templates.
pub fn body_html(body: &str) -> String {
    linkify(&escape(body))
}

/// Escapes the five HTML-significant characters.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const LINK_REL: &str = "nofollow noopener ugc";

/// Wraps the http(s) URLs of already escaped text in links.
fn linkify(escaped: &str) -> String {
    let mut out = String::with_capacity(escaped.len());
    let mut rest = escaped;
    while let Some((start, scheme)) = find_scheme(rest) {
        out.push_str(&rest[..start]);
        let candidate = &rest[start..];
        let len = url_len(candidate, scheme);
        if len == 0 {
            // A scheme with nothing after it: plain text.
            out.push_str(&candidate[..scheme]);
            rest = &candidate[scheme..];
            continue;
        }
        let url = &candidate[..len];
        out.push_str("<a href=\"");
        out.push_str(url);
        out.push_str("\" rel=\"");
        out.push_str(LINK_REL);
        out.push_str("\">");
        out.push_str(url);
        out.push_str("</a>");
        rest = &candidate[len..];
    }
    out.push_str(rest);
    out
}

/// The byte offset of the next `http://` or `https://` (any case) that starts a word, and the
/// scheme's length.
fn find_scheme(text: &str) -> Option<(usize, usize)> {
    let bytes = text.as_bytes();
    // `h` is ASCII, so every offset tried is a char boundary.
    (0..bytes.len()).find_map(|i| {
        if !bytes[i].eq_ignore_ascii_case(&b'h') || (i > 0 && bytes[i - 1].is_ascii_alphanumeric()) {
            return None;
        }
        ["https://", "http://"].iter().find_map(|scheme| {
            let head = bytes.get(i..i + scheme.len())?;
            head.eq_ignore_ascii_case(scheme.as_bytes()).then_some((i, scheme.len()))
        })
    })
}

/// Entities that end a URL: they stand for characters that cannot be part of one here.
const ENDING_ENTITIES: [&str; 4] = ["&lt;", "&gt;", "&quot;", "&#39;"];

/// How many bytes of `candidate` (starting with a scheme of `scheme` bytes) form the URL;
/// 0 when nothing follows the scheme.
fn url_len(candidate: &str, scheme: usize) -> usize {
    let mut end = candidate.len();
    for (i, c) in candidate.char_indices().skip(scheme) {
        let ends_here = c.is_whitespace()
            || c.is_control()
            || matches!(c, '<' | '>' | '"' | '\'' | '`')
            || (c == '&' && ENDING_ENTITIES.iter().any(|e| candidate[i..].starts_with(e)));
        if ends_here {
            end = i;
            break;
        }
    }
    let mut url = &candidate[..end];
    // Punctuation that ends a sentence is not part of the link; nor is a closing bracket
    // without its opening one, as in "(see https://example.com)".
    loop {
        let trimmed = url.trim_end_matches(['.', ',', ';', ':', '!', '?', '*']);
        let trimmed = match trimmed.chars().last() {
            Some(close @ (')' | ']')) => {
                let open = if close == ')' { '(' } else { '[' };
                let (opens, closes) = (trimmed.matches(open).count(), trimmed.matches(close).count());
                if closes > opens { &trimmed[..trimmed.len() - 1] } else { trimmed }
            }
            _ => trimmed,
        };
        if trimmed.len() == url.len() {
            break;
        }
        url = trimmed;
    }
    if url.len() <= scheme { 0 } else { url.len() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(url: &str) -> String {
        format!("<a href=\"{url}\" rel=\"nofollow noopener ugc\">{url}</a>")
    }

    #[test]
    fn plain_text_is_escaped() {
        assert_eq!(body_html("a < b && c > \"d\" 'e'"), "a &lt; b &amp;&amp; c &gt; &quot;d&quot; &#39;e&#39;");
        assert_eq!(body_html("line one\nline two"), "line one\nline two");
        assert_eq!(body_html(""), "");
    }

    #[test]
    fn urls_become_links() {
        assert_eq!(body_html("see https://example.com/a?b=1"), format!("see {}", link("https://example.com/a?b=1")));
        assert_eq!(body_html("http://x.io"), link("http://x.io"));
        assert_eq!(body_html("HTTPS://X.IO/Path"), link("HTTPS://X.IO/Path"));
        assert_eq!(
            body_html("two: https://a.example and https://b.example."),
            format!("two: {} and {}.", link("https://a.example"), link("https://b.example"))
        );
        assert_eq!(body_html("line\nhttps://a.example\nnext"), format!("line\n{}\nnext", link("https://a.example")));
    }

    #[test]
    fn ampersands_in_urls_stay_escaped_in_the_attribute() {
        assert_eq!(body_html("https://e.com/?a=1&b=2"), link("https://e.com/?a=1&amp;b=2"));
    }

    #[test]
    fn trailing_punctuation_and_brackets() {
        assert_eq!(body_html("(see https://e.com/x)"), format!("(see {})", link("https://e.com/x")));
        assert_eq!(
            body_html("https://en.wikipedia.org/wiki/Rust_(language)"),
            link("https://en.wikipedia.org/wiki/Rust_(language)")
        );
        assert_eq!(body_html("go to https://e.com!?"), format!("go to {}!?", link("https://e.com")));
        assert_eq!(body_html("[https://e.com]"), format!("[{}]", link("https://e.com")));
    }

    #[test]
    fn not_links() {
        assert_eq!(body_html("https://"), "https://");
        assert_eq!(body_html("https://."), "https://.");
        assert_eq!(body_html("ftp://e.com javascript:alert(1)"), "ftp://e.com javascript:alert(1)");
        assert_eq!(body_html("xhttps://e.com"), "xhttps://e.com");
        assert_eq!(body_html("data:text/html,<b>"), "data:text/html,&lt;b&gt;");
    }

    #[test]
    fn urls_end_at_escaped_markup() {
        assert_eq!(
            body_html("https://e.com/\"onmouseover=\"alert(1)"),
            format!("{}&quot;onmouseover=&quot;alert(1)", link("https://e.com/"))
        );
        assert_eq!(
            body_html("https://e.com/<script>alert(1)</script>"),
            format!("{}&lt;script&gt;alert(1)&lt;/script&gt;", link("https://e.com/"))
        );
        assert_eq!(body_html("https://e.com/'x"), format!("{}&#39;x", link("https://e.com/")));
        assert_eq!(body_html("https://e.com/\u{a0}x"), format!("{}\u{a0}x", link("https://e.com/")));
    }

    /// Removes the links this module writes; what is left must be inert text.
    fn without_our_links(html: &str) -> String {
        let mut out = String::new();
        let mut rest = html;
        while let Some(start) = rest.find("<a href=\"") {
            out.push_str(&rest[..start]);
            let tag = &rest[start..];
            let close = tag.find("\">").expect("tag end");
            let href = &tag["<a href=\"".len()..close];
            let (url, attrs) = href.split_once("\" rel=\"").expect("rel");
            assert_eq!(attrs, LINK_REL);
            let lower = url.to_ascii_lowercase();
            assert!(lower.starts_with("http://") || lower.starts_with("https://"), "href {url}");
            assert!(!url.contains(['"', '<', '>', '\'', ' ']), "href {url}");
            let end = tag.find("</a>").expect("link end");
            out.push_str(&tag[close + 2..end]);
            rest = &tag[end + 4..];
        }
        out.push_str(rest);
        out
    }

    /// Payloads from the usual XSS lists: none may leave markup behind.
    const XSS: &[&str] = &[
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        "\"><svg onload=alert(1)>",
        "'><iframe src=javascript:alert(1)>",
        "javascript:alert(document.cookie)",
        "<a href=\"javascript:alert(1)\">x</a>",
        "https://e.com/\"><script>alert(1)</script>",
        "https://e.com/' onmouseover='alert(1)",
        "https://e.com/\" onmouseover=\"alert(1)",
        "https://e.com/&quot;onmouseover=&quot;alert(1)",
        "&lt;script&gt;alert(1)&lt;/script&gt;",
        "<<script>script>alert(1)<</script>/script>",
        "<ScRiPt>alert(1)</sCrIpT>",
        "<body onload=alert(1)>",
        "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
        "{{ 7*7 }} {% raw %} ${7*7}",
        "https://e.com/`onmouseover=alert(1)`",
        "https://e.com/\u{0}<script>",
        "<style>@import 'https://e.com/x.css';</style>",
        "\u{202e}https://e.com/moc.live",
    ];

    #[test]
    fn xss_payloads_stay_text() {
        for payload in XSS {
            let html = body_html(payload);
            let text = without_our_links(&html);
            assert!(!text.contains(['<', '>', '"', '\'']), "{payload} → {html}");
        }
    }
}
