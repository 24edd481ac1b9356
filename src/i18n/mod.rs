//! Languages (SPEC §10): the words people read, in every language the product ships, and the
//! number, date and plural rules of each. The words are Fluent resources in `locales/{tag}/*.ftl`,
//! embedded at build time and found by walking that folder, so adding a language is adding a
//! folder: nothing here names one. Numbers and dates are formatted by ICU4X from CLDR's compiled
//! data; plural forms are chosen by Fluent with CLDR's plural rules.
//!
//! A [`Catalog`] holds every language, built once at start and passed in with the services. A
//! [`Lang`] is one language, cheap to clone, handed to templates (`{{ t.msg("…") }}`) and to the
//! email renderer. A message missing from a language falls back to the default language
//! (`en`), then to its id, so a half-translated language still shows every page.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use chrono::{Datelike, NaiveDate};
use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};
use icu_datetime::DateTimeFormatter;
use icu_datetime::fieldsets::YMD;
use icu_datetime::input::Date;
use icu_decimal::DecimalFormatter;
use icu_decimal::input::Decimal;
use include_dir::{Dir, include_dir};
use unic_langid::LanguageIdentifier;

use crate::domain::Money;

/// The resource files: one folder per language, named by its BCP 47 tag.
static LOCALES: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/locales");

/// The language of anyone who chose none and of a storefront created without one; the one
/// every other language falls back to for a message it lacks.
pub const DEFAULT: &str = "en";

/// The cookie of the footer's language switcher (signed-out pages).
pub const COOKIE: &str = "lk_lang";

#[derive(Debug, thiserror::Error)]
pub enum I18nError {
    #[error("locales/{0}: not a language tag")]
    Tag(String),
    #[error("locales/{file}: {detail}")]
    Resource { file: String, detail: String },
    #[error("locales/{0}: no locale data for this language ({1})")]
    Data(String, String),
    #[error("locales/{DEFAULT} is missing")]
    NoDefault,
}

/// One language: its words and its formatters.
pub struct Language {
    tag: String,
    bundle: FluentBundle<FluentResource>,
    decimal: DecimalFormatter,
    date: DateTimeFormatter<YMD>,
}

impl fmt::Debug for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Language").field("tag", &self.tag).finish()
    }
}

impl Language {
    fn load(dir: &Dir<'_>) -> Result<Self, I18nError> {
        let tag = dir
            .path()
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let id: LanguageIdentifier = tag.parse().map_err(|_| I18nError::Tag(tag.clone()))?;
        let mut bundle = FluentBundle::new_concurrent(vec![id]);
        // No Unicode isolation marks around arguments: the pages and emails are left-to-right
        // and the marks would show in plain-text email.
        bundle.set_use_isolating(false);
        let mut files: Vec<_> = dir
            .files()
            .filter(|f| f.path().extension().is_some_and(|e| e == "ftl"))
            .collect();
        files.sort_by_key(|f| f.path());
        for file in files {
            let name = file.path().display().to_string();
            let text = file.contents_utf8().ok_or_else(|| I18nError::Resource {
                file: name.clone(),
                detail: "not UTF-8".into(),
            })?;
            let resource = FluentResource::try_new(text.to_string()).map_err(|(_, errors)| {
                I18nError::Resource {
                    file: name.clone(),
                    detail: format!("{errors:?}"),
                }
            })?;
            bundle
                .add_resource(resource)
                .map_err(|errors| I18nError::Resource {
                    file: name.clone(),
                    detail: format!("{errors:?}"),
                })?;
        }
        let locale: icu_locale_core::Locale =
            tag.parse().map_err(|_| I18nError::Tag(tag.clone()))?;
        let decimal = DecimalFormatter::try_new((&locale).into(), Default::default())
            .map_err(|e| I18nError::Data(tag.clone(), e.to_string()))?;
        // How long a date is written is the language's choice (`date-length` in its files):
        // English `Mar 5, 2026`, French `5 mars 2026`.
        let length = bundle
            .get_message("date-length")
            .and_then(|m| m.value())
            .map(|p| {
                let mut errors = vec![];
                bundle.format_pattern(p, None, &mut errors).into_owned()
            });
        let fields = match length.as_deref() {
            Some("long") => YMD::long(),
            Some("short") => YMD::short(),
            _ => YMD::medium(),
        };
        let date = DateTimeFormatter::try_new((&locale).into(), fields)
            .map_err(|e| I18nError::Data(tag.clone(), e.to_string()))?;
        Ok(Self {
            tag,
            bundle,
            decimal,
            date,
        })
    }

    fn format(&self, id: &str, args: Option<&FluentArgs<'_>>) -> Option<String> {
        let pattern = self.bundle.get_message(id)?.value()?;
        let mut errors = vec![];
        let text = self.bundle.format_pattern(pattern, args, &mut errors);
        if !errors.is_empty() {
            tracing::warn!(lang = %self.tag, id, ?errors, "message formatted with errors");
        }
        Some(text.into_owned())
    }

    fn has(&self, id: &str) -> bool {
        self.bundle.has_message(id)
    }

    /// The ids of the messages in this language's own files.
    #[cfg(test)]
    fn bundle_ids(&self) -> Vec<String> {
        let mut ids = vec![];
        for dir in LOCALES.dirs().filter(|d| d.path().ends_with(&self.tag)) {
            for file in dir.files() {
                let res = FluentResource::try_new(file.contents_utf8().unwrap_or("").to_string())
                    .expect("parses");
                for entry in res.entries() {
                    if let fluent_syntax::ast::Entry::Message(m) = entry {
                        ids.push(m.id.name.to_string());
                    }
                }
            }
        }
        ids
    }
}

/// Every language the product ships, by tag, with the default one.
pub struct Catalog {
    languages: BTreeMap<String, Lang>,
}

impl fmt::Debug for Catalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.languages.keys()).finish()
    }
}

impl Catalog {
    /// Reads the embedded `locales/` folder; an error names the file that is wrong.
    pub fn load() -> Result<Self, I18nError> {
        let mut loaded = BTreeMap::new();
        for dir in LOCALES.dirs() {
            let language = Language::load(dir)?;
            loaded.insert(language.tag.clone(), Arc::new(language));
        }
        let default = loaded.get(DEFAULT).cloned().ok_or(I18nError::NoDefault)?;
        let languages = loaded
            .into_iter()
            .map(|(tag, language)| {
                let fallback = (tag != DEFAULT).then(|| default.clone());
                (tag, Lang { language, fallback })
            })
            .collect();
        Ok(Self { languages })
    }

    /// The tags of the languages shipped, sorted.
    pub fn tags(&self) -> impl Iterator<Item = &str> {
        self.languages.keys().map(String::as_str)
    }

    /// The language with exactly this tag.
    pub fn get(&self, tag: &str) -> Option<&Lang> {
        self.languages.get(tag)
    }

    /// The default language.
    pub fn default_lang(&self) -> &Lang {
        &self.languages[DEFAULT]
    }

    /// The shipped language that best matches one asked for (`fr` or `fr-FR` finds `fr-CA`).
    pub fn matching(&self, asked: &str) -> Option<&Lang> {
        let asked: fluent_langneg::LanguageIdentifier = asked.trim().parse().ok()?;
        self.best(&[asked])
    }

    /// The shipped language that best matches an `Accept-Language` header, in its order.
    pub fn accepted(&self, header: &str) -> Option<&Lang> {
        self.best(&fluent_langneg::accepted_languages::parse(header))
    }

    fn best(&self, asked: &[fluent_langneg::LanguageIdentifier]) -> Option<&Lang> {
        let available: Vec<fluent_langneg::LanguageIdentifier> =
            self.tags().filter_map(|t| t.parse().ok()).collect();
        let chosen = fluent_langneg::negotiate_languages(
            asked,
            &available,
            None,
            fluent_langneg::NegotiationStrategy::Filtering,
        );
        chosen.first().and_then(|id| self.get(&id.to_string()))
    }

    /// The language of a signed-out page: the switcher's cookie, else the browser's
    /// `Accept-Language`, else the storefront's default (SPEC §10).
    pub fn for_visitor(
        &self,
        cookie: Option<&str>,
        accept_language: Option<&str>,
        storefront: &str,
    ) -> Lang {
        cookie
            .and_then(|c| self.matching(c))
            .or_else(|| accept_language.and_then(|h| self.accepted(h)))
            .unwrap_or_else(|| self.for_account(None, storefront))
            .clone()
    }

    /// The language of a customer's pages and emails: theirs, else the storefront's.
    pub fn for_account(&self, account: Option<&str>, storefront: &str) -> &Lang {
        account
            .and_then(|a| self.get(a))
            .or_else(|| self.get(storefront))
            .unwrap_or_else(|| self.default_lang())
    }
}

/// One language, as templates and the email renderer use it.
#[derive(Clone, Debug)]
pub struct Lang {
    language: Arc<Language>,
    /// Where a message this language lacks is looked up (`None` for the default language).
    fallback: Option<Arc<Language>>,
}

/// A value handed to a message as an argument: text, or a number (which chooses plural forms).
pub trait Arg {
    fn value(&self) -> FluentValue<'static>;
}

impl Arg for str {
    fn value(&self) -> FluentValue<'static> {
        FluentValue::from(self.to_string())
    }
}

impl Arg for String {
    fn value(&self) -> FluentValue<'static> {
        FluentValue::from(self.clone())
    }
}

impl<T: Arg + ?Sized> Arg for &T {
    fn value(&self) -> FluentValue<'static> {
        (**self).value()
    }
}

macro_rules! number_arg {
    ($($t:ty),*) => {$(
        impl Arg for $t {
            fn value(&self) -> FluentValue<'static> {
                FluentValue::from(*self)
            }
        }
    )*};
}
number_arg!(i32, i64, u32, u64, usize);

/// A text argument HTML-escaped (numbers are left as they are).
struct Escaped(FluentValue<'static>);

impl Arg for Escaped {
    fn value(&self) -> FluentValue<'static> {
        match &self.0 {
            FluentValue::String(s) => {
                let mut out = String::with_capacity(s.len());
                for c in s.chars() {
                    match c {
                        '&' => out.push_str("&amp;"),
                        '<' => out.push_str("&lt;"),
                        '>' => out.push_str("&gt;"),
                        '"' => out.push_str("&quot;"),
                        '\'' => out.push_str("&#39;"),
                        c => out.push(c),
                    }
                }
                FluentValue::from(out)
            }
            other => other.clone(),
        }
    }
}

impl Lang {
    /// The BCP 47 tag (`<html lang>`, the `lk_lang` cookie, the `language` columns).
    pub fn tag(&self) -> &str {
        &self.language.tag
    }

    /// What the language calls itself (the switcher's label).
    pub fn name(&self) -> String {
        self.msg("language-name")
    }

    fn text(&self, id: &str, args: Option<&FluentArgs<'_>>) -> String {
        self.language
            .format(id, args)
            .or_else(|| self.fallback.as_ref().and_then(|f| f.format(id, args)))
            .unwrap_or_else(|| {
                tracing::warn!(lang = %self.tag(), id, "no such message");
                id.to_string()
            })
    }

    /// A message without arguments.
    pub fn msg(&self, id: &str) -> String {
        self.text(id, None)
    }

    /// A message with one argument.
    pub fn arg(&self, id: &str, name: &str, value: impl Arg) -> String {
        self.args(id, &[(name, &value)])
    }

    /// A message with two arguments.
    pub fn arg2(&self, id: &str, n1: &str, v1: impl Arg, n2: &str, v2: impl Arg) -> String {
        self.args(id, &[(n1, &v1), (n2, &v2)])
    }

    /// A message with three arguments.
    #[allow(clippy::too_many_arguments)]
    pub fn arg3(
        &self,
        id: &str,
        n1: &str,
        v1: impl Arg,
        n2: &str,
        v2: impl Arg,
        n3: &str,
        v3: impl Arg,
    ) -> String {
        self.args(id, &[(n1, &v1), (n2, &v2), (n3, &v3)])
    }

    /// A message with any number of arguments.
    pub fn args(&self, id: &str, args: &[(&str, &dyn Arg)]) -> String {
        let mut fluent = FluentArgs::new();
        for (name, value) in args {
            fluent.set(name.to_string(), value.value());
        }
        self.text(id, Some(&fluent))
    }

    /// A message with markup of its own (`<strong>`), for `|safe` in a template: the
    /// arguments are escaped here, the message's text is ours.
    pub fn html(&self, id: &str, name: &str, value: impl Arg) -> String {
        self.args(id, &[(name, &Escaped(value.value()))])
    }

    /// [`Lang::html`] with two arguments.
    pub fn html2(&self, id: &str, n1: &str, v1: impl Arg, n2: &str, v2: impl Arg) -> String {
        self.args(
            id,
            &[(n1, &Escaped(v1.value())), (n2, &Escaped(v2.value()))],
        )
    }

    /// [`Lang::html`] with three arguments.
    #[allow(clippy::too_many_arguments)]
    pub fn html3(
        &self,
        id: &str,
        n1: &str,
        v1: impl Arg,
        n2: &str,
        v2: impl Arg,
        n3: &str,
        v3: impl Arg,
    ) -> String {
        self.args(
            id,
            &[
                (n1, &Escaped(v1.value())),
                (n2, &Escaped(v2.value())),
                (n3, &Escaped(v3.value())),
            ],
        )
    }

    /// Whether this language or its fallback has a message.
    pub fn has(&self, id: &str) -> bool {
        self.language.has(id) || self.fallback.as_ref().is_some_and(|f| f.has(id))
    }

    /// A date as customers read it: `Mar 5, 2026`, `5 mars 2026`.
    pub fn date(&self, d: NaiveDate) -> String {
        match Date::try_new_iso(d.year(), d.month() as u8, d.day() as u8) {
            Ok(date) => self.language.date.format(&date).to_string(),
            Err(_) => d.to_string(),
        }
    }

    /// A number with the language's separators and exactly `fraction` decimals when given as
    /// minor units (`12900`, 2 → `129.00` / `129,00`).
    pub fn decimal(&self, minor: i64, fraction: i16) -> String {
        let mut d = Decimal::from(minor);
        d.multiply_pow10(-fraction);
        self.language.decimal.format(&d).to_string()
    }

    /// An amount of money: `$129.00 CAD`, `129,00 $`. The number is ICU's; where the symbol
    /// goes is the language's `money` message.
    pub fn money(&self, m: &Money) -> String {
        self.arg2(
            "money",
            "amount",
            self.decimal(m.minor(), 2),
            "currency",
            m.currency().to_string(),
        )
    }
}

#[cfg(test)]
mod tests;
