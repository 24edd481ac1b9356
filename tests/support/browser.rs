//! A browser for tests: a cookie jar, forms submitted with their hidden fields, redirects
//! followed on request (so tests can see each 303).

use reqwest::redirect::Policy;
use scraper::{Html, Selector};

pub struct Browser {
    client: reqwest::Client,
    base: String,
    jar: std::sync::Arc<reqwest::cookie::Jar>,
}

#[derive(Debug, Clone)]
pub struct Page {
    pub url: String,
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    /// The body as text (invalid UTF-8 replaced).
    pub body: String,
    /// The body as sent (a PDF's bytes).
    pub bytes: Vec<u8>,
}

impl Page {
    pub fn location(&self) -> Option<String> {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_string)
            .collect()
    }

    pub fn html(&self) -> Html {
        Html::parse_document(&self.body)
    }

    /// The visible text, whitespace collapsed.
    pub fn text(&self) -> String {
        let doc = self.html();
        let body = Selector::parse("body").unwrap();
        let text: String = doc
            .select(&body)
            .next()
            .map(|b| b.text().collect::<Vec<_>>().join(" "))
            .unwrap_or_default();
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    pub fn select_text(&self, selector: &str) -> Vec<String> {
        let doc = self.html();
        let sel = Selector::parse(selector).unwrap();
        doc.select(&sel)
            .map(|e| {
                e.text()
                    .collect::<Vec<_>>()
                    .join(" ")
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    }

    /// The `href` of every element the selector finds.
    pub fn hrefs(&self, selector: &str) -> Vec<String> {
        let doc = self.html();
        let sel = Selector::parse(selector).unwrap();
        doc.select(&sel)
            .filter_map(|e| e.value().attr("href").map(str::to_string))
            .collect()
    }

    pub fn title(&self) -> String {
        self.select_text("title")
            .into_iter()
            .next()
            .unwrap_or_default()
    }

    pub fn h1(&self) -> String {
        self.select_text("h1")
            .into_iter()
            .next()
            .unwrap_or_default()
    }

    /// A form's action and its fields (inputs with their values, first submit button ignored).
    pub fn form(&self, selector: &str) -> (String, Vec<(String, String)>) {
        let doc = self.html();
        let sel = Selector::parse(selector).unwrap();
        let form = doc
            .select(&sel)
            .next()
            .unwrap_or_else(|| panic!("no form {selector} on {}:\n{}", self.url, self.body));
        let action = form.value().attr("action").unwrap_or("").to_string();
        let input = Selector::parse("input[name], textarea[name], select[name]").unwrap();
        let fields = form
            .select(&input)
            .filter(|i| {
                !matches!(i.value().attr("type"), Some("checkbox" | "radio"))
                    || i.value().attr("checked").is_some()
            })
            .map(|i| {
                (
                    i.value().attr("name").unwrap().to_string(),
                    i.value().attr("value").unwrap_or("").to_string(),
                )
            })
            .collect();
        (action, fields)
    }

    pub fn csrf(&self) -> String {
        let doc = self.html();
        let sel = Selector::parse("input[name=csrf_token]").unwrap();
        doc.select(&sel)
            .next()
            .and_then(|e| e.value().attr("value"))
            .unwrap_or_else(|| panic!("no csrf_token on {}", self.url))
            .to_string()
    }
}

impl Browser {
    pub fn new(base: &str) -> Self {
        Self::build(base, reqwest::header::HeaderMap::new())
    }

    /// A browser behind a trusted proxy that reports its address as `ip` (`X-Forwarded-For`;
    /// the app must list 127.0.0.1 in `trusted_proxies`).
    pub fn from_ip(base: &str, ip: &str) -> Self {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("x-forwarded-for", ip.parse().unwrap());
        Self::build(base, headers)
    }

    /// A browser whose every request says `Accept-Language: {languages}`.
    #[allow(dead_code)]
    pub fn with_accept_language(base: &str, languages: &str) -> Self {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("accept-language", languages.parse().unwrap());
        Self::build(base, headers)
    }

    fn build(base: &str, headers: reqwest::header::HeaderMap) -> Self {
        let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
        Self {
            client: reqwest::Client::builder()
                .cookie_provider(jar.clone())
                .default_headers(headers)
                .redirect(Policy::none())
                .build()
                .unwrap(),
            base: base.to_string(),
            jar,
        }
    }

    /// The value of the cookie `name` that this browser sends to `path`.
    pub fn cookie(&self, path: &str, name: &str) -> Option<String> {
        use reqwest::cookie::CookieStore;
        let url: reqwest::Url = self.absolute(path).parse().unwrap();
        let header = self.jar.cookies(&url)?;
        header.to_str().ok()?.split("; ").find_map(|c| {
            let (n, v) = c.split_once('=')?;
            (n == name).then(|| v.to_string())
        })
    }

    /// Stores a cookie as a `Set-Cookie` header for `path` would.
    pub fn set_cookie(&self, path: &str, set_cookie: &str) {
        let url: reqwest::Url = self.absolute(path).parse().unwrap();
        self.jar.add_cookie_str(set_cookie, &url);
    }

    /// A second browser with no cookies.
    pub fn fresh(&self) -> Self {
        Self::new(&self.base)
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn absolute(&self, url: &str) -> String {
        if url.starts_with("http://") || url.starts_with("https://") {
            url.to_string()
        } else {
            format!("{}{url}", self.base)
        }
    }

    async fn page(resp: reqwest::Response) -> Page {
        let url = resp.url().to_string();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
        Page {
            url,
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
            bytes,
        }
    }

    pub async fn get(&self, path: &str) -> Page {
        self.get_url(&self.absolute(path)).await
    }

    pub async fn get_url(&self, url: &str) -> Page {
        Self::page(
            self.client
                .get(self.absolute(url))
                .send()
                .await
                .expect("GET"),
        )
        .await
    }

    pub async fn post_form(&self, path: &str, fields: &[(String, String)]) -> Page {
        Self::page(
            self.client
                .post(self.absolute(path))
                .form(fields)
                .send()
                .await
                .expect("POST"),
        )
        .await
    }

    /// POSTs a raw body with the given content type.
    pub async fn post_raw(&self, path: &str, content_type: &str, body: Vec<u8>) -> Page {
        Self::page(
            self.client
                .post(self.absolute(path))
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .expect("POST"),
        )
        .await
    }

    /// Submits a form of `page` as a browser would, with `overrides` replacing or adding fields.
    pub async fn submit(&self, page: &Page, selector: &str, overrides: &[(&str, &str)]) -> Page {
        let (action, mut fields) = page.form(selector);
        for (name, value) in overrides {
            match fields.iter_mut().find(|(n, _)| n == name) {
                Some(f) => f.1 = value.to_string(),
                None => fields.push((name.to_string(), value.to_string())),
            }
        }
        let target = if action.is_empty() {
            page.url.clone()
        } else {
            action
        };
        self.post_form(&target, &fields).await
    }

    /// Follows a redirect response (GET to its Location).
    /// Submits a form and, when the answer is a redirect, follows it (as a browser does after
    /// a POST): "Check your email" is reached by POST-redirect-GET.
    pub async fn submit_followed(
        &self,
        page: &Page,
        selector: &str,
        overrides: &[(&str, &str)],
    ) -> Page {
        let answer = self.submit(page, selector, overrides).await;
        if (300..400).contains(&answer.status) {
            self.follow(&answer).await
        } else {
            answer
        }
    }

    pub async fn follow(&self, page: &Page) -> Page {
        let location = page
            .location()
            .unwrap_or_else(|| panic!("not a redirect ({}): {}", page.status, page.body));
        self.get(&location).await
    }
}
