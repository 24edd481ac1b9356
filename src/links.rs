//! The product's addresses: the path segments the web layer's routes match, and the one function
//! per audience that builds a full link to them for someone outside a page: an email, an API
//! answer, a Stripe return URL. The routes (`http::portal`, `http::account`, `http::console`,
//! `http::server`) match these same constants, so a link cannot drift from the route serving it.

use crate::config::Config;
use crate::store::Storefront;

/// `/s/{slug}/…`: a storefront's portal on the platform's own host.
pub const STOREFRONT: &str = "s";
/// `/console/…`: the operator console.
pub const CONSOLE: &str = "console";
/// `…/sign-in`: the page that asks for a link.
pub const SIGN_IN: &str = "sign-in";
/// `…/auth/{token}`: a sign-in link's landing, in the portal and in the console.
pub const AUTH: &str = "auth";
/// `…/confirm-email/{token}`: the link confirming a new address.
pub const CONFIRM_EMAIL: &str = "confirm-email";
/// `…/billing`: the customer's invoices and payment methods.
pub const BILLING: &str = "billing";

/// A page of a storefront's portal that someone is sent to from outside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortalLink<'a> {
    SignIn,
    /// A sign-in link carrying its token.
    Auth(&'a str),
    /// The confirmation of a new email address, carrying its token.
    ConfirmEmail(&'a str),
    Billing,
    /// Back from Stripe Checkout, paid or not.
    CheckoutReturn(Returned),
    /// Back from saving a payment method at Stripe.
    SetupReturn(Returned),
}

/// How a customer came back from a Stripe page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returned {
    Success,
    Cancelled,
}

impl Returned {
    pub fn as_str(self) -> &'static str {
        match self {
            Returned::Success => "success",
            Returned::Cancelled => "cancelled",
        }
    }
}

impl PortalLink<'_> {
    /// The path below the storefront's portal base, starting with `/`.
    pub fn path(&self) -> String {
        match self {
            PortalLink::SignIn => format!("/{SIGN_IN}"),
            PortalLink::Auth(token) => format!("/{AUTH}/{token}"),
            PortalLink::ConfirmEmail(token) => format!("/{CONFIRM_EMAIL}/{token}"),
            PortalLink::Billing => format!("/{BILLING}"),
            PortalLink::CheckoutReturn(r) => format!("/{BILLING}?checkout={}", r.as_str()),
            PortalLink::SetupReturn(r) => format!("/{BILLING}?setup={}", r.as_str()),
        }
    }
}

/// A page of the console that someone is sent to from outside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleLink<'a> {
    /// A staff sign-in link carrying its token.
    Auth(&'a str),
}

impl ConsoleLink<'_> {
    pub fn path(&self) -> String {
        match self {
            ConsoleLink::Auth(token) => format!("/{CONSOLE}/{AUTH}/{token}"),
        }
    }
}

/// The portal's base URL for a storefront: its custom host, or `{public_url}/s/{slug}`.
fn portal_base(config: &Config, storefront: &Storefront) -> String {
    let public = config.public_url();
    match &storefront.custom_host {
        Some(host) => format!("{}://{host}", public.scheme()),
        None => format!(
            "{}/{STOREFRONT}/{}",
            public.as_str().trim_end_matches('/'),
            storefront.slug
        ),
    }
}

/// A full link to a page of a storefront's portal.
pub fn portal(config: &Config, storefront: &Storefront, page: PortalLink<'_>) -> String {
    format!("{}{}", portal_base(config, storefront), page.path())
}

/// A full link to a page of the console, which lives on the platform's public URL.
pub fn console(config: &Config, page: ConsoleLink<'_>) -> String {
    format!(
        "{}{}",
        config.public_url().as_str().trim_end_matches('/'),
        page.path()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_carry_their_tokens_and_return_states() {
        assert_eq!(PortalLink::Auth("abc").path(), "/auth/abc");
        assert_eq!(PortalLink::ConfirmEmail("t").path(), "/confirm-email/t");
        assert_eq!(PortalLink::SignIn.path(), "/sign-in");
        assert_eq!(
            PortalLink::CheckoutReturn(Returned::Cancelled).path(),
            "/billing?checkout=cancelled"
        );
        assert_eq!(
            PortalLink::SetupReturn(Returned::Success).path(),
            "/billing?setup=success"
        );
        assert_eq!(ConsoleLink::Auth("x").path(), "/console/auth/x");
    }
}
