//! Languages (SPEC §10) through HTTP as a browser: the portal's pages and emails in English and
//! French (Canada), which language a page picks (cookie, Accept-Language, storefront, account),
//! dates and amounts per language, Stripe Checkout opened in the page's language, and the
//! wording that follows numbers (plurals, the 429's wait).

mod support;

use support::*;

const FRENCH_MONTHS: [&str; 12] = [
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
];

/// A date as French (Canada) writes it, from the database's `YYYY-MM-DD`: `1 avril 2026`.
fn french_date(iso: &str) -> String {
    let parts: Vec<u32> = iso[..10].split('-').map(|p| p.parse().unwrap()).collect();
    format!(
        "{} {} {}",
        parts[2],
        FRENCH_MONTHS[parts[1] as usize - 1],
        parts[0]
    )
}

async fn demo_id(app: &TestApp) -> i64 {
    app.rows("SELECT id FROM storefronts WHERE slug = 'demo'", &[])
        .await[0]
        .i64(0)
}

async fn account_id(app: &TestApp, email: &str) -> i64 {
    app.rows("SELECT id FROM accounts WHERE email = $1", &[email.into()])
        .await[0]
        .i64(0)
}

async fn set_account_language(app: &TestApp, email: &str, language: Option<&str>) {
    let (sf, id) = (demo_id(app).await, account_id(app, email).await);
    app.store()
        .set_account_language(sf, id, language, app.clock_now())
        .await
        .unwrap();
}

/// Signs in by the email's link, whatever the language of the pages on the way.
async fn sign_in(app: &TestApp, browser: &Browser, email: &str) -> Page {
    let before = app.mailbox.to(email).len();
    let page = browser.get("/s/demo/sign-in").await;
    let sent = browser
        .submit_followed(&page, "form[action$='/sign-in']", &[("email", email)])
        .await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    let mail = app.mailbox.nth(email, before + 1).await;
    let landing = browser.get_url(&sign_in_link(&mail)).await;
    let redirected = browser.submit(&landing, "form", &[]).await;
    assert_eq!(redirected.status, 303, "{}", redirected.body);
    browser.follow(&redirected).await
}

fn html_lang(page: &Page) -> String {
    let sel = scraper::Selector::parse("html").unwrap();
    page.html()
        .select(&sel)
        .next()
        .and_then(|h| h.value().attr("lang").map(str::to_string))
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_root_page_follows_the_visitors_language() {
    let app = TestApp::start(Backend::Embedded).await;
    let french = Browser::with_accept_language(&app.url(""), "fr-CA,fr;q=0.9");
    let page = french.get("/").await;
    assert_eq!(page.status, 200);
    assert_eq!(html_lang(&page), "fr-CA");
    assert!(
        page.text().contains("Le portail client de chaque vitrine"),
        "{}",
        page.text()
    );
    let english = app.browser().get("/").await;
    assert_eq!(html_lang(&english), "en");
    assert!(
        english.text().contains("Each storefront's customer portal"),
        "{}",
        english.text()
    );
}

both_backends! {
    async fn the_portal_reads_in_english_then_in_french_once_the_account_chooses_it(backend: Backend) {
        let app = Setup::new(backend).with_stripe().start().await;
        let browser = app.browser();
        let dashboard = app.sign_in(&browser, "alex@example.com").await;
        assert_eq!(html_lang(&dashboard), "en");
        assert_eq!(dashboard.h1(), "Hi, Alex");
        let billing = browser.get("/s/demo/billing").await;
        assert!(billing.select_text("button").contains(&"Pay $129.00 USD".to_string()));

        // Alex chooses French on the Account page.
        let account = browser.get("/s/demo/account").await;
        let options = account.select_text("select[name=language] option");
        assert_eq!(options, ["The storefront's language (English)", "English", "Français"]);
        let saved = browser
            .submit(&account, "form[action$='/account']", &[("language", "fr-CA")])
            .await;
        assert_eq!(saved.status, 303, "{}", saved.body);
        let stored = app.rows("SELECT language FROM accounts WHERE email = 'alex@example.com'", &[]).await;
        assert_eq!(stored[0].opt_string(0).as_deref(), Some("fr-CA"));

        let account = browser.follow(&saved).await;
        assert_eq!(html_lang(&account), "fr-CA");
        assert_eq!(account.h1(), "Compte");
        assert_eq!(account.select_text(".notice"), ["Vos renseignements ont été enregistrés."]);
        assert_eq!(account.select_text("label"), ["Nom complet", "Courriel", "Téléphone", "Langue"]);
        let sel = scraper::Selector::parse("select[name=language] option[selected]").unwrap();
        let selected: Vec<String> = account.html().select(&sel).filter_map(|o| o.value().attr("value").map(str::to_string)).collect();
        assert_eq!(selected, ["fr-CA"]);

        let dashboard = browser.get("/s/demo/dashboard").await;
        assert_eq!(html_lang(&dashboard), "fr-CA");
        assert_eq!(dashboard.h1(), "Bonjour, Alex");
        assert!(dashboard.select_text("h2").contains(&"Vos locations".to_string()));
        assert!(dashboard.select_text("nav a").contains(&"Tableau de bord".to_string()));
        let start = app.rows(
            "SELECT CAST(r.starts_on AS TEXT) FROM rentals r JOIN contacts c ON c.id = r.contact_id JOIN accounts a ON a.id = c.account_id
             WHERE a.email = 'alex@example.com' AND r.status = 'active' ORDER BY r.id LIMIT 1",
            &[],
        ).await[0].string(0);
        let since = format!("Depuis le {}", french_date(&start));
        assert!(dashboard.text().contains(&since), "no {since:?} in {}", dashboard.text());
        assert!(dashboard.text().contains(" par mois"), "{}", dashboard.text());
        assert!(!dashboard.text().contains("per month"));

        let rental = app.rows(
            "SELECT r.id FROM rentals r JOIN contacts c ON c.id = r.contact_id JOIN accounts a ON a.id = c.account_id
             WHERE a.email = 'alex@example.com' AND r.status = 'active' ORDER BY r.id LIMIT 1",
            &[],
        ).await[0].i64(0);
        let rental = browser.get(&format!("/s/demo/rentals/{rental}")).await;
        assert_eq!(html_lang(&rental), "fr-CA");
        assert!(rental.select_text("h2").contains(&"Votre réservation".to_string()));
        assert!(rental.text().contains(&since));

        let billing = browser.get("/s/demo/billing").await;
        assert_eq!(billing.h1(), "Facturation");
        // The amount is written with no-break spaces (select_text would fold them).
        assert!(billing.body.contains("Payer 129,00\u{a0}$\u{a0}US</button>"), "{}", billing.body);
        let due = app.rows("SELECT CAST(due_on AS TEXT) FROM invoices WHERE number = 'INV-1042'", &[]).await[0].string(0);
        let id = app.invoice_id("INV-1042").await;
        let row = billing.select_text(&format!("#invoice-{id} td"));
        assert!(row.contains(&french_date(&due)), "{row:?}");
        assert!(row.contains(&"À payer".to_string()), "{row:?}");

        // Signed out, the sign-in page follows the browser again (Alex's choice is the
        // account's), and the footer offers both languages.
        let out = browser.fresh().get("/s/demo/sign-in").await;
        assert_eq!(html_lang(&out), "en");
        assert_eq!(out.h1(), "Customer portal");
        let offered = out.select_text("footer nav a");
        assert!(offered.contains(&"English".to_string()) && offered.contains(&"Français".to_string()), "{offered:?}");
    }

    async fn a_signed_out_page_follows_the_cookie_then_accept_language_then_the_storefront(backend: Backend) {
        let app = TestApp::start(backend).await;
        let plain = app.browser();
        let page = plain.get("/s/demo/sign-in").await;
        assert_eq!((html_lang(&page), page.h1()), ("en".to_string(), "Customer portal".to_string()));

        // Accept-Language: the best language shipped, in the browser's order.
        let french = Browser::with_accept_language(plain.base(), "fr-FR,fr;q=0.9,en;q=0.8");
        let page = french.get("/s/demo/sign-in").await;
        assert_eq!((html_lang(&page), page.h1()), ("fr-CA".to_string(), "Portail client".to_string()));
        assert_eq!(page.select_text("button"), ["Recevoir un lien de connexion"]);
        let german = Browser::with_accept_language(plain.base(), "de-DE,de;q=0.9");
        assert_eq!(html_lang(&german.get("/s/demo/sign-in").await), "en");

        // The footer's switcher sets the cookie and comes back to the same page; the cookie
        // beats Accept-Language.
        let hrefs = page.hrefs("footer nav a");
        assert_eq!(hrefs, ["/s/demo/language/en?back=%2Fsign%2Din", "/s/demo/language/fr-CA?back=%2Fsign%2Din"]);
        let switched = french.get(&hrefs[0]).await;
        assert_eq!(switched.status, 303);
        assert_eq!(switched.location().as_deref(), Some("/s/demo/sign-in"));
        assert!(switched.set_cookies().iter().any(|c| c.starts_with("lk_lang=en;") && c.contains("Path=/s/demo/")), "{:?}", switched.set_cookies());
        let page = french.follow(&switched).await;
        assert_eq!((html_lang(&page), page.h1()), ("en".to_string(), "Customer portal".to_string()));
        // The switcher only goes back inside the storefront, and only to a language it has.
        let away = plain.get("/s/demo/language/fr-CA?back=%2F%2Fevil.example").await;
        assert_eq!(away.location().as_deref(), Some("/s/demo/"));
        assert_eq!(plain.get("/s/demo/language/de").await.status, 404);

    }

    async fn the_storefront_language_is_the_default(backend: Backend) {
        let app = TestApp::start(backend).await;
        // Set before the storefront's first request (its row is cached).
        let sf = demo_id(&app).await;
        app.store().set_storefront_language(sf, "fr-CA", app.clock_now()).await.unwrap();
        let page = app.browser().get("/s/demo/sign-in").await;
        assert_eq!((html_lang(&page), page.h1()), ("fr-CA".to_string(), "Portail client".to_string()));
        let english = Browser::with_accept_language(&app.url(""), "en-CA");
        assert_eq!(html_lang(&english.get("/s/demo/sign-in").await), "en");
        // Its emails too, for an account that chose none.
        let browser = app.browser();
        let page = browser.get("/s/demo/sign-in").await;
        let sent = browser.submit_followed(&page, "form[action$='/sign-in']", &[("email", "alex@example.com")]).await;
        assert_eq!(sent.h1(), "Consultez vos courriels");
        // The sign-in code's field and its email text are French too, and so are its errors.
        assert!(sent.text().contains("Vous avez un code?"), "{}", sent.text());
        assert!(sent.text().contains("Me connecter avec le code"), "{}", sent.text());
        let short = browser.submit(&sent, "form[action$='/sign-in/code']", &[("code", "12")]).await;
        assert!(short.text().contains("Le code compte 6 chiffres"), "{}", short.text());
        assert!(!short.text().contains("The code has 6 digits"), "{}", short.text());
        let mail = app.mailbox.wait_for("alex@example.com").await;
        assert!(mail.text_body().contains("Bonjour Alex,"), "{}", mail.text_body());
        for part in [mail.text_body(), mail.html_body().unwrap()] {
            assert!(part.contains("Vous lisez ceci sur un autre appareil?"), "{part}");
            assert!(!part.contains("Reading this on another device"), "{part}");
        }
    }

    async fn a_signed_in_account_language_beats_the_cookie(backend: Backend) {
        let app = TestApp::start(backend).await;
        set_account_language(&app, "alex@example.com", Some("en")).await;
        let browser = Browser::with_accept_language(&app.url(""), "fr-CA");
        browser.set_cookie("/s/demo/", "lk_lang=fr-CA; Path=/s/demo/");
        assert_eq!(html_lang(&browser.get("/s/demo/sign-in").await), "fr-CA");
        let dashboard = sign_in(&app, &browser, "alex@example.com").await;
        assert_eq!(html_lang(&dashboard), "en");
        assert_eq!(dashboard.h1(), "Hi, Alex");
        // With no language of its own, the account follows the browser's.
        set_account_language(&app, "alex@example.com", None).await;
        let dashboard = browser.get("/s/demo/dashboard").await;
        assert_eq!(dashboard.h1(), "Bonjour, Alex");
    }

    async fn a_french_account_gets_french_emails_in_both_parts(backend: Backend) {
        let app = TestApp::start(backend).await;
        set_account_language(&app, "alex@example.com", Some("fr-CA")).await;
        // Asked from an English page: the email follows the account, not the page.
        let browser = app.browser();
        let page = browser.get("/s/demo/sign-in").await;
        let sent = browser.submit_followed(&page, "form[action$='/sign-in']", &[("email", "alex@example.com")]).await;
        assert_eq!(sent.h1(), "Check your email");
        let mail = app.mailbox.wait_for("alex@example.com").await;
        let subject = mail.subject().unwrap_or_default();
        assert!(subject.starts_with("Votre lien de connexion à "), "{subject}");
        let text = mail.text_body();
        let html = mail.html_body().unwrap();
        for part in [&text, &html] {
            assert!(part.contains("Bonjour Alex,"), "{part}");
            assert!(part.contains("expire dans 60 minutes"), "{part}");
            assert!(part.contains("Si vous n’avez pas demandé ce lien"), "{part}");
            assert!(!part.contains("expires in"), "{part}");
        }
        assert!(html.contains("lang=\"fr-CA\""), "{html}");
        // An English account's email, asked the same way, is English and says 60 minutes too.
        let page = browser.get("/s/demo/sign-in").await;
        browser.submit_followed(&page, "form[action$='/sign-in']", &[("email", "sam@example.com")]).await;
        let mail = app.mailbox.wait_for("sam@example.com").await;
        assert!(mail.text_body().contains("expires in 60 minutes"), "{}", mail.text_body());
        assert!(mail.html_body().unwrap().contains("lang=\"en\""));
    }

    async fn checkout_opens_in_the_page_language(backend: Backend) {
        let app = Setup::new(backend).with_stripe().start().await;
        let browser = app.browser();
        app.sign_in(&browser, "alex@example.com").await;
        let id = app.invoice_id("INV-1042").await;
        let billing = browser.get("/s/demo/billing?status=pending").await;
        let paid = browser.submit(&billing, &format!("form[action='/s/demo/billing/invoices/{id}/pay']"), &[]).await;
        assert_eq!(paid.status, 303);
        let first = app.fake_stripe().requests_to("/v1/checkout/sessions");
        assert_eq!(first.last().unwrap().param("locale"), Some("en"));
        assert_eq!(first.last().unwrap().param("line_items[0][price_data][product_data][name]").map(|n| n.starts_with("Invoice INV-1042")), Some(true));

        set_account_language(&app, "alex@example.com", Some("fr-CA")).await;
        let french = app.browser();
        sign_in(&app, &french, "alex@example.com").await;
        // The open Checkout is handed out again; expire it so a new one is created.
        app.fake_stripe().clear_requests();
        let setup = french.get("/s/demo/billing").await;
        let added = french.submit(&setup, "form[action$='/billing/payment-methods']", &[]).await;
        assert_eq!(added.status, 303);
        let sessions = app.fake_stripe().requests_to("/v1/checkout/sessions");
        let created: Vec<_> = sessions.iter().filter(|r| r.method == "POST").collect();
        assert_eq!(created.last().unwrap().param("mode"), Some("setup"));
        assert_eq!(created.last().unwrap().param("locale"), Some("fr-CA"));
    }

    async fn a_one_minute_link_says_one_minute(backend: Backend) {
        let app = Setup::new(backend).config(|c| c.sign_in.link_ttl_minutes = 1).start().await;
        let browser = app.browser();
        let page = browser.get("/s/demo/sign-in").await;
        let sent = browser.submit_followed(&page, "form[action$='/sign-in']", &[("email", "alex@example.com")]).await;
        assert!(sent.text().contains("expires in 1 minute."), "{}", sent.text());
        let mail = app.mailbox.wait_for("alex@example.com").await;
        assert!(mail.text_body().contains("expires in 1 minute:"), "{}", mail.text_body());
        assert!(!mail.text_body().contains("1 minutes"));
    }

    async fn the_429_page_says_the_wait_retry_after_gives(backend: Backend) {
        let app = Setup::new(backend)
            .config(|c| {
                c.rate_limit.ip_per_second = 1;
                c.rate_limit.ip_burst = 3;
            })
            .start()
            .await;
        for browser in [app.browser(), Browser::with_accept_language(&app.url(""), "fr-CA")] {
            let page = browser.get("/s/demo/sign-in").await;
            let mut last = None;
            for _ in 0..6 {
                last = Some(browser.submit(&page, "form[action$='/sign-in']", &[("email", "nobody@example.com")]).await);
            }
            let limited = last.unwrap();
            assert_eq!(limited.status, 429);
            let retry: u64 = limited.headers["retry-after"].to_str().unwrap().parse().unwrap();
            let text = limited.text();
            assert!(!text.contains("a minute"), "{text}");
            let french = html_lang(&limited) == "fr-CA";
            let expected = match (french, retry) {
                (false, 1) => "Wait a second, then try again.".to_string(),
                (false, n) => format!("Wait {n} seconds, then try again."),
                (true, 1) => "Attendez 1 seconde, puis réessayez.".to_string(),
                (true, n) => format!("Attendez {n} secondes, puis réessayez."),
            };
            assert!(text.contains(&expected), "Retry-After {retry}: {text}");
        }
    }
}
