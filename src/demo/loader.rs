//! Writes the demo into the database once: hubs, people and their roles, widgets, a week of
//! events, feedback and requirement candidates with their ledger.

use super::data::{CUSTOMERS, EVENT_KINDS, FEEDBACK, PEOPLE, WIDGETS};
use crate::auth::password;
use crate::db::Db;
use crate::db::annotations::{AnnotationStatus, NewAnnotation};
use crate::db::events::NewEvent;
use crate::db::widgets::NewWidget;
use crate::db::{StoreError, actors, annotations, candidates, events, hubs, now_ms, widgets};
use crate::governance::Status;

/// A demo login to print at start-up.
#[derive(Debug, Clone)]
pub struct DemoLogin {
    pub handle: String,
    pub password: String,
    pub what: String,
}

/// The slug whose presence means the demo was seeded.
pub const MARKER_HUB: &str = "checkout";

/// A small deterministic generator, so every demo looks alike.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Seeds the demo unless it is there already; returns the logins on a fresh seed.
pub async fn seed(db: &Db) -> Result<Option<Vec<DemoLogin>>, StoreError> {
    match hubs::by_slug(db, MARKER_HUB).await {
        Ok(_) => return Ok(None),
        Err(StoreError::NotFound) => {}
        Err(e) => return Err(e),
    }
    let mut dice = Dice(0x1f2e_3d4c_5b6a_7988);
    let now = now_ms();
    let mut logins = Vec::new();
    let mut tx = db.writer().begin().await?;

    let checkout = hubs::insert(
        &mut tx,
        "checkout",
        "Checkout & Payments",
        "Everything between 'Add to cart' and the order confirmation.",
    )
    .await?;
    let onboarding = hubs::insert(
        &mut tx,
        "onboarding",
        "Onboarding",
        "Sign-up, first workspace, invites and the trial-to-paid step.",
    )
    .await?;
    let hub_id = |slug: &str| if slug == "checkout" { checkout.id } else { onboarding.id };

    let mut person_ids = std::collections::HashMap::new();
    for person in PEOPLE {
        let secret = crate::crypto::random_token(9);
        let hash = password::hash(&secret).map_err(|e| StoreError::Config(format!("hashing a demo password: {e}")))?;
        let id = actors::insert_person(&mut tx, person.handle, person.name, Some(&hash), person.admin).await?;
        for (hub, role) in person.roles {
            actors::grant_in(&mut tx, hub_id(hub), id, role).await?;
        }
        person_ids.insert(person.handle, id);
        logins.push(DemoLogin { handle: person.handle.into(), password: secret, what: person.what.into() });
    }
    let mut customer_ids = Vec::new();
    for (i, name) in CUSTOMERS.iter().enumerate() {
        let handle = format!("customer{}", i + 1);
        customer_ids.push(actors::insert_person(&mut tx, &handle, name, None, false).await?);
    }

    let mut widget_rows = Vec::new();
    for w in WIDGETS {
        let widget = widgets::insert(
            &mut tx,
            &NewWidget {
                hub_id: hub_id(w.hub),
                slug: w.slug,
                name: w.name,
                description: w.description,
                owner_id: w.owner.and_then(|h| person_ids.get(h).copied()),
                policy_scope: w.scope,
                allowed_origins: "http://127.0.0.1:8081 http://localhost:8081",
            },
        )
        .await?;
        widget_rows.push(widget);
    }

    // A week of interaction events, busier in the daytime and more recent days.
    let total_weight: usize = EVENT_KINDS.iter().map(|(_, w)| w).sum();
    let mut new_events = Vec::with_capacity(2_400);
    for _ in 0..2_400 {
        let widget = dice.pick(&widget_rows);
        let mut roll = dice.below(total_weight);
        let kind = EVENT_KINDS
            .iter()
            .find(|(_, weight)| {
                if roll < *weight {
                    true
                } else {
                    roll -= weight;
                    false
                }
            })
            .map_or("view", |(kind, _)| kind);
        let age = (dice.below(7 * 24 * 60) as i64) * 60_000 / (1 + dice.below(3) as i64);
        let actor = (dice.below(3) == 0).then(|| *dice.pick(&customer_ids));
        let payload = match kind {
            "error" => r#"{"message":"TypeError: cannot read properties of undefined"}"#,
            "rage_click" => r#"{"clicks":5,"target":"button.apply"}"#,
            "click" => r#"{"target":"button.primary"}"#,
            _ => "{}",
        };
        new_events.push(NewEvent {
            hub_id: widget.hub_id,
            widget_id: widget.id,
            kind,
            actor_id: actor,
            occurred_at: now - age,
            payload: payload.to_owned(),
        });
    }
    events::insert_batch(&mut tx, &new_events).await?;

    // Feedback: 168 annotations across widgets, categories and statuses.
    let mut category_ids = std::collections::HashMap::new();
    for hub in [checkout.id, onboarding.id] {
        let rows: Vec<(i64, String)> =
            sqlx::query_as("SELECT id, slug FROM categories WHERE hub_id = $1").bind(hub).fetch_all(&mut *tx).await?;
        for (id, slug) in rows {
            category_ids.insert((hub, slug), id);
        }
    }
    // Authors who can read what they wrote: customers, and the demo's people only on widgets
    // of their own hub (a private widget: its owner), so no one appears where they have no access.
    let hub_of = |hub: i64| if hub == checkout.id { "checkout" } else { "onboarding" };
    let mut created = Vec::new();
    for i in 0..168 {
        let widget = &widget_rows[i % widget_rows.len()];
        let texts: Vec<(&str, &str)> =
            FEEDBACK.iter().filter(|(w, ..)| *w == widget.slug).map(|(_, c, t)| (*c, *t)).collect();
        let Some(&(category, text)) = texts.get((i / widget_rows.len() + i) % texts.len().max(1)) else {
            continue;
        };
        let authors: Vec<i64> = customer_ids
            .iter()
            .copied()
            .chain(
                PEOPLE
                    .iter()
                    .filter(|p| p.roles.iter().any(|(hub, _)| *hub == hub_of(widget.hub_id)))
                    .filter(|p| match widget.policy_scope.as_str() {
                        "private" => widget.owner_id.is_some() && widget.owner_id == person_ids.get(p.handle).copied(),
                        _ => ["anna", "ali", "wendy"].contains(&p.handle),
                    })
                    .filter_map(|p| person_ids.get(p.handle).copied()),
            )
            .collect();
        let status = match dice.below(20) {
            0..=10 => AnnotationStatus::New,
            11..=15 => AnnotationStatus::Triaged,
            16..=17 => AnnotationStatus::Dismissed,
            _ => AnnotationStatus::Duplicate,
        };
        let category_id =
            category_ids.get(&(widget.hub_id, category.to_owned())).copied().ok_or(StoreError::NotFound)?;
        let created_at = now - (dice.below(7 * 24 * 60) as i64) * 60_000 - 30_000;
        let id = annotations::insert(
            &mut tx,
            &NewAnnotation {
                hub_id: widget.hub_id,
                widget_id: widget.id,
                actor_id: *dice.pick(&authors),
                body: text,
                category_id,
                status,
                created_at,
                idempotency_key: None,
            },
        )
        .await?;
        created.push((id, widget.hub_id, status, category));
    }
    // Duplicates point at an earlier annotation of the same hub.
    for &(id, hub, status, _) in &created {
        if status == AnnotationStatus::Duplicate
            && let Some(&(original, ..)) =
                created.iter().find(|(other, h, s, _)| *h == hub && *s == AnnotationStatus::New && *other < id)
        {
            sqlx::query("UPDATE annotations SET duplicate_of = $1 WHERE id = $2")
                .bind(original)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
    }

    // Requirement candidates, promoted from triaged feedback, with their ledger entries.
    let olga = person_ids.get("olga").copied().ok_or(StoreError::NotFound)?;
    let tomas = person_ids.get("tomas").copied().ok_or(StoreError::NotFound)?;
    let tara = person_ids.get("tara").copied().ok_or(StoreError::NotFound)?;
    let evidence = |hub: i64, category: &str, n: usize| -> Vec<i64> {
        created
            .iter()
            .filter(|(_, h, s, c)| *h == hub && *s == "triaged" && *c == category)
            .take(n)
            .map(|(id, ..)| *id)
            .collect()
    };
    let plans = [
        (
            checkout.id,
            tomas,
            "Keep the order total visible on every checkout step",
            "Customers lose track of the total when they change quantities or shipping. The summary must stay in view (sticky on desktop, collapsible on mobile).",
            "friction",
            Some((Status::Accepted, "Strong signal across cart and payment; cheap to build.")),
        ),
        (
            checkout.id,
            tomas,
            "Promo codes: explain why a code is refused",
            "A refused code must say why (expired, minimum not met, not combinable) so customers don't abandon checkout.",
            "bug",
            Some((Status::Deferred, "Needs the pricing service rewrite planned for Q3.")),
        ),
        (
            checkout.id,
            tomas,
            "Offer express wallets on desktop",
            "Apple Pay and Google Pay should be offered on desktop browsers that support them.",
            "idea",
            None,
        ),
        (
            onboarding.id,
            tara,
            "Let people skip and resume the product tour",
            "The tour must be skippable and restartable from Help; it must not reopen on workspace switch.",
            "friction",
            Some((Status::Accepted, "Top onboarding complaint this month.")),
        ),
    ];
    for (hub, proposer, title, statement, category, decision) in plans {
        let ids = evidence(hub, category, 3);
        let candidate = candidates::propose(&mut tx, hub, proposer, title, statement, &ids).await?;
        if let Some((to, rationale)) = decision {
            let decision = candidates::Decision {
                hub_id: hub,
                candidate_id: candidate,
                actor_id: olga,
                from: Status::Proposed,
                to,
                rationale,
            };
            candidates::decide(&mut tx, &decision).await?;
        }
    }
    tx.commit().await?;
    Ok(Some(logins))
}
