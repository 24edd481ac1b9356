//! How staff sign in to the console: the [`ConsoleSite`] that fits the frame's magic-link
//! sign-in to staff (their own links, sessions and cookies under `/console`, the console's
//! sign-in pages and wording). A sign-in always lands on the console's home.

use askama::Template;

use super::{Console, ConsoleCommon, ConsoleSite, MessagePage};
use crate::crypto::DeviceScope;
use crate::domain::{EmailAddress, OpaqueToken};
use crate::error::AppError;
use crate::http::frame::{Frame, LinkSent, SignInForm, Site};
use crate::i18n::Lang;
use crate::store::StaffUser;
use crate::usecases::sign_in::{self, LinkAsked, RedeemedSession};

#[derive(Template)]
#[template(path = "console/sign_in.html")]
struct SignInPage {
    c: ConsoleCommon,
    email: String,
    error: Option<String>,
    notice: Option<String>,
    expired: bool,
}

#[derive(Template)]
#[template(path = "console/landing.html")]
struct LandingPage {
    c: ConsoleCommon,
    action: String,
}

/// A console link opened in a browser signed in as another staff member: asked, never
/// submitted by itself (SPEC §8, as on the portal).
#[derive(Template)]
#[template(path = "console/switch.html")]
struct SwitchPage {
    c: ConsoleCommon,
    action: String,
    current: String,
    link_for: String,
}

impl Site for ConsoleSite {
    const NAME: &'static str = "console";
    const SESSION_COOKIE: &'static str = "lk_console";
    const DEVICE_COOKIE: &'static str = "lk_console_device";
    const HOME: &'static str = "";
    const LINK_COOKIE: &'static str = "lk_console_sign_in";
    // Console links need no code: staff open them where they read their email.
    const SIGN_IN_CODE: bool = false;
    const WORDS: &'static str = "console";

    type Identity = StaffUser;
    type LinkOwner = StaffUser;

    /// The console stays English (SPEC §10).
    fn lang(c: &Frame<Self>) -> Lang {
        c.state.svc.languages.default_lang().clone()
    }

    fn cookie_path(base: &str) -> String {
        base.to_string()
    }

    fn device_scope(&self) -> DeviceScope {
        DeviceScope::Console
    }

    /// A console link always lands on the console's home.
    fn safe_next(_next: &str) -> Option<String> {
        None
    }

    /// The console's sign-in does not come back to the page that asked for it.
    fn sign_in_location(base: &str, _next: &str) -> String {
        format!("{base}/sign-in")
    }

    async fn check_session(c: &Console, cookie: String) -> Result<Option<StaffUser>, AppError> {
        let session = sign_in::staff_session(&c.state.svc, &cookie).await?;
        Ok(session.map(|s| s.staff))
    }

    async fn end_session(c: &Console, cookie: String) -> Result<(), AppError> {
        sign_in::end_staff_session(&c.state.svc, &cookie).await
    }

    async fn request_link(c: &Console, asked: LinkAsked) -> Result<(), AppError> {
        sign_in::request_staff_link(&c.state.actors, asked).await
    }

    async fn check_link(c: &Console, token: OpaqueToken) -> Result<bool, AppError> {
        sign_in::staff_link_is_live(&c.state.svc, &token).await
    }

    async fn other_owner(
        c: &Console,
        current: &StaffUser,
        token: &OpaqueToken,
    ) -> Result<Option<StaffUser>, AppError> {
        sign_in::other_staff_link_owner(&c.state.svc, current.id, token).await
    }

    async fn redeem_link(
        c: &Console,
        token: OpaqueToken,
    ) -> Result<Option<RedeemedSession>, AppError> {
        sign_in::redeem_staff(&c.state.svc, &token).await
    }

    fn message_page(
        c: &mut Console,
        heading: &str,
        message: &str,
        link: Option<(String, String)>,
    ) -> impl Template + use<> {
        MessagePage {
            c: c.common(),
            heading: heading.to_string(),
            message: message.to_string(),
            link,
        }
    }

    fn sign_in_page(c: &mut Console, form: SignInForm) -> impl Template + use<> {
        SignInPage {
            c: c.common(),
            email: form.email,
            error: form.error,
            notice: form.notice,
            expired: false,
        }
    }

    async fn redeem_code(
        _: &Console,
        _: &EmailAddress,
        _: Option<&[u8]>,
        _: &str,
    ) -> Result<Option<RedeemedSession>, AppError> {
        Ok(None)
    }

    fn link_sent_page(c: &mut Console, _sent: LinkSent) -> impl Template + use<> {
        MessagePage {
            c: c.common(),
            heading: "Check your email".into(),
            message: "If this address belongs to a staff member, a sign-in link is on its way. It works once and expires soon.".into(),
            link: None,
        }
    }

    fn landing_page(c: &mut Console, action: String) -> impl Template + use<> {
        LandingPage {
            c: c.common(),
            action,
        }
    }

    fn switch_page(
        c: &mut Console,
        action: String,
        current: &StaffUser,
        owner: &StaffUser,
    ) -> impl Template + use<> {
        SwitchPage {
            c: c.common(),
            action,
            current: current.full_name.clone(),
            link_for: owner.full_name.clone(),
        }
    }

    fn link_expired_page(c: &mut Console) -> impl Template + use<> {
        SignInPage {
            c: c.common(),
            email: String::new(),
            error: None,
            notice: None,
            expired: true,
        }
    }
}
