//! How values read as text, wherever a person reads them: portal and console pages and the
//! emails the workers send. One module below both the web layer and the actors, so a page and
//! an email can never say the same thing two ways.
//!
//! What customers read is in their language ([`Lang`]: dates, amounts and the phrases built
//! from them, worded in `locales/*/display.ftl`); what staff read in the console stays English.

use chrono::{DateTime, NaiveDate, Utc};

use crate::domain::Money;
use crate::i18n::Lang;

/// An instant as staff read it in the console: `2026-03-05 14:02:09 UTC`.
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// A day as staff read it in the console: `2026-03-05`.
pub fn day(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d").to_string()
}

/// A status or kind word as a label: `past_due` → `Past due`.
pub fn humanize(s: &str) -> String {
    let s = s.replace('_', " ");
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().collect::<String>() + chars.as_str(),
        None => String::new(),
    }
}

/// A status or kind word as customers read it: the message `{kind}-{value}` (`rental-status-
/// active` → `Active`), else the word made a label.
pub fn label(lang: &Lang, kind: &str, value: &str) -> String {
    let id = format!("{kind}-{value}");
    if lang.has(&id) {
        lang.msg(&id)
    } else {
        humanize(value)
    }
}

/// A rental's period: `Mar 5, 2026 to Jun 4, 2026` when it has an end; otherwise `From …` for a
/// rental that starts after `today` (a booking) and `Since …` for one already running.
pub fn rental_period(
    lang: &Lang,
    starts_on: NaiveDate,
    ends_on: Option<NaiveDate>,
    today: NaiveDate,
) -> String {
    let start = lang.date(starts_on);
    match ends_on {
        Some(end) => lang.arg2("period-between", "start", start, "end", lang.date(end)),
        None if starts_on > today => lang.arg("period-from", "start", start),
        None => lang.arg("period-since", "start", start),
    }
}

/// A rental's rate: `$120.00 CAD per month`.
pub fn rate(lang: &Lang, rate: &Money, period: &str) -> String {
    lang.arg2("rate", "amount", lang.money(rate), "period", period)
}

/// Who did something, as the audit log names them: `Olivia Owner (owner)` for staff (stored as
/// `Olivia Owner <olivia@…> (owner)`), `Latchkey` for the system itself, an API key by its name.
pub fn audit_actor(actor: &str) -> String {
    match actor {
        "system" => "Latchkey".to_string(),
        _ => match (actor.find(" <"), actor.rfind("> (")) {
            (Some(start), Some(end)) if start < end => {
                format!("{}{}", &actor[..start], &actor[end + 1..])
            }
            _ => actor.to_string(),
        },
    }
}

/// An audit entry as a sentence, for every action the code records: `Olivia Owner (owner)
/// merged account #12 (Alex Martin, alex.work@example.com) into #7`. An action this version
/// does not know still reads as one (`… did "some action"`), with its details on demand.
pub fn audit_sentence(actor: &str, action: &str, details: &serde_json::Value) -> String {
    let who = audit_actor(actor);
    let text = |key: &str| -> String {
        match details.get(key) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Null) | None => String::new(),
            Some(v) => v.to_string(),
        }
    };
    let account = |key: &str| match text(key) {
        id if id.is_empty() => "an account".to_string(),
        id => format!("account #{id}"),
    };
    let endpoint = || match text("url") {
        url if url.is_empty() => format!("webhook endpoint #{}", text("endpoint_id")),
        url => format!("webhook endpoint {url}"),
    };
    let what = match action {
        "resend_portal_link" => match text("email") {
            email if email.is_empty() => {
                format!("resent a sign-in link to {}", account("account_id"))
            }
            email => format!("resent a sign-in link to {email}"),
        },
        "link_contact" => {
            let mut s = format!(
                "linked contact {} ({}) to {}",
                text("contact_ref"),
                text("facility"),
                account("account_id")
            );
            if !text("previous_account_id").is_empty() {
                s.push_str(&format!(", from #{}", text("previous_account_id")));
            }
            s
        }
        "merge_accounts" => format!(
            "merged {} ({}, {}) into #{}",
            account("merged_account_id"),
            text("merged_name"),
            text("merged_email"),
            text("into_account_id")
        ),
        "api_create_account" => {
            let contacts = details
                .get("contacts")
                .and_then(|c| c.as_array())
                .map(|c| c.iter().filter_map(|v| v.as_str()).collect::<Vec<_>>())
                .unwrap_or_default();
            let by = match text("api_key") {
                key if key.is_empty() => String::new(),
                key => format!(" through API key “{key}”"),
            };
            match contacts.as_slice() {
                [] => format!("created {}{by}", account("account_id")),
                refs => format!(
                    "created {}{by}, linked to {}",
                    account("account_id"),
                    refs.join(", ")
                ),
            }
        }
        "suppression.lifted" => format!(
            "lifted the suppression of {} ({})",
            text("email"),
            humanize(&text("reason")).to_lowercase()
        ),
        "staff.disabled" => format!("disabled staff member {}", text("email")),
        "staff.enabled" => format!("enabled staff member {}", text("email")),
        "webhook_endpoint_created" => format!("added {}", endpoint()),
        "webhook_endpoint_updated" => {
            let changes: Vec<&str> = [
                ("url", "the URL"),
                ("event_types", "the events"),
                ("description", "the description"),
            ]
            .iter()
            .filter(|(key, _)| details.get(*key).is_some())
            .map(|(_, label)| *label)
            .collect();
            let enabled = match details.get("enabled").and_then(|e| e.as_bool()) {
                Some(true) => Some("turned it on"),
                Some(false) => Some("turned it off"),
                None => None,
            };
            let target = format!("webhook endpoint #{}", text("endpoint_id"));
            match (changes.is_empty(), enabled) {
                (true, Some(e)) => format!("{} {target}", e.replace(" it", "")),
                (true, None) => format!("changed {target}"),
                (false, e) => {
                    let mut s = format!("changed {} of {target}", changes.join(" and "));
                    if let Some(e) = e {
                        s.push_str(&format!(" and {e}"));
                    }
                    s
                }
            }
        }
        "webhook_endpoint_deleted" => format!("deleted {}", endpoint()),
        "webhook_test_sent" => format!(
            "sent a test event to webhook endpoint #{}",
            text("endpoint_id")
        ),
        "webhook_endpoint_disabled" => match text("reason") {
            reason if reason.is_empty() => format!("disabled {}", endpoint()),
            reason => format!("disabled {}: {reason}", endpoint()),
        },
        other => format!("did “{}”", other.replace(['_', '.'], " ")),
    };
    format!("{who} {what}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::i18n::Catalog;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn an_open_rental_reads_from_before_it_starts_and_since_after() {
        let c = Catalog::load().unwrap();
        let en = c.get("en").unwrap();
        let start = d(2026, 3, 5);
        assert_eq!(
            rental_period(en, start, None, d(2026, 3, 1)),
            "From Mar 5, 2026"
        );
        assert_eq!(rental_period(en, start, None, start), "Since Mar 5, 2026");
        assert_eq!(
            rental_period(en, start, Some(d(2026, 6, 4)), d(2026, 1, 1)),
            "Mar 5, 2026 to Jun 4, 2026"
        );
        let fr = c.get("fr-CA").unwrap();
        assert_eq!(
            rental_period(fr, d(2026, 4, 1), None, d(2026, 3, 1)),
            "À partir du 1 avril 2026"
        );
        assert_eq!(
            rental_period(fr, start, Some(d(2026, 6, 4)), d(2026, 1, 1)),
            "Du 5 mars 2026 au 4 juin 2026"
        );
    }

    #[test]
    fn statuses_become_labels() {
        let c = Catalog::load().unwrap();
        assert_eq!(humanize("past_due"), "Past due");
        assert_eq!(humanize(""), "");
        assert_eq!(
            label(c.get("en").unwrap(), "rental-status", "active"),
            "Active"
        );
        assert_eq!(
            label(c.get("fr-CA").unwrap(), "rental-status", "active"),
            "En cours"
        );
        assert_eq!(
            label(c.get("fr-CA").unwrap(), "rental-status", "odd_one"),
            "Odd one"
        );
    }

    #[test]
    fn rates_name_their_period() {
        let c = Catalog::load().unwrap();
        let m = Money::new(12000, "CAD").unwrap();
        assert_eq!(
            rate(c.get("en").unwrap(), &m, "month"),
            format!("{m} per month")
        );
        assert_eq!(
            rate(c.get("fr-CA").unwrap(), &m, "month"),
            "120,00\u{a0}$ par mois"
        );
    }

    #[test]
    fn every_audit_action_reads_as_a_sentence() {
        use serde_json::json;
        let olivia = "Olivia Owner <olivia@harborview.example> (owner)";
        let sue = "Sue Support <sue@latchkey.example> (support)";
        let cases = [
            (
                sue,
                "merge_accounts",
                json!({"into_account_id": 7, "merged_account_id": 12, "merged_email": "alex.work@example.com", "merged_name": "Alex Martin", "moved": {"contacts": 1}}),
                "Sue Support (support) merged account #12 (Alex Martin, alex.work@example.com) into #7",
            ),
            (
                sue,
                "resend_portal_link",
                json!({"staff_user_id": 3, "account_id": 7, "email": "alex@example.com", "delivery_id": 9}),
                "Sue Support (support) resent a sign-in link to alex@example.com",
            ),
            (
                "API key crm",
                "resend_portal_link",
                json!({"api_key_id": 1, "account_id": 7, "delivery_id": 9}),
                "API key crm resent a sign-in link to account #7",
            ),
            (
                sue,
                "link_contact",
                json!({"contact_id": 4, "contact_ref": "CON-MR-2002", "facility": "Marina", "account_id": 8, "previous_account_id": null}),
                "Sue Support (support) linked contact CON-MR-2002 (Marina) to account #8",
            ),
            (
                "system",
                "api_create_account",
                json!({"api_key_id": 1, "api_key": "crm", "account_id": 9, "contacts": ["CON-1", "CON-2"]}),
                "Latchkey created account #9 through API key “crm”, linked to CON-1, CON-2",
            ),
            (
                olivia,
                "suppression.lifted",
                json!({"suppression_id": 2, "email": "sam@example.com", "reason": "hard_bounce", "by": olivia}),
                "Olivia Owner (owner) lifted the suppression of sam@example.com (hard bounce)",
            ),
            (
                "system",
                "staff.disabled",
                json!({"staff_user_id": 5, "email": "stan@harborview.example"}),
                "Latchkey disabled staff member stan@harborview.example",
            ),
            (
                "system",
                "staff.enabled",
                json!({"staff_user_id": 5, "email": "stan@harborview.example"}),
                "Latchkey enabled staff member stan@harborview.example",
            ),
            (
                olivia,
                "webhook_endpoint_created",
                json!({"endpoint_id": 3, "url": "https://crm.example/hooks", "event_types": ["delivery.sent"]}),
                "Olivia Owner (owner) added webhook endpoint https://crm.example/hooks",
            ),
            (
                olivia,
                "webhook_endpoint_updated",
                json!({"endpoint_id": 3, "url": "https://crm.example/h2", "enabled": false}),
                "Olivia Owner (owner) changed the URL of webhook endpoint #3 and turned it off",
            ),
            (
                olivia,
                "webhook_endpoint_updated",
                json!({"endpoint_id": 3, "enabled": true}),
                "Olivia Owner (owner) turned on webhook endpoint #3",
            ),
            (
                olivia,
                "webhook_endpoint_deleted",
                json!({"endpoint_id": 3, "url": "https://crm.example/hooks"}),
                "Olivia Owner (owner) deleted webhook endpoint https://crm.example/hooks",
            ),
            (
                olivia,
                "webhook_test_sent",
                json!({"endpoint_id": 3, "event": "evt_1"}),
                "Olivia Owner (owner) sent a test event to webhook endpoint #3",
            ),
            (
                "system",
                "webhook_endpoint_disabled",
                json!({"endpoint_id": 3, "url": "https://crm.example/hooks", "reason": "deliveries failed for 72 hours"}),
                "Latchkey disabled webhook endpoint https://crm.example/hooks: deliveries failed for 72 hours",
            ),
            (
                olivia,
                "something_new",
                json!({}),
                "Olivia Owner (owner) did “something new”",
            ),
        ];
        for (actor, action, details, sentence) in cases {
            assert_eq!(
                audit_sentence(actor, action, &details),
                sentence,
                "{action}"
            );
        }
    }
}
