//! VERP bounce addresses: `bounces+{delivery id}-{mac}@{bounce domain}`, the Return-Path each
//! email carries, so that a bounce names the delivery it is about and nobody can forge one for
//! a delivery they did not receive (the MAC is keyed with the server secret).

use crate::crypto::Keys;

/// The local part's fixed prefix.
const PREFIX: &str = "bounces+";
/// The MAC's length in hex digits ([`Keys::verp_mac`]).
const MAC_LEN: usize = 12;
/// Delivery ids are positive `i64`s: at most 19 decimal digits.
const MAX_ID_DIGITS: usize = 19;

/// The VERP Return-Path of delivery `delivery_id`: `bounces+{id}-{mac}@{domain}`.
pub fn verp_address(keys: &Keys, delivery_id: i64, domain: &str) -> String {
    format!(
        "{PREFIX}{delivery_id}-{}@{domain}",
        keys.verp_mac(delivery_id)
    )
}

/// Checks VERP addresses against the MAC and the bounce domains this installation accepts
/// mail for (the global one and the storefronts' own). Cheap to clone.
#[derive(Clone, Debug)]
pub struct VerpCheck {
    keys: Keys,
    /// Lowercase, without a trailing dot.
    domains: Vec<String>,
}

impl VerpCheck {
    /// A check for addresses at any of `domains` (compared case-insensitively, exactly: a
    /// subdomain of an accepted domain is another domain).
    pub fn new<I, S>(keys: Keys, domains: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let domains = domains
            .into_iter()
            .map(|d| normalize_domain(d.as_ref()))
            .filter(|d| !d.is_empty())
            .collect();
        Self { keys, domains }
    }

    /// The delivery a recipient address names, if it is a VERP address this installation
    /// issued: the right shape, an accepted domain, and the MAC of that id. The local part is
    /// read case-insensitively (some relays change its case); `<…>` around it is allowed.
    pub fn delivery_id(&self, address: &str) -> Option<i64> {
        let address = address.trim();
        let address = address
            .strip_prefix('<')
            .and_then(|a| a.strip_suffix('>'))
            .unwrap_or(address);
        let (local, domain) = address.rsplit_once('@')?;
        let domain = normalize_domain(domain);
        if !self.domains.contains(&domain) {
            return None;
        }
        let local = local.to_ascii_lowercase();
        let rest = local.strip_prefix(PREFIX)?;
        let (id, mac) = rest.split_once('-')?;
        let canonical_id = !id.is_empty()
            && id.len() <= MAX_ID_DIGITS
            && id.bytes().all(|b| b.is_ascii_digit())
            && !id.starts_with('0');
        if !canonical_id || mac.len() != MAC_LEN {
            return None;
        }
        let id: i64 = id.parse().ok()?;
        let expected = self.keys.verp_mac(id);
        constant_time_eq(expected.as_bytes(), mac.as_bytes()).then_some(id)
    }
}

fn normalize_domain(domain: &str) -> String {
    let domain = domain.trim();
    domain
        .strip_suffix('.')
        .unwrap_or(domain)
        .to_ascii_lowercase()
}

/// Compares without an early exit, so the time taken says nothing about where a forged MAC
/// first differs.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Secret;

    fn keys(secret: &str) -> Keys {
        Keys::from_secret(&Secret::new(secret.to_string()))
    }

    fn check() -> VerpCheck {
        VerpCheck::new(
            keys("a-secret-of-at-least-thirty-two-chars!!"),
            ["bounces.latchkey.example", "Mail.Harborview.Example."],
        )
    }

    #[test]
    fn an_issued_address_names_its_delivery() {
        let k = keys("a-secret-of-at-least-thirty-two-chars!!");
        let address = verp_address(&k, 4217, "bounces.latchkey.example");
        let (local, domain) = address.split_once('@').unwrap();
        assert_eq!(domain, "bounces.latchkey.example");
        let mac = local.strip_prefix("bounces+4217-").unwrap();
        assert_eq!(mac.len(), MAC_LEN);
        assert!(
            mac.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(check().delivery_id(&address), Some(4217));
        assert_eq!(check().delivery_id(&format!("<{address}>")), Some(4217));
        assert_eq!(
            check().delivery_id(&address.to_ascii_uppercase()),
            Some(4217),
            "local part and domain case-insensitive"
        );
        let at_storefront = verp_address(&k, 9, "mail.harborview.example");
        assert_eq!(check().delivery_id(&at_storefront), Some(9));
        assert_eq!(
            check().delivery_id(&verp_address(&k, i64::MAX, "bounces.latchkey.example")),
            Some(i64::MAX)
        );
    }

    #[test]
    fn forged_and_foreign_addresses_name_nothing() {
        let k = keys("a-secret-of-at-least-thirty-two-chars!!");
        let good = verp_address(&k, 4217, "bounces.latchkey.example");
        let c = check();

        // A MAC with one digit changed.
        let mut forged = good.clone().into_bytes();
        let at = good.find('@').unwrap();
        forged[at - 1] = if forged[at - 1] == b'0' { b'1' } else { b'0' };
        assert_eq!(c.delivery_id(&String::from_utf8(forged).unwrap()), None);

        // Another delivery's id with this delivery's MAC.
        let mac = &good[good.find('-').unwrap() + 1..at];
        assert_eq!(
            c.delivery_id(&format!("bounces+4218-{mac}@bounces.latchkey.example")),
            None
        );
        // Made with another secret.
        let other = verp_address(
            &keys("another-secret-of-thirty-two-chars-long"),
            4217,
            "bounces.latchkey.example",
        );
        assert_eq!(c.delivery_id(&other), None);
        // Another domain, a subdomain, no domain.
        assert_eq!(
            c.delivery_id(&good.replace("latchkey.example", "evil.example")),
            None
        );
        assert_eq!(
            c.delivery_id(&good.replace("@bounces.", "@x.bounces.")),
            None
        );
        assert_eq!(c.delivery_id(&good[..at]), None);
        // A non-canonical id (leading zero, sign) is refused even with a matching MAC.
        let mac7 = k.verp_mac(7);
        assert_eq!(
            c.delivery_id(&format!("bounces+07-{mac7}@bounces.latchkey.example")),
            None
        );
        assert_eq!(
            c.delivery_id(&format!("bounces++7-{mac7}@bounces.latchkey.example")),
            None
        );
        let mac0 = k.verp_mac(0);
        assert_eq!(
            c.delivery_id(&format!("bounces+0-{mac0}@bounces.latchkey.example")),
            None
        );
        // Garbage.
        for garbage in [
            "",
            "@",
            "<>",
            "bounces@bounces.latchkey.example",
            "bounces+@bounces.latchkey.example",
            "bounces+-@bounces.latchkey.example",
            "bounces+12-@bounces.latchkey.example",
            "bounces+99999999999999999999-0123456789ab@bounces.latchkey.example",
            "postmaster@bounces.latchkey.example",
            "bounces+1-zzzzzzzzzzzz@bounces.latchkey.example",
            "bounces+1-\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}@bounces.latchkey.example",
        ] {
            assert_eq!(c.delivery_id(garbage), None, "{garbage:?}");
        }
    }

    #[test]
    fn no_domain_accepted_means_nothing_accepted() {
        let k = keys("a-secret-of-at-least-thirty-two-chars!!");
        let none = VerpCheck::new(k.clone(), Vec::<String>::new());
        assert_eq!(
            none.delivery_id(&verp_address(&k, 1, "bounces.latchkey.example")),
            None
        );
        let blank = VerpCheck::new(k.clone(), [" "]);
        assert_eq!(blank.delivery_id(&verp_address(&k, 1, "")), None);
    }
}
