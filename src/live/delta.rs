//! Row-level updates of list regions (#16): a region's HTML is cut into the text outside its
//! lists and each list's rows, keyed by their `id`; the next render of the same region is sent
//! as the rows that were inserted, changed, moved or removed, when everything else is the same.
//!
//! A list is an element with the `data-live-list` attribute and an `id`; each of its child
//! elements must have an `id` too (the "no feedback yet" and "load more" rows included), and
//! only whitespace may stand between them. Anything else makes the region "unsure" and the whole
//! region is sent, as it is on a resync, a reconnect or a filter change.
//!
//! The delta is HTML the page applies in order (`static/live.js`), one `<template>` per step:
//! - `<template data-list="L" data-remove="a b"></template>`: remove rows `a` and `b` of list `L`;
//! - `<template data-list="L" data-id="r" data-after="p">ROW</template>`: row `r` (new or
//!   changed: its HTML inside; only moved: empty) goes right after row `p` (first when
//!   `data-after` is empty).

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

/// A stable hash of a region's HTML (what a client has of it: pages send it, frames carry it).
pub fn html_hash(html: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    html.hash(&mut hasher);
    hasher.finish()
}

/// A region's HTML cut at its lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// The HTML around the lists: one piece more than there are lists.
    outside: Vec<String>,
    lists: Vec<List>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct List {
    id: String,
    /// (id, outer HTML) of each row, in order.
    rows: Vec<(String, String)>,
}

const VOID: &[&str] =
    &["area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"];
const RAW: &[&str] = &["script", "style", "textarea", "title"];

/// One tag: where it ends (after `>`), its name, whether it closes, and its attribute text.
struct Tag<'a> {
    end: usize,
    name: &'a str,
    closing: bool,
    /// Self-closing (`/>`) or a void element: opens nothing.
    empty: bool,
    attrs: &'a str,
}

fn tag_at(html: &str, at: usize) -> Option<Tag<'_>> {
    let bytes = html.as_bytes();
    let closing = bytes.get(at + 1) == Some(&b'/');
    let name_start = at + if closing { 2 } else { 1 };
    let mut i = name_start;
    while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'-' || bytes[i] == b':') {
        i += 1;
    }
    if i == name_start {
        return None;
    }
    let name = &html[name_start..i];
    let attrs_start = i;
    let mut quote: Option<u8> = None;
    while i < bytes.len() {
        match (quote, bytes[i]) {
            (None, b'"' | b'\'') => quote = Some(bytes[i]),
            (Some(q), c) if c == q => quote = None,
            (None, b'>') => break,
            _ => {}
        }
        i += 1;
    }
    if i >= bytes.len() {
        return None;
    }
    let attrs = &html[attrs_start..i];
    let self_closing = attrs.ends_with('/');
    let void = VOID.iter().any(|v| v.eq_ignore_ascii_case(name));
    Some(Tag { end: i + 1, name, closing, empty: self_closing || void, attrs })
}

/// The value of attribute `name` (double-quoted, as askama writes it).
fn attr<'a>(attrs: &'a str, name: &str) -> Option<&'a str> {
    let mut rest = attrs;
    let pattern = format!("{name}=\"");
    while let Some(at) = rest.find(&pattern) {
        let before = rest[..at].chars().next_back();
        let value = &rest[at + pattern.len()..];
        if before.is_none_or(char::is_whitespace) {
            return value.split('"').next();
        }
        rest = value;
    }
    None
}

fn has_flag(attrs: &str, name: &str) -> bool {
    attrs
        .split(|c: char| c.is_whitespace() || c == '/')
        .any(|word| word == name || word.starts_with(&format!("{name}=")))
}

/// A list being read: the depth it opened at, the list so far, and the start and id of the
/// row being read.
type OpenList = (usize, List, Option<(usize, String)>);

/// Cuts `html` at its lists; `None` when it has none or a list breaks the rules above.
pub fn split(html: &str) -> Option<Split> {
    let bytes = html.as_bytes();
    let mut outside = Vec::new();
    let mut lists = Vec::new();
    let mut piece_start = 0;
    let mut depth = 0usize;
    // Inside a list: its depth (open elements outside it), the list, the current row's start.
    let mut current: Option<OpenList> = None;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'<' {
            if let Some((list_depth, _, None)) = &current
                && depth == list_depth + 1
                && !bytes[i].is_ascii_whitespace()
            {
                return None; // text between rows
            }
            i += 1;
            continue;
        }
        if html[i..].starts_with("<!--") {
            i += html[i..].find("-->")? + 3;
            continue;
        }
        let Some(tag) = tag_at(html, i) else {
            i += 1;
            continue;
        };
        if tag.closing {
            depth = depth.checked_sub(1)?;
            let mut list_closed = false;
            if let Some((list_depth, list, row)) = &mut current {
                if depth == *list_depth + 1
                    && let Some((start, id)) = row.take()
                {
                    list.rows.push((id, html[start..tag.end].to_owned()));
                } else if depth == *list_depth {
                    list_closed = true;
                }
            }
            if list_closed && let Some((_, list, _)) = current.take() {
                lists.push(list);
                piece_start = i;
            }
            i = tag.end;
            continue;
        }
        if let Some((list_depth, _, row)) = &mut current
            && depth == *list_depth + 1
        {
            if tag.empty || row.is_some() {
                return None;
            }
            *row = Some((i, attr(tag.attrs, "id")?.to_owned()));
        } else if current.is_none() && !tag.empty && has_flag(tag.attrs, "data-live-list") {
            outside.push(html[piece_start..tag.end].to_owned());
            current = Some((depth, List { id: attr(tag.attrs, "id")?.to_owned(), rows: Vec::new() }, None));
        }
        // A raw-text element (`<title>` in an SVG, `<script>`…) is passed over whole, its
        // closing tag with it: it opens and closes nothing the rows' depth counts.
        if RAW.iter().any(|r| r.eq_ignore_ascii_case(tag.name)) && !tag.empty {
            let close = format!("</{}", tag.name);
            let at = tag.end + html[tag.end..].find(&close)?;
            i = at + html[at..].find('>')? + 1;
            continue;
        }
        if !tag.empty {
            depth += 1;
        }
        i = tag.end;
    }
    if current.is_some() || lists.is_empty() {
        return None;
    }
    outside.push(html[piece_start..].to_owned());
    Some(Split { outside, lists })
}

/// The steps that turn `old` into `new`, or `None` when only the whole region will do (the
/// HTML outside the lists changed, or the lists themselves).
pub fn delta(old: &Split, new: &Split) -> Option<String> {
    if old.outside != new.outside || old.lists.len() != new.lists.len() {
        return None;
    }
    let mut out = String::new();
    for (old, new) in old.lists.iter().zip(&new.lists) {
        if old.id != new.id {
            return None;
        }
        let before: HashMap<&str, &str> = old.rows.iter().map(|(id, html)| (id.as_str(), html.as_str())).collect();
        let after: HashMap<&str, &str> = new.rows.iter().map(|(id, html)| (id.as_str(), html.as_str())).collect();
        if after.len() != new.rows.len() {
            return None; // a repeated id
        }
        let removed: Vec<&str> =
            old.rows.iter().map(|(id, _)| id.as_str()).filter(|id| !after.contains_key(id)).collect();
        if !removed.is_empty() {
            out.push_str(&format!(
                "<template data-list=\"{}\" data-remove=\"{}\"></template>",
                old.id,
                removed.join(" ")
            ));
        }
        // The page's list as the steps so far leave it: after step i its first i+1 rows are
        // the new list's.
        let mut page: Vec<&str> =
            old.rows.iter().map(|(id, _)| id.as_str()).filter(|id| after.contains_key(id)).collect();
        for (i, (id, html)) in new.rows.iter().enumerate() {
            let changed = before.get(id.as_str()) != Some(&html.as_str());
            if !changed && page.get(i) == Some(&id.as_str()) {
                continue;
            }
            let previous = if i == 0 { "" } else { new.rows[i - 1].0.as_str() };
            out.push_str(&format!("<template data-list=\"{}\" data-id=\"{id}\" data-after=\"{previous}\">", new.id));
            if changed {
                out.push_str(html);
            }
            out.push_str("</template>");
            page.retain(|p| p != id);
            page.insert(i.min(page.len()), id.as_str());
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(rows: &[(&str, &str)]) -> String {
        let mut html = String::from("<h3 class=\"x\">Feed</h3>\n<ol class=\"feed\" id=\"l\" data-live-list>\n");
        for (id, text) in rows {
            html.push_str(&format!("  <li id=\"{id}\" class=\"a\"><p>{text}</p><br></li>\n"));
        }
        html.push_str("</ol>\n<p>after</p>");
        html
    }

    /// Applies a delta the way `static/live.js` does, on a list of (id, html).
    fn apply(rows: &mut Vec<(String, String)>, delta: &str) {
        let mut rest = delta;
        while let Some(start) = rest.find("<template ") {
            let head_end = start + rest[start..].find('>').expect("head");
            let head = &rest[start..head_end];
            let body_end = head_end + rest[head_end..].find("</template>").expect("end");
            let body = &rest[head_end + 1..body_end];
            if let Some(ids) = attr(head, "data-remove") {
                let ids: Vec<&str> = ids.split(' ').collect();
                rows.retain(|(id, _)| !ids.contains(&id.as_str()));
            } else {
                let id = attr(head, "data-id").expect("id").to_owned();
                let after = attr(head, "data-after").expect("after");
                let existing = rows.iter().position(|(r, _)| *r == id);
                let html = if body.is_empty() {
                    rows[existing.expect("a move of a row the page has")].1.clone()
                } else {
                    body.to_owned()
                };
                if let Some(at) = existing {
                    rows.remove(at);
                }
                let at = if after.is_empty() {
                    0
                } else {
                    rows.iter().position(|(r, _)| r == after).expect("after a row the page has") + 1
                };
                rows.insert(at, (id, html));
            }
            rest = &rest[body_end + "</template>".len()..];
        }
    }

    fn converges(old: &[(&str, &str)], new: &[(&str, &str)]) -> String {
        let (a, b) = (split(&list(old)).expect("old"), split(&list(new)).expect("new"));
        let delta = delta(&a, &b).expect("a delta");
        let mut rows = a.lists[0].rows.clone();
        apply(&mut rows, &delta);
        assert_eq!(rows, b.lists[0].rows, "{old:?} -> {new:?} with {delta}");
        delta
    }

    #[test]
    fn cuts_a_list_into_keyed_rows() {
        let s = split(&list(&[("a", "1"), ("b", "2")])).expect("split");
        assert_eq!(s.lists.len(), 1);
        assert_eq!(s.lists[0].rows[1], ("b".into(), "<li id=\"b\" class=\"a\"><p>2</p><br></li>".into()));
        assert_eq!(s.outside.len(), 2);
        assert!(s.outside[1].starts_with("</ol>"));
    }

    #[test]
    fn a_new_row_on_top_is_one_small_step() {
        let delta = converges(&[("a", "1"), ("b", "2"), ("c", "3")], &[("n", "new"), ("a", "1"), ("b", "2")]);
        assert!(delta.contains("data-remove=\"c\"") && delta.contains("new"));
        assert!(!delta.contains(">1<"), "unchanged rows are not sent: {delta}");
    }

    #[test]
    fn moves_changes_and_removals_converge() {
        type Rows<'a> = &'a [(&'a str, &'a str)];
        let cases: &[(Rows, Rows)] = &[
            (&[("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")], &[("c", "3"), ("d", "4"), ("a", "1"), ("b", "2")]),
            (&[("a", "1"), ("b", "2"), ("c", "3")], &[("b", "2"), ("c", "3"), ("a", "1")]),
            (&[("a", "1"), ("b", "2"), ("c", "3")], &[("c", "x"), ("b", "2"), ("a", "1")]),
            (&[("a", "1")], &[]),
            (&[], &[("a", "1"), ("b", "2")]),
            (&[("a", "1"), ("b", "2"), ("c", "3")], &[("a", "1"), ("b", "changed"), ("c", "3")]),
        ];
        for (old, new) in cases {
            converges(old, new);
        }
    }

    #[test]
    fn unsure_regions_have_no_delta() {
        assert!(split("<p>no list</p>").is_none());
        assert!(split("<ol id=\"l\" data-live-list><li>no id</li></ol>").is_none());
        assert!(split("<ol id=\"l\" data-live-list>text<li id=\"a\"></li></ol>").is_none());
        let (a, b) = (split(&list(&[("a", "1")])).expect("a"), split(&list(&[("a", "1")]).replace("Feed", "Other")));
        assert!(delta(&a, &b.expect("b")).is_none(), "the outside changed");
        // Attribute values may hold `>`, comments and scripts are skipped.
        let s = split("<div title=\"a>b\"><!-- <li> --><ul id=\"u\" data-live-list><li id=\"x\" title='>'><svg><path d=\"M0\"/></svg></li></ul></div>")
            .expect("split");
        assert_eq!(s.lists[0].rows.len(), 1);
    }

    // The dashboard's widget rows hold sparklines whose SVG has a `<title>`: raw text, passed
    // over with its closing tag, so the rows after it are still rows.
    #[test]
    fn rows_with_an_svg_title_split() {
        let row = |id: &str, n: u32| {
            format!("<tr id=\"{id}\"><td><svg role=\"img\"><title>{n} events</title><rect/></svg></td></tr>")
        };
        let html = |n: u32| {
            format!(
                "<table><tbody id=\"rows\" data-live-list>{}\n{}</tbody></table><div id=\"charts\" data-live-list><figure id=\"c\"><svg><title>t{n}</title></svg></figure></div>",
                row("a", n),
                row("b", 1)
            )
        };
        let (old, new) = (split(&html(1)).expect("old"), split(&html(2)).expect("new"));
        assert_eq!(new.lists.iter().map(|l| l.rows.len()).collect::<Vec<_>>(), [2, 1]);
        let steps = delta(&old, &new).expect("a delta");
        assert!(
            steps.contains("data-id=\"a\"") && steps.contains("data-id=\"c\"") && !steps.contains("data-id=\"b\""),
            "{steps}"
        );
    }
}
