use crate::bindings::nukisashi::platform::types::Error as PlatformError;
use crate::http::Response;

/// A failed request, answered as an RFC 7807 `application/problem+json` response.
#[derive(Debug, Clone, PartialEq)]
pub struct Error {
    pub status: u16,
    pub title: String,
    pub detail: String,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(status: u16, title: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { status, title: title.into(), detail: detail.into() }
    }
    /// 400: the request was malformed; `detail` says what to fix.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(400, "Bad request", detail)
    }
    /// 403: the caller may not do this.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", detail)
    }
    /// 404: no such resource.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(404, "Not found", detail)
    }
    /// 409: the request conflicts with the current state.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(409, "Conflict", detail)
    }
    /// 422: well-formed but breaks a business rule.
    pub fn unprocessable(detail: impl Into<String>) -> Self {
        Self::new(422, "Unprocessable request", detail)
    }
    /// 500: a fault inside the module.
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(500, "Module error", detail)
    }

    pub fn into_response(self) -> Response {
        let body = serde_json::json!({
            "type": format!("about:blank#module-{}", self.status),
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        });
        Response::new(self.status)
            .header("content-type", "application/problem+json")
            .body(body.to_string().into_bytes())
    }
}

impl Error {
    /// The refusal as a page for a person: what it means in Japanese, the module's own
    /// sentence (business modules write theirs in Japanese), and a way on.
    pub fn into_page(self) -> Response {
        let title = match self.status {
            401 => "ログインが必要です",
            403 => "この操作はできません",
            404 => "ページが見つかりません",
            409 => "この操作は、いまの状態ではできません",
            413 => "送信された内容が大きすぎます",
            400 | 422 => "入力内容を確認してください",
            s if s >= 500 => "エラーが発生しました",
            _ => "受け付けられませんでした",
        };
        let html = format!(
            "<!doctype html>\n<html lang=\"ja\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{title}</title></head><body style=\"font-family:system-ui,sans-serif;max-width:40rem;margin:auto;padding:1rem;line-height:1.6\"><main>\
             <h1>{title}</h1><p>{}</p><p>ブラウザーの「戻る」で前のページに戻り、やり直してください。</p><p><a href=\"/\">はじめのページへ</a></p></main></body></html>",
            crate::escape_html(&self.detail)
        );
        Response::new(self.status).header("content-type", "text/html; charset=utf-8").body(html.into_bytes())
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.title, self.status, self.detail)
    }
}

impl std::error::Error for Error {}

impl From<PlatformError> for Error {
    fn from(e: PlatformError) -> Self {
        match e {
            PlatformError::NotGranted(cap) => Error::new(
                403,
                "Capability not granted",
                format!("this municipality has not granted the `{cap}` capability to the module"),
            ),
            PlatformError::TooLarge(what) => Error::new(413, "Too large", what),
            PlatformError::Invalid(what) => Error::bad_request(what),
            PlatformError::Unavailable(what) => Error::new(503, "Platform unavailable", what),
        }
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::bad_request(format!("invalid JSON: {e}"))
    }
}

/// A handler's refusal as the platform's error, for what a module answers through an
/// interface it provides: 400/422 `invalid`, 403 `not-granted`, 413 `too-large`, anything
/// else `unavailable`.
pub(crate) fn to_platform(e: Error) -> PlatformError {
    match e.status {
        400 | 422 => PlatformError::Invalid(e.detail),
        403 => PlatformError::NotGranted(e.detail),
        413 => PlatformError::TooLarge(e.detail),
        _ => PlatformError::Unavailable(e.detail),
    }
}
