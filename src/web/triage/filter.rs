//! The triage board's filters: as the URL carries them, checked, and back into a query string.

use serde::Deserialize;

use crate::clock::{DAY_MS, day_start_ms};
use crate::db::annotations::STATUSES;
use crate::db::triage::QueueFilter;
use crate::error::AppError;
use crate::web::format::urlencode;
use crate::web::input;

/// The board's filters as they appear in the URL (every field optional).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct FilterParams {
    pub status: Option<String>,
    pub widget: Option<String>,
    pub category: Option<String>,
    pub q: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    /// `support`: most "me too"s first; otherwise oldest first.
    pub sort: Option<String>,
}

/// The filters, checked: what the form shows and what the store filters by.
#[derive(Debug, Clone)]
pub struct Filter {
    /// A status, or `all`.
    pub status: String,
    pub widget: String,
    pub category: String,
    pub q: String,
    pub from: String,
    pub to: String,
    /// `support` or empty (oldest first).
    pub sort: String,
    pub store: QueueFilter,
}

impl Filter {
    /// Checks the URL's filters: the status defaults to `new`; unknown values are a 400.
    pub fn parse(params: FilterParams) -> Result<Self, AppError> {
        let clean = |v: Option<String>| v.map(|v| v.trim().to_owned()).unwrap_or_default();
        let status = match clean(params.status) {
            s if s.is_empty() => "new".to_owned(),
            s if s == "all" || STATUSES.contains(&s.as_str()) => s,
            _ => return Err(AppError::BadRequest("unknown status".into())),
        };
        let (from, to) = (clean(params.from), clean(params.to));
        let day = |d: &str| {
            if d.is_empty() {
                Ok(None)
            } else {
                day_start_ms(d).map(Some).ok_or_else(|| AppError::BadRequest("dates are written YYYY-MM-DD".into()))
            }
        };
        let (from_ms, until_ms) = (day(&from)?, day(&to)?.map(|t| t + DAY_MS));
        let widget = input::slug_filter("widget", params.widget.as_deref())?;
        let category = input::slug_filter("category", params.category.as_deref())?;
        let q = input::search(params.q.as_deref())?;
        let sort = match clean(params.sort) {
            s if s.is_empty() || s == "oldest" => String::new(),
            s if s == "support" => s,
            _ => return Err(AppError::BadRequest("sort is oldest or support".into())),
        };
        let some = |v: &str| (!v.is_empty()).then(|| v.to_owned());
        let store = QueueFilter {
            status: (status != "all").then(|| status.clone()),
            widget: some(&widget),
            category: some(&category),
            text: some(&q),
            from_ms,
            until_ms,
            by_support: !sort.is_empty(),
        };
        Ok(Self { status, widget, category, q, from, to, sort, store })
    }

    pub(super) fn query_with(&self, status: &str, category: &str) -> String {
        let mut out = format!("status={}", urlencode(status));
        for (name, value) in [
            ("widget", &self.widget),
            ("category", &category.to_owned()),
            ("q", &self.q),
            ("from", &self.from),
            ("to", &self.to),
            ("sort", &self.sort),
        ] {
            if !value.is_empty() {
                out.push_str(&format!("&{name}={}", urlencode(value)));
            }
        }
        out
    }

    /// The query string of these filters.
    pub fn query(&self) -> String {
        self.query_with(&self.status, &self.category)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_default_to_new_and_round_trip() {
        let filter = Filter::parse(FilterParams::default()).expect("filter");
        assert_eq!(filter.store.status.as_deref(), Some("new"));
        assert_eq!(filter.query(), "status=new");
        let filter = Filter::parse(FilterParams {
            status: Some("all".into()),
            q: Some(" 50% off ".into()),
            from: Some("2024-02-28".into()),
            to: Some("2024-02-29".into()),
            ..FilterParams::default()
        })
        .expect("filter");
        assert_eq!(filter.store.status, None);
        assert_eq!(filter.query(), "status=all&q=50%25%20off&from=2024-02-28&to=2024-02-29");
        assert_eq!(filter.store.from_ms, Some(1_709_078_400_000));
        assert_eq!(filter.store.until_ms, Some(1_709_251_200_000));
        assert!(Filter::parse(FilterParams { status: Some("bogus".into()), ..FilterParams::default() }).is_err());
        assert!(Filter::parse(FilterParams { from: Some("2024-13-01".into()), ..FilterParams::default() }).is_err());
    }
}
