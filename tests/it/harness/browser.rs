//! An HTTP "browser" for connect flows without a real browser: a cookie jar, no automatic
//! redirects, and helpers that walk Latch → provider → Latch the way a browser would.

use serde_json::Value;

/// One browser profile (its own cookies), on a page of `origin` (the host app's, by default).
pub struct Browser {
    pub http: reqwest::Client,
    /// The origin of the page the browser starts flows from, sent as `Origin` the way a browser
    /// does on the widget's form POST.
    pub origin: String,
}

/// Where a walk through a flow ended.
#[derive(Debug, Clone)]
pub struct FlowRun {
    /// Status of the last page.
    pub status: u16,
    /// The last page's HTML.
    pub page: String,
    /// The message the page posts to the widget, if any.
    pub message: Option<Value>,
    /// Every body the browser received, for secret scans.
    pub bodies: Vec<String>,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

impl Browser {
    pub fn new() -> Self {
        let http =
            reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Self { http, origin: super::HOST_ORIGIN.to_owned() }
    }

    /// The widget's start of a flow: a form POST to Latch's authorize URL from [`Self::origin`].
    pub fn start_request(&self, authorize_url: &str) -> reqwest::RequestBuilder {
        self.http
            .post(authorize_url)
            .header("origin", &self.origin)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("")
    }

    /// [`Self::start_request`], sent; returns status, `Location` and body.
    pub async fn start(&self, authorize_url: &str) -> (u16, Option<String>, String) {
        let r = self.start_request(authorize_url).send().await.unwrap();
        let status = r.status().as_u16();
        let location = r.headers().get("location").map(|v| v.to_str().unwrap().to_owned());
        (status, location, r.text().await.unwrap())
    }

    /// GET; returns status, `Location` and body.
    pub async fn get(&self, url: &str) -> (u16, Option<String>, String) {
        let r = self.http.get(url).send().await.unwrap();
        let status = r.status().as_u16();
        let location = r.headers().get("location").map(|v| v.to_str().unwrap().to_owned());
        (status, location, r.text().await.unwrap())
    }

    /// Starts a flow at Latch's authorize URL and follows the provider's redirects (login and consent
    /// pages that answer with redirects, at most 10 hops) back to Latch, then to the last page.
    pub async fn run(&self, latch_url: &str, authorize_url: &str) -> FlowRun {
        let mut bodies = Vec::new();
        let (status, mut next, body) = self.start(authorize_url).await;
        bodies.push(body.clone());
        if status != 303 {
            return FlowRun { status, message: message(&body), page: body, bodies };
        }
        let callback = format!("{latch_url}/oauth/callback");
        for _ in 0..10 {
            let url = next.take().expect("a redirect");
            let url = if url.starts_with('/') { panic!("relative redirect from provider: {url}") } else { url };
            if url.starts_with(&callback) {
                return self.finish(latch_url, &url, bodies).await;
            }
            let (status, location, body) = self.get(&url).await;
            bodies.push(body.clone());
            match location {
                Some(l) if (300..400).contains(&status) => {
                    next = Some(if l.starts_with('/') { join(&url, &l) } else { l });
                }
                _ => panic!("the provider stopped at {url} with {status}: {body}"),
            }
        }
        panic!("too many redirects before the callback")
    }

    /// Delivers a callback URL and follows to the result page.
    pub async fn finish(&self, latch_url: &str, callback_url: &str, mut bodies: Vec<String>) -> FlowRun {
        let (status, to_result, body) = self.get(callback_url).await;
        bodies.push(body.clone());
        let (status, page) = match to_result.filter(|_| status == 303) {
            Some(path) => {
                assert!(!path.contains("code=") && !path.contains("state="), "the result URL leaks the code: {path}");
                let (status, _, page) = self.get(&format!("{latch_url}{path}")).await;
                bodies.push(page.clone());
                (status, page)
            }
            None => (status, body),
        };
        FlowRun { status, message: message(&page), page, bodies }
    }
}

/// The JSON a result page posts to `window.opener`.
pub fn message(page: &str) -> Option<Value> {
    let start = page.find(r#"id="latch-message">"#)? + r#"id="latch-message">"#.len();
    let end = start + page[start..].find("</script>")?;
    serde_json::from_str(&page[start..end]).ok()
}

/// Resolves a relative redirect against the URL that sent it.
fn join(base: &str, location: &str) -> String {
    url::Url::parse(base).unwrap().join(location).unwrap().to_string()
}
