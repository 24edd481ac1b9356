//! The characters no name, address or reference may hold.

/// Control characters, the Unicode line and paragraph separators (line breaks that
/// `char::is_control` does not count), and the zero-width and bidirectional marks that make two
/// strings look alike.
pub fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{061C}' | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// Whether `s` holds a character of [`is_hidden`].
pub fn has_hidden(s: &str) -> bool {
    s.chars().any(is_hidden)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_breaks_controls_and_invisible_marks_are_hidden() {
        for c in [
            '\n', '\r', '\t', '\0', '\u{7F}', '\u{85}', '\u{2028}', '\u{2029}', '\u{200B}',
            '\u{200E}', '\u{202E}', '\u{061C}', '\u{2066}', '\u{FEFF}',
        ] {
            assert!(is_hidden(c), "{:?} should be hidden", c);
        }
        for s in [
            "Zoë O'Brien-Šimić",
            "José",
            "李小龙",
            "+1 207-555-0199",
            "a b",
        ] {
            assert!(!has_hidden(s), "{s:?} should pass");
        }
    }
}
