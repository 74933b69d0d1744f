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
