//! The request and response types handlers see.

use crate::url;
use crate::{Error, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::HashMap;

/// HTTP method of a request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
    Other(String),
}

impl Method {
    pub fn as_str(&self) -> &str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Other(m) => m,
        }
    }
}

/// The form field that carries a signed-in browser's form token (see
/// [`Request::form_token_field`]).
pub const FORM_TOKEN_FIELD: &str = "nukisashi_form_token";
/// The request header in which the host gives the module the session's form token.
const FORM_TOKEN_HEADER: &str = "x-nukisashi-form-token";

/// An incoming request, with its body read in full (up to the SDK's body limit).
///
/// `path` is the path inside the module: the host strips `/{lg-code}/{module}` and passes
/// the stripped prefix in the `x-nukisashi-base-path` header (see [`Request::base_path`]),
/// so the same module answers the same routes on any wasi:http host.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    pub path: String,
    pub query: String,
    /// Header names are lower-case; repeated headers keep every value, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
    pub(crate) params: HashMap<String, String>,
}

impl Request {
    pub(crate) fn new(
        method: Method,
        path_with_query: &str,
        headers: Vec<(String, Vec<u8>)>,
        body: Vec<u8>,
    ) -> Self {
        let (path, query) = path_with_query.split_once('?').unwrap_or((path_with_query, ""));
        let path = if path.is_empty() { "/".to_string() } else { path.to_string() };
        Self { method, path, query: query.to_string(), headers, body, params: HashMap::new() }
    }

    /// The value of a route parameter, e.g. `id` for the route `/entries/:id`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    /// The first value of query parameter `name`, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        url::parse_pairs(&self.query).into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// The first value of header `name` (case-insensitive) as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// The URL prefix under which the host mounted this module, e.g. `/131016/guestbook`;
    /// empty when the module runs on a plain wasi:http host. Use it to build links.
    pub fn base_path(&self) -> &str {
        self.header("x-nukisashi-base-path").unwrap_or("")
    }

    /// Whether the client asked for a page (a browser's `Accept: text/html`) rather than data:
    /// answer it HTML, and JSON to everyone else.
    pub fn wants_html(&self) -> bool {
        self.header("accept").is_some_and(|a| a.contains("text/html"))
    }

    /// The hidden field to put in every `<form method="post">` a page renders: it carries
    /// the form token of the browser's sign-in session on this module's origin, and the
    /// router refuses a form posted with that session unless it comes back (so a page
    /// elsewhere cannot make a signed-in browser post a form, on top of the host's own
    /// same-origin check). Empty when the page was asked without a session: such a form
    /// posted after signing in is given the token by the host's sign-in.
    pub fn form_token_field(&self) -> String {
        match self.header(FORM_TOKEN_HEADER) {
            Some(token) => format!("<input type=\"hidden\" name=\"{FORM_TOKEN_FIELD}\" value=\"{}\">", escape_html(token)),
            None => String::new(),
        }
    }

    /// The form-token check the router makes before any handler runs: a state-changing
    /// request with a browser session (the host sent its token) must carry the token in
    /// its form, unless it is JSON (which needs a CORS preflight, and the host never grants
    /// one) or has no body at all. Any other body, a form's or not, is refused without it.
    pub(crate) fn check_form_token(&self) -> Result<()> {
        let Some(expected) = self.header(FORM_TOKEN_HEADER) else { return Ok(()) };
        if matches!(self.method, Method::Get | Method::Head | Method::Options) {
            return Ok(());
        }
        let content_type = self.header("content-type").unwrap_or("").to_ascii_lowercase();
        let media_type = content_type.split(';').next().unwrap_or("").trim();
        if media_type == "application/json" || (media_type.starts_with("application/") && media_type.ends_with("+json")) || (media_type.is_empty() && self.body.is_empty()) {
            return Ok(());
        }
        let sent = if media_type == "multipart/form-data" {
            self.multipart()?.into_iter().flatten().find(|p| p.name == FORM_TOKEN_FIELD && p.filename.is_none()).map(|p| p.data)
        } else if media_type == "application/x-www-form-urlencoded" {
            url::parse_pairs(self.text()?).into_iter().find(|(k, _)| k == FORM_TOKEN_FIELD).map(|(_, v)| v.into_bytes())
        } else {
            None
        };
        match sent {
            Some(sent) if same_bytes(&sent, expected.as_bytes()) => Ok(()),
            _ => Err(Error::forbidden(
                "このフォームは、このサービスのページから送られたものと確かめられませんでした。ページを開き直して、もう一度送信してください。",
            )),
        }
    }

    /// The body as UTF-8 text.
    pub fn text(&self) -> Result<&str> {
        std::str::from_utf8(&self.body).map_err(|_| Error::bad_request("the body is not valid UTF-8"))
    }

    /// The body parsed as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| Error::bad_request(format!("invalid JSON body: {e}")))
    }

    /// The body parsed as `application/x-www-form-urlencoded` pairs (a multipart form's
    /// text fields), without the form token.
    pub fn form(&self) -> Result<Vec<(String, String)>> {
        if let Some(parts) = self.multipart()? {
            return Ok(parts
                .into_iter()
                .filter(|p| p.filename.is_none() && p.name != FORM_TOKEN_FIELD)
                .map(|p| (p.name, String::from_utf8_lossy(&p.data).into_owned()))
                .collect());
        }
        Ok(url::parse_pairs(self.text()?).into_iter().filter(|(k, _)| k != FORM_TOKEN_FIELD).collect())
    }

    /// The parts of a `multipart/form-data` body (a form with a file input); `None` for
    /// any other body.
    pub fn multipart(&self) -> Result<Option<Vec<crate::multipart::Part>>> {
        let Some(boundary) = self.header("content-type").and_then(crate::multipart::boundary) else { return Ok(None) };
        crate::multipart::parse(&self.body, &boundary).map(Some).map_err(Error::bad_request)
    }

    /// The body as one object, from a JSON object or a form post (whose values are
    /// strings), so one handler serves both an HTML form and an API client. A file a form
    /// sends is `{"name", "content_type", "data"}` (base64), exactly as an API client sends
    /// it, so the same checks apply; a file input left empty is absent.
    pub fn fields(&self) -> Result<serde_json::Map<String, serde_json::Value>> {
        use base64::Engine as _;
        if let Some(parts) = self.multipart()? {
            let mut fields = serde_json::Map::new();
            for part in parts.into_iter().filter(|p| p.name != FORM_TOKEN_FIELD) {
                let value = match &part.filename {
                    None => serde_json::Value::String(String::from_utf8_lossy(&part.data).into_owned()),
                    Some(name) if name.is_empty() && part.data.is_empty() => continue,
                    Some(name) => serde_json::json!({
                        "name": name,
                        "content_type": part.content_type.as_deref().unwrap_or("application/octet-stream"),
                        "data": base64::engine::general_purpose::STANDARD.encode(&part.data),
                    }),
                };
                fields.entry(part.name).or_insert(value);
            }
            Ok(fields)
        } else if self.is_form() {
            Ok(self.form()?.into_iter().map(|(k, v)| (k, serde_json::Value::String(v))).collect())
        } else {
            match self.json::<serde_json::Value>()? {
                serde_json::Value::Object(m) => Ok(m),
                _ => Err(Error::bad_request("the body must be a JSON object")),
            }
        }
    }

    /// True if the body is a form post, urlencoded or multipart (as opposed to JSON): a
    /// browser's, which wants a page or a redirect back, not JSON.
    pub fn is_form(&self) -> bool {
        self.header("content-type").is_some_and(|c| {
            let c = c.to_ascii_lowercase();
            c.starts_with("application/x-www-form-urlencoded") || c.starts_with("multipart/form-data")
        })
    }
}

/// A response a handler returns.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16) -> Self {
        Self { status, headers: Vec::new(), body: Vec::new() }
    }

    /// 200 with a JSON body.
    pub fn json<T: Serialize>(value: &T) -> Self {
        let body = serde_json::to_vec(value).expect("serialising to JSON cannot fail for plain data");
        Self::new(200).header("content-type", "application/json").body(body)
    }

    /// 200 with an HTML page (UTF-8).
    pub fn html(page: impl Into<String>) -> Self {
        Self::new(200).header("content-type", "text/html; charset=utf-8").body(page.into().into_bytes())
    }

    /// 200 with plain text (UTF-8).
    pub fn text(text: impl Into<String>) -> Self {
        Self::new(200).header("content-type", "text/plain; charset=utf-8").body(text.into().into_bytes())
    }

    /// 303 See Other to `location` (use after a form post).
    pub fn redirect(location: impl Into<String>) -> Self {
        Self::new(303).header("location", location.into())
    }

    /// The answer to a POST that one handler serves to browsers and API clients alike
    /// (redirect-after-post): a form gets 303 See Other to `page` (a path of this module;
    /// the mount point is added), so reloading the page it lands on sends nothing twice;
    /// an API client gets `value` as JSON with `status`.
    pub fn after_post<T: Serialize>(req: &Request, page: &str, status: u16, value: &T) -> Self {
        if req.is_form() {
            Self::redirect(format!("{}{page}", req.base_path()))
        } else {
            Self::json(value).with_status(status)
        }
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_ascii_lowercase(), value.into().into_bytes()));
        self
    }

    pub fn body(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }

    /// The body as text (for tests and logs).
    pub fn body_text(&self) -> Result<&str> {
        std::str::from_utf8(&self.body).map_err(|_| Error::internal("the response body is not UTF-8"))
    }

    /// The body parsed as JSON into `T` (for tests).
    pub fn body_json<T: DeserializeOwned>(&self) -> Result<T> {
        Ok(serde_json::from_slice(&self.body)?)
    }

    /// The first value of header `name` (case-insensitive) as text.
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).and_then(|(_, v)| std::str::from_utf8(v).ok())
    }
}

/// Equal, in time that does not depend on where they differ.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Escapes text for safe inclusion in HTML element content and attribute values.
pub fn escape_html(text: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_path_and_query() {
        let r = Request::new(Method::Get, "/entries?limit=5&q=%E3%81%82", vec![], vec![]);
        assert_eq!(r.path, "/entries");
        assert_eq!(r.query_param("q").as_deref(), Some("あ"));
        assert_eq!(r.query_param("missing"), None);
        assert_eq!(Request::new(Method::Get, "", vec![], vec![]).path, "/");
    }

    fn with_token(content_type: &str, body: &str) -> Request {
        let headers = vec![("x-nukisashi-form-token".into(), b"tok-1".to_vec()), ("content-type".into(), content_type.as_bytes().to_vec())];
        Request::new(Method::Post, "/entries", headers, body.as_bytes().to_vec())
    }

    #[test]
    fn a_form_posted_with_a_session_needs_its_token() {
        assert!(with_token("application/x-www-form-urlencoded", "name=a&nukisashi_form_token=tok-1").check_form_token().is_ok());
        assert_eq!(with_token("application/x-www-form-urlencoded", "name=a&nukisashi_form_token=tok-2").check_form_token().unwrap_err().status, 403);
        assert_eq!(with_token("application/x-www-form-urlencoded", "name=a").check_form_token().unwrap_err().status, 403);
        assert_eq!(with_token("text/plain", "nukisashi_form_token=tok-1").check_form_token().unwrap_err().status, 403);
        assert_eq!(with_token("application/xml", "{}").check_form_token().unwrap_err().status, 403);
        assert_eq!(with_token("", "{}").check_form_token().unwrap_err().status, 403, "a body of no declared type");
        assert!(with_token("", "").check_form_token().is_ok(), "no body at all");
        assert!(with_token("application/merge-patch+json", "{}").check_form_token().is_ok());
        let multipart = "--b\r\nContent-Disposition: form-data; name=\"nukisashi_form_token\"\r\n\r\ntok-1\r\n--b--\r\n";
        assert!(with_token("multipart/form-data; boundary=b", multipart).check_form_token().is_ok());
        // JSON cannot come from a cross-site form; nor is there anything to check without a session.
        assert!(with_token("application/json", "{}").check_form_token().is_ok());
        let anonymous = Request::new(Method::Post, "/entries", vec![("content-type".into(), b"application/x-www-form-urlencoded".to_vec())], b"name=a".to_vec());
        assert!(anonymous.check_form_token().is_ok());
        // Handlers never see the token among the fields.
        let r = with_token("application/x-www-form-urlencoded", "name=a&nukisashi_form_token=tok-1");
        assert_eq!(r.form().unwrap(), vec![("name".to_string(), "a".to_string())]);
        assert!(!r.fields().unwrap().contains_key(FORM_TOKEN_FIELD));
        assert!(r.form_token_field().contains("value=\"tok-1\""));
    }

    #[test]
    fn escapes_html() {
        assert_eq!(escape_html("<a href=\"x\">&'</a>"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;");
    }
}
