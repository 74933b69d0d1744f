//! The few pages sign-in shows people itself, in Japanese: a choice of provider, what went
//! wrong, and the form posted again after sign-in. Each fits a phone, has one heading and
//! carries a strict CSP (a per-page nonce for the one script).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Escapes text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:40rem;margin:0 auto;padding:1rem;line-height:1.6;color:#1a1a1a;background:#fff}\
h1{font-size:1.4rem}a,button{font-size:1rem}button{padding:.6rem 1rem;border:1px solid #1a4f8b;background:#1a4f8b;color:#fff;border-radius:4px;cursor:pointer}\
ul{padding-left:1.2rem}li{margin:.4rem 0}.note{color:#3d3d3d}form.inline{display:inline}";

/// A whole page: `body` is trusted HTML (callers escape what they put in it).
pub fn page(status: StatusCode, title: &str, body: &str) -> Response {
    page_with_script(status, title, body, None)
}

/// A page with one inline script, allowed by its nonce alone.
pub fn page_with_script(status: StatusCode, title: &str, body: &str, script: Option<&str>) -> Response {
    let nonce = crate::signin::secret();
    let script = script.map(|s| format!("<script nonce=\"{nonce}\">{s}</script>")).unwrap_or_default();
    let html = format!(
        "<!doctype html>\n<html lang=\"ja\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{title}</title><style nonce=\"{nonce}\">{STYLE}</style></head><body><main><h1>{title}</h1>{body}</main>{script}</body></html>",
        title = escape(title)
    );
    let csp = format!("default-src 'none'; style-src 'nonce-{nonce}'; script-src 'nonce-{nonce}'; frame-ancestors 'none'; base-uri 'none'");
    let mut response = (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-store")], html).into_response();
    if let Ok(csp) = HeaderValue::from_str(&csp) {
        response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    crate::edge::problems::mark_page(&mut response);
    response
}

/// A refusal as a page: what happened, what to do, and a way back.
pub fn refusal(status: StatusCode, what: &str, todo: &str, back: Option<&str>) -> Response {
    let back = back.map(|href| format!("<p><a href=\"{}\">もとのページに戻る</a></p>", escape(href))).unwrap_or_default();
    page(status, "ログインできませんでした", &format!("<p>{}</p><p class=\"note\">{}</p>{back}", escape(what), escape(todo)))
}
