//! A browser's HTTP behaviour for the sign-in tests, without the browser: host-only cookies
//! kept per host name (not per port, as browsers do), redirects followed one hop at a time
//! and recorded, `Accept: text/html` on navigations, and the `Origin` a page's form sends.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

pub struct Web {
    client: reqwest::Client,
    /// host name → cookie name → value
    jar: Mutex<HashMap<String, BTreeMap<String, String>>>,
}

/// Where a navigation ended.
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub url: String,
    pub body: String,
    pub content_type: String,
    /// Every URL visited on the way, the first included.
    pub hops: Vec<String>,
}

impl Default for Web {
    fn default() -> Self {
        Self { client: crate::client_without_redirects(), jar: Mutex::default() }
    }
}

fn host_of(url: &str) -> String {
    reqwest::Url::parse(url).ok().and_then(|u| u.host_str().map(str::to_string)).unwrap_or_default()
}

impl Page {
    /// The hidden fields of the page's forms (`<input type="hidden" name=… value=…>`, as
    /// the platform's and the SDK's pages write them), in order.
    pub fn hidden_fields(&self) -> Vec<(String, String)> {
        let attribute = |tag: &str, name: &str| -> Option<String> {
            let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
            let end = start + tag[start..].find('"')?;
            Some(tag[start..end].replace("&quot;", "\"").replace("&#39;", "'").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"))
        };
        self.body
            .split("<input ")
            .skip(1)
            .filter_map(|rest| rest.split('>').next())
            .filter(|tag| tag.starts_with("type=\"hidden\""))
            .filter_map(|tag| Some((attribute(tag, "name")?, attribute(tag, "value")?)))
            .collect()
    }
}

impl Web {
    pub fn cookie(&self, url: &str, name: &str) -> Option<String> {
        self.jar.lock().unwrap().get(&host_of(url)).and_then(|c| c.get(name).cloned())
    }

    pub fn set_cookie(&self, url: &str, name: &str, value: &str) {
        self.jar.lock().unwrap().entry(host_of(url)).or_default().insert(name.into(), value.into());
    }

    /// One request with this browser's cookies; stores what it sets.
    pub async fn send(&self, method: reqwest::Method, url: &str, form: Option<&[(&str, &str)]>, headers: &[(&str, &str)]) -> reqwest::Response {
        let host = host_of(url);
        let mut request = self.client.request(method, url);
        let cookies = self.jar.lock().unwrap().get(&host).map(|c| c.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; "));
        if let Some(cookies) = cookies.filter(|c| !c.is_empty()) {
            request = request.header("cookie", cookies);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(form) = form {
            request = request.form(form);
        }
        let response = request.send().await.expect("the request reaches the server");
        let mut jar = self.jar.lock().unwrap();
        let cookies = jar.entry(host).or_default();
        for set in response.headers().get_all("set-cookie") {
            let text = set.to_str().unwrap_or("");
            let Some((name, rest)) = text.split_once('=') else { continue };
            let value = rest.split(';').next().unwrap_or("");
            if text.contains("Max-Age=0") {
                cookies.remove(name);
            } else {
                cookies.insert(name.to_string(), value.to_string());
            }
        }
        response
    }

    /// A navigation: GET, following redirects (up to 20).
    pub async fn open(&self, url: &str) -> Page {
        self.follow(reqwest::Method::GET, url, None, None).await
    }

    /// Submits a form from a page of `origin` to `url`, following redirects.
    pub async fn submit(&self, url: &str, origin: &str, form: &[(&str, &str)]) -> Page {
        self.follow(reqwest::Method::POST, url, Some(form), Some(origin)).await
    }

    async fn follow(&self, method: reqwest::Method, url: &str, form: Option<&[(&str, &str)]>, origin: Option<&str>) -> Page {
        let mut hops = vec![url.to_string()];
        let mut url = url.to_string();
        let (mut method, mut form) = (method, form);
        for _ in 0..20 {
            let mut headers = vec![("accept", "text/html,application/xhtml+xml,*/*;q=0.8"), ("sec-fetch-mode", "navigate")];
            if let Some(origin) = origin.filter(|_| method == reqwest::Method::POST) {
                headers.push(("origin", origin));
            }
            let response = self.send(method.clone(), &url, form, &headers).await;
            let status = response.status().as_u16();
            if (300..400).contains(&status) {
                let location = response.headers().get("location").and_then(|v| v.to_str().ok()).expect("a redirect has a Location").to_string();
                url = reqwest::Url::parse(&url).unwrap().join(&location).unwrap().to_string();
                hops.push(url.clone());
                (method, form) = (reqwest::Method::GET, None);
                continue;
            }
            let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
            let body = response.text().await.unwrap_or_default();
            return Page { status, url, body, content_type, hops };
        }
        panic!("more than 20 redirects: {hops:?}");
    }
}
