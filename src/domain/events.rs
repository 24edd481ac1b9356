//! The events Latchkey tells the operator's systems about (SPEC §9), and the rules a webhook
//! target must meet: an http(s) URL whose host is not on loopback, a private network, a
//! link-local or CGNAT range, or unspecified (`0.0.0.0`, `::`), unless configuration allows it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::Url;

/// The kinds of event a webhook endpoint can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    DeliverySent,
    DeliveryBounced,
    DeliveryFailed,
    DeliveryComplained,
    SuppressionAdded,
    SuppressionLifted,
    AccountCreated,
    AccountEmailChanged,
    InvoicePaid,
    InvoicePaymentFailed,
    PaymentMethodAdded,
    PaymentMethodRemoved,
    /// The test event of "Send test event" (`POST /webhooks/{id}/test`); always delivered to
    /// the endpoint it is sent to, whatever it subscribes to.
    Ping,
}

impl EventType {
    /// Every type an endpoint may subscribe to (`ping` is not one: it is sent on request).
    pub const SUBSCRIBABLE: [EventType; 12] = [
        EventType::DeliverySent,
        EventType::DeliveryBounced,
        EventType::DeliveryFailed,
        EventType::DeliveryComplained,
        EventType::SuppressionAdded,
        EventType::SuppressionLifted,
        EventType::AccountCreated,
        EventType::AccountEmailChanged,
        EventType::InvoicePaid,
        EventType::InvoicePaymentFailed,
        EventType::PaymentMethodAdded,
        EventType::PaymentMethodRemoved,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::DeliverySent => "delivery.sent",
            EventType::DeliveryBounced => "delivery.bounced",
            EventType::DeliveryFailed => "delivery.failed",
            EventType::DeliveryComplained => "delivery.complained",
            EventType::SuppressionAdded => "suppression.added",
            EventType::SuppressionLifted => "suppression.lifted",
            EventType::AccountCreated => "account.created",
            EventType::AccountEmailChanged => "account.email_changed",
            EventType::InvoicePaid => "invoice.paid",
            EventType::InvoicePaymentFailed => "invoice.payment_failed",
            EventType::PaymentMethodAdded => "payment_method.added",
            EventType::PaymentMethodRemoved => "payment_method.removed",
            EventType::Ping => "ping",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        if s == "ping" {
            return Some(EventType::Ping);
        }
        Self::SUBSCRIBABLE.into_iter().find(|t| t.as_str() == s)
    }
}

/// The event types an endpoint subscribes to: at least one, no `ping`, no repeats, in the
/// order of [`EventType::SUBSCRIBABLE`]. Stored comma-separated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventTypes(Vec<EventType>);

impl EventTypes {
    /// From the names given; the error names the first unknown one.
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut types = Vec::new();
        for name in names {
            match EventType::parse(name.trim()) {
                Some(EventType::Ping) | None => {
                    return Err(format!("{name:?} is not an event type"));
                }
                Some(t) => types.push(t),
            }
        }
        if types.is_empty() {
            return Err("at least one event type is needed".into());
        }
        types.sort();
        types.dedup();
        Ok(Self(types))
    }

    /// As stored (`delivery.sent,invoice.paid`); unknown names in a stored value are skipped.
    pub fn from_stored(stored: &str) -> Self {
        let mut types: Vec<EventType> = stored
            .split(',')
            .filter_map(|s| EventType::parse(s.trim()))
            .filter(|t| *t != EventType::Ping)
            .collect();
        types.sort();
        types.dedup();
        Self(types)
    }

    pub fn stored(&self) -> String {
        self.names().join(",")
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.0.iter().map(|t| t.as_str()).collect()
    }

    pub fn contains(&self, t: EventType) -> bool {
        t == EventType::Ping || self.0.contains(&t)
    }
}

/// Why a webhook target is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("not a URL")]
    NotAUrl,
    #[error("only http:// and https:// URLs are accepted")]
    Scheme,
    #[error("the URL has no host")]
    NoHost,
    #[error("the URL may not carry a user name or password")]
    Credentials,
    #[error("{0} is a loopback, private, link-local or otherwise internal address")]
    Private(IpAddr),
}

/// A webhook URL that parsed: http or https, with a host, without credentials or fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl(Url);

/// The longest URL accepted.
pub const MAX_URL_LEN: usize = 2048;

impl WebhookUrl {
    pub fn parse(raw: &str) -> Result<Self, TargetError> {
        let raw = raw.trim();
        if raw.is_empty() || raw.len() > MAX_URL_LEN {
            return Err(TargetError::NotAUrl);
        }
        let mut url = Url::parse(raw).map_err(|_| TargetError::NotAUrl)?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(TargetError::Scheme);
        }
        if url.host().is_none() {
            return Err(TargetError::NoHost);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(TargetError::Credentials);
        }
        url.set_fragment(None);
        Ok(Self(url))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn url(&self) -> &Url {
        &self.0
    }

    /// The host's address when the URL names one directly (`http://10.0.0.1/`, `http://[::1]/`).
    pub fn literal_ip(&self) -> Option<IpAddr> {
        match self.0.host()? {
            url::Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
            url::Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
            url::Host::Domain(_) => None,
        }
    }

    /// The host name to resolve (without IPv6 brackets) and the port.
    pub fn host_and_port(&self) -> (String, u16) {
        let host = match self.0.host() {
            Some(url::Host::Ipv6(v6)) => v6.to_string(),
            Some(h) => h.to_string(),
            None => String::new(),
        };
        (host, self.0.port_or_known_default().unwrap_or(80))
    }
}

/// True for addresses a webhook must not reach unless configuration allows it: loopback,
/// RFC 1918, CGNAT (100.64/10), link-local (169.254/16, with the cloud metadata address
/// 169.254.169.254; fe80::/10), unique-local (fc00::/7), unspecified, broadcast, multicast,
/// the documentation and benchmarking ranges, and IPv4 mapped or translated into IPv6.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => internal_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return internal_v4(v4);
            }
            let s = v6.segments();
            // NAT64 (64:ff9b::/96) carries an IPv4 address in its last 32 bits.
            if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
                let v4 =
                    Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
                return internal_v4(v4);
            }
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated) fec0::/10
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || v6 == Ipv6Addr::from([0, 0, 0, 0, 0, 0, 0, 1])
                // IPv4-compatible (deprecated) ::a.b.c.d
                || (s[0..6] == [0, 0, 0, 0, 0, 0])
        }
    }
}

fn internal_v4(v4: Ipv4Addr) -> bool {
    let o = v4.octets();
    v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_broadcast()
        || v4.is_multicast()
        || v4.is_documentation()
        || o[0] == 0 // "this network" 0/8
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // CGNAT 100.64/10
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments 192.0.0/24
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // benchmarking 198.18/15
        || o[0] >= 240 // reserved 240/4
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "0.0.0.0",
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "8.8.8.8", "100.128.0.1", "2606:4700::1111"] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn only_http_urls_with_a_host_are_targets() {
        assert!(WebhookUrl::parse("https://hooks.example.com/latchkey").is_ok());
        assert_eq!(
            WebhookUrl::parse("ftp://example.com/"),
            Err(TargetError::Scheme)
        );
        assert_eq!(
            WebhookUrl::parse("https://user:pw@example.com/"),
            Err(TargetError::Credentials)
        );
        assert_eq!(WebhookUrl::parse("not a url"), Err(TargetError::NotAUrl));
        let literal = WebhookUrl::parse("http://[::1]:8080/x").unwrap();
        assert_eq!(literal.literal_ip(), Some("::1".parse().unwrap()));
        assert_eq!(literal.host_and_port(), ("::1".to_string(), 8080));
    }

    #[test]
    fn event_types_parse_and_round_trip() {
        let t = EventTypes::parse(["invoice.paid", "delivery.sent", "invoice.paid"]).unwrap();
        assert_eq!(t.names(), ["delivery.sent", "invoice.paid"]);
        assert_eq!(EventTypes::from_stored(&t.stored()), t);
        assert!(EventTypes::parse(["ping"]).is_err());
        assert!(EventTypes::parse(["nope"]).is_err());
        assert!(EventTypes::parse(Vec::<&str>::new()).is_err());
        assert!(t.contains(EventType::Ping));
    }
}
