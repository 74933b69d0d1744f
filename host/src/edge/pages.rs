//! The pages the platform itself shows people on module origins and at sign-in, in
//! Japanese: a choice of provider, the form posted again after sign-in, and every refusal
//! the edge makes to a browser (API clients get the same refusal as problem+json). Each
//! fits a phone, has one heading and carries a strict CSP (a per-page nonce for the one
//! script).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Whether the client asked for a page (a browser), not data.
pub fn wants_html(headers: &axum::http::HeaderMap) -> bool {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("text/html"))
}

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

/// A platform refusal for a person: what it means and what to do, in Japanese, and the
/// refusal's code and request id for whoever they ask for help. The refusal's own sentence
/// is for API clients and operators (problem+json, the log), not on the page.
pub fn problem_page(problem: &crate::api::problem::Problem, request_id: &str) -> Response {
    let code = problem.kind.trim_start_matches("urn:nukisashi:problem:");
    let (title, todo) = match (problem.status, code) {
        (403, "cross-site-request") => ("この操作はできません", "ほかのサイトやページから送られた操作は受け付けていません。このサービスのページを開き直して、そこから操作してください。"),
        (401, _) => ("ログインが必要です", "ログインしてから、もう一度お試しください。"),
        (403, _) => ("この操作はできません", "このページを使う権限がありません。権限のあるアカウントでログインし直してください。"),
        (404, _) => ("ページが見つかりません", "アドレスを確かめてください。"),
        (405, _) => ("この方法では使えません", "サービスのページから操作してください。"),
        (408 | 413 | 414 | 431, _) => ("送信できませんでした", "送信する内容を小さくするか、通信の良いところでもう一度お試しください。"),
        (429 | 503, _) => ("ただいま混み合っています", "しばらくしてから、もう一度お試しください。"),
        (400..=499, _) => ("送信された内容を受け付けられませんでした", "入力を確かめて、もう一度お試しください。"),
        _ => ("エラーが発生しました", "しばらくしてから、もう一度お試しください。続くときは、下の番号を添えて自治体にお問い合わせください。"),
    };
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = format!(
        "<p>{}</p><p>{}</p><p class=\"note\"><small>理由コード {}、問い合わせ番号 {}</small></p>",
        escape(todo),
        if problem.status == 401 {
            format!("<a href=\"{}\">ログイン</a>", escape(&crate::signin::signin_link("/")))
        } else {
            "<a href=\"/\">はじめのページへ</a>".to_string()
        },
        escape(code),
        escape(request_id)
    );
    let mut response = page(status, title, &body);
    for (name, value) in &problem.headers {
        if matches!(name.as_str(), "retry-after" | "allow") {
            response.headers_mut().insert(name.clone(), value.clone());
        }
    }
    response
}
