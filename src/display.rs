//! How values read as text, wherever a person reads them: portal and console pages and the
//! emails the workers send. One module below both the web layer and the actors, so a page and
//! an email can never say the same thing two ways.
//!
//! Amounts read through [`crate::domain::Money`]'s `Display` (`CAD 120.00`); this module owns
//! dates, times, statuses and the phrases built from them.

use chrono::{DateTime, NaiveDate, Utc};

use crate::domain::Money;

/// A date as customers read it: `Mar 5, 2026`.
pub fn date(d: NaiveDate) -> String {
    d.format("%b %-d, %Y").to_string()
}

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

/// A rental's period: `Mar 5, 2026 to Jun 4, 2026` when it has an end; otherwise `From …` for a
/// rental that starts after `today` (a booking) and `Since …` for one already running.
pub fn rental_period(starts_on: NaiveDate, ends_on: Option<NaiveDate>, today: NaiveDate) -> String {
    match ends_on {
        Some(end) => format!("{} to {}", date(starts_on), date(end)),
        None if starts_on > today => format!("From {}", date(starts_on)),
        None => format!("Since {}", date(starts_on)),
    }
}

/// A rental's rate: `CAD 120.00 per month`.
pub fn rate(rate: &Money, period: &str) -> String {
    format!("{rate} per {period}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn dates_read_the_same_on_pages_and_in_emails() {
        assert_eq!(date(d(2026, 3, 5)), "Mar 5, 2026");
        assert_eq!(date(d(2026, 12, 25)), "Dec 25, 2026");
    }

    #[test]
    fn an_open_rental_reads_from_before_it_starts_and_since_after() {
        let start = d(2026, 3, 5);
        assert_eq!(
            rental_period(start, None, d(2026, 3, 1)),
            "From Mar 5, 2026"
        );
        assert_eq!(rental_period(start, None, start), "Since Mar 5, 2026");
        assert_eq!(
            rental_period(start, None, d(2026, 4, 1)),
            "Since Mar 5, 2026"
        );
        assert_eq!(
            rental_period(start, Some(d(2026, 6, 4)), d(2026, 1, 1)),
            "Mar 5, 2026 to Jun 4, 2026"
        );
    }

    #[test]
    fn statuses_become_labels() {
        assert_eq!(humanize("past_due"), "Past due");
        assert_eq!(humanize("active"), "Active");
        assert_eq!(humanize(""), "");
    }

    #[test]
    fn rates_name_their_period() {
        let m = Money::new(12000, "CAD").unwrap();
        assert_eq!(rate(&m, "month"), format!("{m} per month"));
    }
}
