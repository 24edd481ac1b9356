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
}
