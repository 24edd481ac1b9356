use chrono::NaiveDate;

use super::*;

fn catalog() -> Catalog {
    Catalog::load().expect("the shipped languages load")
}

#[test]
fn every_language_shipped_has_every_message_of_the_default_one() {
    let c = catalog();
    let en = c.default_lang();
    let ids: Vec<String> = en.language.bundle_ids();
    assert!(ids.len() > 3);
    for tag in c.tags() {
        let lang = c.get(tag).unwrap();
        let missing: Vec<&String> = ids.iter().filter(|id| !lang.language.has(id)).collect();
        assert!(missing.is_empty(), "{tag} lacks {missing:?}");
    }
}

#[test]
fn english_and_french_ship() {
    let c = catalog();
    let tags: Vec<&str> = c.tags().collect();
    assert!(tags.contains(&"en") && tags.contains(&"fr-CA"), "{tags:?}");
}

#[test]
fn dates_follow_the_language() {
    let c = catalog();
    let d = NaiveDate::from_ymd_opt(2026, 4, 1).unwrap();
    assert_eq!(c.get("en").unwrap().date(d), "Apr 1, 2026");
    assert_eq!(c.get("fr-CA").unwrap().date(d), "1 avril 2026");
}

#[test]
fn amounts_follow_the_language() {
    let c = catalog();
    let m = Money::new(12900, "CAD").unwrap();
    assert_eq!(c.get("en").unwrap().money(&m), m.to_string());
    assert_eq!(c.get("en").unwrap().money(&m), "$129.00 CAD");
    assert_eq!(c.get("fr-CA").unwrap().money(&m), "129,00\u{a0}$");
    let big = Money::new(12_345_678, "CAD").unwrap();
    assert_eq!(c.get("en").unwrap().money(&big), "$123,456.78 CAD");
    assert_eq!(
        c.get("fr-CA").unwrap().money(&big),
        "123\u{a0}456,78\u{a0}$"
    );
}

#[test]
fn plural_forms_for_zero_one_and_many() {
    let c = catalog();
    let en = c.get("en").unwrap();
    let fr = c.get("fr-CA").unwrap();
    assert_eq!(en.arg("minutes", "count", 0), "0 minutes");
    assert_eq!(en.arg("minutes", "count", 1), "1 minute");
    assert_eq!(en.arg("minutes", "count", 59), "59 minutes");
    // French: zero takes the singular.
    assert_eq!(fr.arg("minutes", "count", 0), "0 minute");
    assert_eq!(fr.arg("minutes", "count", 1), "1 minute");
    assert_eq!(fr.arg("minutes", "count", 59), "59 minutes");
}

#[test]
fn languages_are_negotiated() {
    let c = catalog();
    assert_eq!(c.matching("fr").unwrap().tag(), "fr-CA");
    assert_eq!(c.matching("fr-FR").unwrap().tag(), "fr-CA");
    assert_eq!(c.matching("en-GB").unwrap().tag(), "en");
    assert!(c.matching("de").is_none());
    assert!(c.matching("not a tag!").is_none());
    assert_eq!(
        c.accepted("de-DE, fr;q=0.8, en;q=0.5").unwrap().tag(),
        "fr-CA"
    );
    assert_eq!(c.accepted("en-US,en;q=0.9,fr;q=0.8").unwrap().tag(), "en");
    assert!(c.accepted("de").is_none());
}

#[test]
fn the_cookie_beats_accept_language_which_beats_the_storefront() {
    let c = catalog();
    assert_eq!(
        c.for_visitor(Some("en"), Some("fr-CA"), "fr-CA").tag(),
        "en"
    );
    assert_eq!(c.for_visitor(None, Some("fr-CA"), "en").tag(), "fr-CA");
    assert_eq!(c.for_visitor(None, Some("de"), "fr-CA").tag(), "fr-CA");
    assert_eq!(c.for_visitor(Some("xx"), None, "fr-CA").tag(), "fr-CA");
    assert_eq!(c.for_visitor(None, None, "en").tag(), "en");
    assert_eq!(c.for_account(Some("fr-CA"), "en").tag(), "fr-CA");
    assert_eq!(c.for_account(None, "fr-CA").tag(), "fr-CA");
    assert_eq!(c.for_account(Some("gone"), "en").tag(), "en");
}

#[test]
fn a_missing_message_falls_back_to_english_then_its_id() {
    let c = catalog();
    assert_eq!(
        c.get("fr-CA").unwrap().msg("no-such-message"),
        "no-such-message"
    );
    assert!(c.get("fr-CA").unwrap().has("money"));
}

#[test]
fn markup_messages_escape_their_arguments() {
    let c = catalog();
    let en = c.get("en").unwrap();
    let out = en.html2(
        "switch-current",
        "name",
        "<b>Al</b>",
        "email",
        "a&b@example.com",
    );
    assert!(
        out.contains("<strong>&lt;b&gt;Al&lt;/b&gt;</strong>"),
        "{out}"
    );
    assert!(out.contains("a&amp;b@example.com"), "{out}");
}
