//! Types with no I/O: they refuse bad data at the edge of the system, so nothing past the edge
//! re-checks it.

pub mod clock;
pub mod dkim;
pub mod email;
pub mod emails;
pub mod events;
pub mod money;
pub mod pdf;
pub mod redirect;
pub mod secret;
pub mod slug;
pub mod text;
pub mod token;
pub mod webhook;

pub use clock::{Clock, ManualClock, SystemClock};
pub use email::EmailAddress;
pub use emails::{DeliveryKind, EmailData};
pub use money::Money;
pub use secret::{Secret, SecretUrl};
pub use slug::StorefrontSlug;
pub use token::{OpaqueToken, TokenHash, link_minutes};
