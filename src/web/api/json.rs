//! The JSON the API answers about annotations: an annotation with its author, its "me too" support
//! ([`SupportJson`]) and its reply count ([`Talk`], read in the caller's transaction).

use std::collections::HashMap;

use serde::Serialize;

use super::caller::Caller;
use crate::db::api::{ApiAnnotation, Tx};
use crate::db::{StoreError, replies as reply_store, supports};

/// An annotation's author.
#[derive(Debug, Clone, Serialize)]
pub struct AuthorJson {
    pub id: i64,
    pub name: String,
}

/// An annotation as the API returns it (times in epoch milliseconds).
#[derive(Debug, Clone, Serialize)]
pub struct AnnotationJson {
    pub id: i64,
    /// The widget's embed key.
    pub widget: String,
    pub author: AuthorJson,
    /// Whether the caller wrote it.
    pub mine: bool,
    pub body: String,
    pub category: String,
    pub status: crate::db::annotations::AnnotationStatus,
    pub created_at: i64,
    pub updated_at: i64,
    pub version: i64,
    /// Its "me too" support, and how many replies the caller reads under it. Left out of stream
    /// events: they change without a new version of the annotation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub support: Option<SupportJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replies: Option<i64>,
}

/// The support and reply counts of a page of annotations, read in the caller's transaction
/// (as the caller: on PostgreSQL Row Level Security applies).
#[derive(Debug, Default)]
pub struct Talk {
    support: HashMap<i64, supports::Support>,
    replies: HashMap<i64, i64>,
}

impl Talk {
    /// Loads them for the annotations `ids`.
    pub async fn load(tx: &mut Tx, caller: &Caller, ids: &[i64]) -> Result<Self, StoreError> {
        let support = supports::counts_in(tx, caller.actor_id(), ids).await?;
        let replies = reply_store::for_annotations_in(tx, caller.annotation_filter().as_ref(), ids)
            .await?
            .into_iter()
            .map(|(id, thread)| (id, thread.len() as i64))
            .collect();
        Ok(Self { support, replies })
    }

    /// The JSON of a row with its counts, as seen by `me`.
    pub fn json(&self, row: &ApiAnnotation, me: Option<i64>) -> AnnotationJson {
        let mut json = AnnotationJson::new(row, me);
        json.support = Some(self.support.get(&row.id).copied().unwrap_or_default().into());
        json.replies = Some(self.replies.get(&row.id).copied().unwrap_or_default());
        json
    }
}

impl AnnotationJson {
    /// The JSON of a row, as seen by `me`, without its counts (see [`Talk::json`]).
    pub fn new(row: &ApiAnnotation, me: Option<i64>) -> Self {
        Self {
            id: row.id,
            widget: row.widget_key.clone(),
            author: AuthorJson { id: row.actor_id, name: row.author_name.clone() },
            mine: me == Some(row.actor_id),
            body: row.body.clone(),
            category: row.category.clone(),
            status: row.status,
            created_at: row.created_at,
            updated_at: row.updated_at,
            version: row.version,
            support: None,
            replies: None,
        }
    }
}

/// An annotation's support as the caller sees it.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SupportJson {
    /// How many people and visitors support it.
    pub count: i64,
    /// Whether the caller does.
    pub mine: bool,
}

impl From<supports::Support> for SupportJson {
    fn from(support: supports::Support) -> Self {
        Self { count: support.count, mine: support.mine }
    }
}
