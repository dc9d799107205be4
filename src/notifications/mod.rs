//! Notification mail: what a mail says, the unsubscribe token, and the worker that sends the
//! queue (`crate::db::notifications`) over SMTP.
//!
//! Every mail carries one-click unsubscribe (RFC 8058: `List-Unsubscribe` with an HTTPS/HTTP
//! URL and `List-Unsubscribe-Post: List-Unsubscribe=One-Click`). The URL holds a token signed
//! with a key derived from the server secret that names one person: it works without signing
//! in, and only for that person.

pub mod mailer;

use crate::crypto;
use crate::db::notifications::Notification;

/// The key purpose of unsubscribe tokens.
const UNSUBSCRIBE_PURPOSE: &str = "unsubscribe";

/// The unsubscribe token of `actor_id`: `<id>.<hex HMAC>`.
pub fn unsubscribe_token(secret: &[u8], actor_id: i64) -> String {
    let key = crypto::derive_key(secret, UNSUBSCRIBE_PURPOSE);
    let mac = crypto::hmac_sha256(&key, actor_id.to_string().as_bytes());
    format!("{actor_id}.{}", hex::encode(&mac[..20]))
}

/// The person an unsubscribe token names, if it is genuine.
pub fn verify_unsubscribe(secret: &[u8], token: &str) -> Option<i64> {
    let (id, _) = token.split_once('.')?;
    let actor_id: i64 = id.parse().ok()?;
    let expected = unsubscribe_token(secret, actor_id);
    crypto::constant_time_eq(expected.as_bytes(), token.as_bytes()).then_some(actor_id)
}

/// A mail ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    pub subject: String,
    pub text: String,
    pub html: String,
    /// The one-click unsubscribe URL.
    pub unsubscribe_url: String,
}

/// Who a mail is for: a person with an account, or an embed visitor, who reads their feedback
/// in the page that embeds the widget and can open no IHF page (their mail links to none but
/// the one-click unsubscribe, which needs no sign-in).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recipient {
    Person,
    Visitor,
}

/// Composes the mail for `items` (one for an immediate mail, several for a digest), with links
/// under `base` (no trailing slash).
pub fn compose(base: &str, secret: &[u8], recipient_id: i64, name: &str, items: &[Notification]) -> Mail {
    compose_for(Recipient::Person, base, secret, recipient_id, name, items)
}

/// [`compose`] for `recipient`.
pub fn compose_for(
    recipient: Recipient,
    base: &str,
    secret: &[u8],
    recipient_id: i64,
    name: &str,
    items: &[Notification],
) -> Mail {
    let visitor = recipient == Recipient::Visitor;
    let unsubscribe_url = format!("{base}/unsubscribe?t={}", unsubscribe_token(secret, recipient_id));
    let settings_url = format!("{base}/settings/notifications");
    let subject = match items {
        [one] => one.headline(),
        many => format!("Your IHF digest: {} notifications", many.len()),
    };
    let mut text = format!("Hello {name},\n\n");
    let mut html = format!("<!doctype html><html><body><p>Hello {},</p>\n", esc(name));
    // Digests group by hub (the items come sorted by hub).
    let mut hub: Option<i64> = None;
    for item in items {
        if items.len() > 1 && hub != Some(item.hub_id) {
            if hub.is_some() {
                html.push_str("</ul>\n");
            }
            text.push_str(&format!("{}\n", item.hub_name));
            html.push_str(&format!("<h2>{}</h2>\n<ul>\n", esc(&item.hub_name)));
            hub = Some(item.hub_id);
        }
        let link = format!("{base}{}", item.path());
        if visitor {
            text.push_str(&format!("- {}\n", item.headline()));
        } else {
            text.push_str(&format!("- {}\n  {link}\n", item.headline()));
        }
        if let Some(rationale) = item.rationale() {
            text.push_str(&format!("  Rationale: {rationale}\n"));
        }
        if let Some(reply) = item.reply_text() {
            text.push_str(&format!("  Reply: {reply}\n"));
        }
        if let Some(excerpt) = &item.excerpt {
            text.push_str(&format!("  “{excerpt}”\n"));
        }
        let open = if items.len() > 1 { "<li>" } else { "<p>" };
        let close = if items.len() > 1 { "</li>" } else { "</p>" };
        if visitor {
            html.push_str(&format!("{open}{}", esc(&item.headline())));
        } else {
            html.push_str(&format!("{open}<a href=\"{}\">{}</a>", esc(&link), esc(&item.headline())));
        }
        if let Some(rationale) = item.rationale() {
            html.push_str(&format!("<br>Rationale: {}", esc(rationale)));
        }
        if let Some(reply) = item.reply_text() {
            html.push_str(&format!("<br>Reply: {}", esc(reply)));
        }
        if let Some(excerpt) = &item.excerpt {
            html.push_str(&format!("<br><q>{}</q>", esc(excerpt)));
        }
        html.push_str(close);
        html.push('\n');
    }
    if hub.is_some() {
        html.push_str("</ul>\n");
    }
    if visitor {
        text.push_str(&format!(
            "\nRead and answer it where you gave the feedback.\nUnsubscribe from all notification mail: {unsubscribe_url}\n"
        ));
        html.push_str(&format!(
            "<p>Read and answer it where you gave the feedback.</p>\n<p><small><a href=\"{}\">Unsubscribe</a></small></p></body></html>\n",
            esc(&unsubscribe_url)
        ));
    } else {
        text.push_str(&format!(
            "\nChange how you get these: {settings_url}\nUnsubscribe from all notification mail: {unsubscribe_url}\n"
        ));
        html.push_str(&format!(
            "<p><small><a href=\"{}\">Change how you get these</a> · <a href=\"{}\">Unsubscribe</a></small></p></body></html>\n",
            esc(&settings_url),
            esc(&unsubscribe_url)
        ));
    }
    Mail { subject, text, html, unsubscribe_url }
}

/// HTML-escapes text for the mail's HTML part.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsubscribe_tokens_name_one_person() {
        let secret = b"s3cret";
        let token = unsubscribe_token(secret, 42);
        assert_eq!(verify_unsubscribe(secret, &token), Some(42));
        assert_eq!(verify_unsubscribe(b"other", &token), None);
        let forged = token.replacen("42.", "43.", 1);
        assert_eq!(verify_unsubscribe(secret, &forged), None);
        assert_eq!(verify_unsubscribe(secret, "42"), None);
        assert_eq!(verify_unsubscribe(secret, "x.y"), None);
    }

    fn replied() -> Notification {
        Notification {
            id: 1,
            recipient_id: 7,
            kind: "replied".into(),
            hub_id: 1,
            hub_slug: "checkout".into(),
            hub_name: "Checkout".into(),
            widget_slug: Some("payment-form".into()),
            widget_name: Some("Payment form".into()),
            annotation_id: Some(3),
            candidate_id: None,
            reply_id: Some(4),
            candidate_title: None,
            actor_name: Some("Olga".into()),
            excerpt: Some("The postcode field".into()),
            detail: "Fixed today".into(),
            created_at: 0,
            read_at: None,
        }
    }

    #[test]
    fn a_visitors_mail_links_to_nothing_they_cannot_open() {
        let person = compose_for(Recipient::Person, "https://ihf.example", b"k", 7, "Vera", &[replied()]);
        assert!(
            person.text.contains("https://ihf.example/hubs/checkout/")
                && person.text.contains("/settings/notifications")
        );
        let visitor = compose_for(Recipient::Visitor, "https://ihf.example", b"k", 7, "Vera", &[replied()]);
        let links: Vec<&str> = visitor.text.split_whitespace().filter(|w| w.starts_with("https://")).collect();
        assert_eq!(links, [visitor.unsubscribe_url.as_str()], "only the one-click unsubscribe: {}", visitor.text);
        assert_eq!(visitor.html.matches("href=").count(), 1, "{}", visitor.html);
        assert!(visitor.text.contains("Olga replied to your feedback on Payment form"));
        assert!(visitor.text.contains("where you gave the feedback"));
    }
}
