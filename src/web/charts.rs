//! Server-rendered SVG charts (no chart library): per-widget sparklines of events and
//! annotations per day, the hub's feedback by category over time, and the triage backlog.
//!
//! Each chart is an `<svg role="img">` whose label says what it shows in words, with the same
//! figures in a table next to it (`<details>`), so a screen reader or a printout loses nothing.
//! Colours come from CSS custom properties, so dark mode needs nothing here. The charts live
//! inside regions that already update live (the dashboard's widgets panel, the widget page's
//! thread), so a write re-renders them like any other figure of those regions; their changing
//! parts (a day's column, a category's row, the words of the summary) are keyed rows of live
//! lists, so what a write changes is sent alone.

use std::collections::HashMap;

use askama::Template;

use crate::AppState;
use crate::clock::DAY_MS;
use crate::db::charts::{self, CategoryDaily, DAYS, Daily, WidgetActivity};
use crate::error::AppError;

/// The UTC days of the window, as `19 Nov`, oldest first.
pub fn day_labels(start: i64) -> Vec<String> {
    (0..DAYS as i64).map(|d| crate::web::format::day(start + d * DAY_MS)).collect()
}

fn max_of(values: &Daily) -> i64 {
    values.iter().copied().max().unwrap_or(0).max(1)
}

fn peak_phrase(values: &Daily, days: &[String]) -> String {
    let max = values.iter().copied().max().unwrap_or(0);
    match values.iter().position(|v| *v == max) {
        Some(i) if max > 0 => format!("peak {max} on {}", days.get(i).map(String::as_str).unwrap_or("?")),
        _ => "none on any day".to_owned(),
    }
}

/// A small line of one count per day.
#[derive(Debug, Clone, Template)]
#[template(path = "fragments/sparkline.html")]
pub struct Sparkline {
    /// What is counted, e.g. `events`.
    pub what: &'static str,
    pub values: Daily,
    /// `x,y` pairs of the polyline in a 112 × 28 box.
    pub points: String,
    /// The text alternative: totals, peak and today.
    pub summary: String,
}

impl Sparkline {
    /// The sparkline of `values` (days as `days`), for `subject` (a widget's name).
    pub fn new(what: &'static str, subject: &str, values: Daily, days: &[String]) -> Self {
        let max = max_of(&values) as f64;
        let step = 112.0 / (DAYS as f64 - 1.0);
        let points = values
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", i as f64 * step, 26.0 - (*v as f64 / max) * 24.0))
            .collect::<Vec<_>>()
            .join(" ");
        let total: i64 = values.iter().sum();
        let today = values.last().copied().unwrap_or(0);
        let summary =
            format!("{subject}: {total} {what} in the last {DAYS} days, {}, {today} today", peak_phrase(&values, days));
        Self { what, values, points, summary }
    }

    /// The values as `1,0,3,…` (for the `data-values` attribute tests and scripts read).
    pub fn csv(&self) -> String {
        self.values.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
    }
}

/// One coloured segment of a stacked bar (a day's column, 20 wide and 100 high).
#[derive(Debug, Clone)]
pub struct Segment {
    pub y: String,
    pub height: String,
    pub colour: String,
    pub title: String,
}

/// Annotations per day, stacked by category, with the table of the same figures.
///
/// Each day's column is its own small SVG (and each category its own table row), keyed by id in
/// a live list: one new annotation changes today's column and its category's row, and a live
/// update sends those alone (`live::delta`); the words that describe the whole chart are a row
/// too, so they never make it go whole.
#[derive(Debug, Clone, Template)]
#[template(path = "fragments/chart_categories.html")]
pub struct CategoryChart {
    pub days: Vec<String>,
    pub categories: Vec<CategoryDaily>,
    /// One column of segments per day, oldest first.
    pub columns: Vec<Vec<Segment>>,
    pub summary: String,
}

impl CategoryChart {
    /// The chart of `categories` over `days`.
    pub fn new(categories: Vec<CategoryDaily>, days: Vec<String>) -> Self {
        let mut totals = [0i64; DAYS];
        for c in &categories {
            for (t, n) in totals.iter_mut().zip(c.counts) {
                *t += n;
            }
        }
        let max = max_of(&totals) as f64;
        let mut columns = Vec::with_capacity(days.len());
        for (day, label) in days.iter().enumerate() {
            let mut segments = Vec::new();
            let mut y = 100.0;
            for c in &categories {
                let n = c.counts.get(day).copied().unwrap_or(0);
                if n == 0 {
                    continue;
                }
                let height = n as f64 / max * 96.0;
                y -= height;
                segments.push(Segment {
                    y: format!("{y:.1}"),
                    height: format!("{height:.1}"),
                    colour: c.colour.clone(),
                    title: format!("{label}: {n} {}", c.label),
                });
            }
            columns.push(segments);
        }
        let total: i64 = totals.iter().sum();
        let mut parts: Vec<(i64, &str)> =
            categories.iter().map(|c| (c.counts.iter().sum::<i64>(), c.label.as_str())).filter(|p| p.0 > 0).collect();
        parts.sort_by_key(|p| std::cmp::Reverse(p.0));
        let breakdown = parts.iter().map(|(n, label)| format!("{label} {n}")).collect::<Vec<_>>().join(", ");
        let summary = if total == 0 {
            format!("No feedback in the last {DAYS} days.")
        } else {
            format!("{total} annotations in the last {DAYS} days by category: {breakdown}.")
        };
        Self { days, categories, columns, summary }
    }

    /// The label of the window's first day.
    pub fn first_day(&self) -> &str {
        self.days.first().map(String::as_str).unwrap_or_default()
    }

    /// The label of the window's last day (today).
    pub fn last_day(&self) -> &str {
        self.days.last().map(String::as_str).unwrap_or_default()
    }
}

/// The triage backlog (annotations awaiting triage) at the end of each day.
#[derive(Debug, Clone, Template)]
#[template(path = "fragments/chart_backlog.html")]
pub struct BacklogChart {
    pub days: Vec<String>,
    pub values: Daily,
    pub points: String,
    pub area: String,
    pub max: i64,
    pub summary: String,
}

impl BacklogChart {
    /// The chart of `values` over `days`.
    pub fn new(values: Daily, days: Vec<String>) -> Self {
        let max = max_of(&values);
        let step = 272.0 / (DAYS as f64 - 1.0);
        let coords: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", 4.0 + i as f64 * step, 76.0 - (*v as f64 / max as f64) * 70.0))
            .collect();
        let points = coords.join(" ");
        let area = format!("4,76 {points} 276,76");
        let first = values.first().copied().unwrap_or(0);
        let now = values.last().copied().unwrap_or(0);
        let trend = match now.cmp(&first) {
            std::cmp::Ordering::Greater => "up",
            std::cmp::Ordering::Less => "down",
            std::cmp::Ordering::Equal => "unchanged",
        };
        let summary = format!(
            "Triage backlog: {now} awaiting triage now, {first} {} days ago ({trend}), {}.",
            DAYS - 1,
            peak_phrase(&values, &days)
        );
        Self { days, values, points, area, max, summary }
    }

    /// The label of the window's first day.
    pub fn first_day(&self) -> &str {
        self.days.first().map(String::as_str).unwrap_or_default()
    }

    /// The label of the window's last day (today).
    pub fn last_day(&self) -> &str {
        self.days.last().map(String::as_str).unwrap_or_default()
    }

    /// The values as `1,0,3,…`.
    pub fn csv(&self) -> String {
        self.values.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
    }
}

/// Every chart of a hub (or of one widget): sparklines per widget, categories, backlog.
#[derive(Debug, Clone)]
pub struct HubCharts {
    pub days: Vec<String>,
    pub activity: HashMap<i64, WidgetActivity>,
    pub categories: CategoryChart,
    pub backlog: BacklogChart,
}

impl HubCharts {
    /// The sparkline of `what` (`events` or `annotations`) of widget `id` named `name`.
    pub fn sparkline(&self, id: i64, name: &str, what: &'static str) -> Sparkline {
        let activity = self.activity.get(&id).cloned().unwrap_or_default();
        let values = if what == "events" { activity.events } else { activity.annotations };
        Sparkline::new(what, name, values, &self.days)
    }

    /// The per-day figures of widget `id`, for the table fallback.
    pub fn daily(&self, id: i64) -> WidgetActivity {
        self.activity.get(&id).cloned().unwrap_or_default()
    }
}

/// Loads the charts of hub `hub_id` over the widgets in `widget_ids` (the ones the viewer sees).
pub async fn load(state: &AppState, hub_id: i64, widget_ids: &[i64]) -> Result<HubCharts, AppError> {
    let now = crate::db::now_ms();
    let start = charts::window_start(now);
    let (activity, categories, backlog) = tokio::try_join!(
        charts::widget_activity(&state.db, widget_ids, start),
        charts::category_daily(&state.db, hub_id, widget_ids, start),
        charts::backlog(&state.db, widget_ids, start, now),
    )?;
    let days = day_labels(start);
    Ok(HubCharts {
        categories: CategoryChart::new(categories, days.clone()),
        backlog: BacklogChart::new(backlog, days.clone()),
        days,
        activity,
    })
}

/// The charts of one widget: its two sparklines, its feedback by category, its backlog.
#[derive(Debug, Clone, Template)]
#[template(path = "fragments/widget_charts.html")]
pub struct WidgetCharts {
    pub days: Vec<String>,
    pub events: Sparkline,
    pub annotations: Sparkline,
    pub daily: WidgetActivity,
    pub categories: CategoryChart,
    pub backlog: BacklogChart,
}

/// Loads the charts of `widget` alone.
pub async fn load_widget(state: &AppState, widget: &crate::db::widgets::Widget) -> Result<WidgetCharts, AppError> {
    let charts = load(state, widget.hub_id, &[widget.id]).await?;
    Ok(WidgetCharts {
        events: charts.sparkline(widget.id, &widget.name, "events"),
        annotations: charts.sparkline(widget.id, &widget.name, "annotations"),
        daily: charts.daily(widget.id),
        days: charts.days,
        categories: charts.categories,
        backlog: charts.backlog,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sparkline_says_its_totals_and_scales_to_its_peak() {
        let days: Vec<String> = (1..=14).map(|d| format!("{d} Nov")).collect();
        let mut values = [0; DAYS];
        values[3] = 4;
        values[13] = 2;
        let s = Sparkline::new("events", "Cart", values, &days);
        assert_eq!(s.summary, "Cart: 6 events in the last 14 days, peak 4 on 4 Nov, 2 today");
        assert!(s.points.starts_with("0.0,26.0 "));
        assert!(s.points.contains(",2.0"), "the peak reaches the top: {}", s.points);
        assert_eq!(s.csv(), "0,0,0,4,0,0,0,0,0,0,0,0,0,2");
    }

    #[test]
    fn stacked_bars_add_up_and_the_backlog_names_its_trend() {
        let days: Vec<String> = (1..=14).map(|d| format!("{d} Nov")).collect();
        let mut a = [0; DAYS];
        a[0] = 1;
        let mut b = [0; DAYS];
        b[0] = 1;
        b[5] = 3;
        let cat = |slug: &str, counts| CategoryDaily {
            slug: slug.into(),
            label: slug.into(),
            colour: "amber".into(),
            counts,
        };
        let chart = CategoryChart::new(vec![cat("bug", a), cat("idea", b)], days.clone());
        assert_eq!(chart.columns.iter().map(Vec::len).sum::<usize>(), 3);
        assert_eq!(chart.summary, "5 annotations in the last 14 days by category: idea 4, bug 1.");
        let mut backlog = [5; DAYS];
        backlog[13] = 2;
        let trend = BacklogChart::new(backlog, days);
        assert!(trend.summary.starts_with("Triage backlog: 2 awaiting triage now, 5 13 days ago (down)"));
    }
}
