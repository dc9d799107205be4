//! Similar feedback while typing: the database's own full-text search (SQLite FTS5 with the
//! porter stemmer, PostgreSQL `to_tsvector('english', …)`, both indexed by migration 0017) over
//! the live, open annotations of one widget that the viewer may read.

use super::annotations::{AnnotationRow, ROW_SELECT};
use super::sql::SqlBuilder;
use super::visibility;
use super::{Backend, Db, StoreError};
use crate::access::Viewer;

/// How many words a draft needs before anything is suggested.
pub const MIN_WORDS: usize = 3;
/// At most this many words of the draft are searched for.
const MAX_TERMS: usize = 12;

const STOP_WORDS: &[&str] = &[
    "the", "and", "for", "are", "but", "not", "you", "your", "with", "this", "that", "have", "has", "was", "were",
    "when", "what", "from", "they", "then", "than", "there", "here", "can", "cannot", "could", "would", "should",
    "into", "just", "also", "very", "all", "any", "our", "out", "its", "it's", "does", "did", "doesn", "don",
];

/// The search terms of a draft: its words of three or more letters or digits, lowercased,
/// without common stop words, each once. `None` until the draft has [`MIN_WORDS`] words at all.
pub fn terms(draft: &str) -> Option<Vec<String>> {
    let words: Vec<&str> = draft.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).collect();
    if words.len() < MIN_WORDS {
        return None;
    }
    let mut terms: Vec<String> = Vec::new();
    for word in words {
        let word = word.to_lowercase();
        if word.chars().count() >= 3 && !STOP_WORDS.contains(&word.as_str()) && !terms.contains(&word) {
            terms.push(word);
        }
        if terms.len() == MAX_TERMS {
            break;
        }
    }
    (!terms.is_empty()).then_some(terms)
}

/// Up to `limit` annotations on the widget that match the draft best, written by others, still
/// open (not dismissed, not duplicates), that `viewer` may read. Runs as the viewer.
pub async fn on_widget(
    db: &Db,
    viewer: &Viewer,
    widget_id: i64,
    draft: &str,
    limit: i64,
) -> Result<Vec<AnnotationRow>, StoreError> {
    let Some(terms) = terms(draft) else { return Ok(Vec::new()) };
    let mut qb = SqlBuilder::new(ROW_SELECT);
    match db.backend() {
        Backend::Sqlite => {
            // Every term quoted: FTS5 then reads it as a plain token, never as query syntax.
            let query: Vec<String> = terms.iter().map(|t| format!("\"{t}\"")).collect();
            qb.push(" JOIN (SELECT rowid AS id, rank FROM annotations_fts WHERE annotations_fts MATCH ");
            qb.push_bind(query.join(" OR ")).push(") f ON f.id = a.id");
        }
        Backend::Postgres => {
            // Terms are letters and digits only: safe as `to_tsquery` operands.
            qb.push(" JOIN LATERAL (SELECT ts_rank(to_tsvector('english', a.body), q) AS score");
            qb.push(" FROM to_tsquery('english', ").push_bind(terms.join(" | ")).push(") q");
            qb.push(" WHERE to_tsvector('english', a.body) @@ q) f ON true");
        }
    }
    qb.push(" WHERE a.widget_id = ").push_bind(widget_id);
    qb.push(" AND a.deleted_at IS NULL AND a.status NOT IN ('dismissed', 'duplicate') AND a.actor_id <> ");
    qb.push_bind(visibility::sql_actor(viewer)).push(" AND ");
    visibility::push_annotation_visible(&mut qb, viewer);
    match db.backend() {
        Backend::Sqlite => qb.push(" ORDER BY f.rank, a.created_at DESC LIMIT "),
        Backend::Postgres => qb.push(" ORDER BY f.score DESC, a.created_at DESC LIMIT "),
    };
    qb.push_bind(limit);
    db.fetch_all_as(viewer.actor_id, qb).await
}

#[cfg(test)]
mod tests {
    use super::terms;

    #[test]
    fn a_few_words_make_terms() {
        assert_eq!(terms("the card"), None);
        assert_eq!(terms("The card field, the CARD field!"), Some(vec!["card".into(), "field".into()]));
        assert_eq!(terms("a b c"), None, "three words but no term");
        assert_eq!(terms("\"OR\" NEAR(x) * crash"), Some(vec!["near".into(), "crash".into()]));
    }
}
