//! Matching a request to a handler by method and path pattern.

use crate::http::{Method, Request, Response};
use crate::{Error, Result};

/// A handler: a plain function from request to response.
pub type Handler = fn(&Request) -> Result<Response>;

struct Route {
    method: Method,
    segments: Vec<Segment>,
    handler: Handler,
}

enum Segment {
    Literal(String),
    Param(String),
    Rest(String),
}

/// Routes by method and path pattern. Patterns are `/`-separated: a literal segment, a
/// `:name` parameter that matches one segment, or a trailing `*name` that matches the rest.
/// The first matching route wins.
#[derive(Default)]
pub struct Router {
    routes: Vec<Route>,
}

impl Router {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn route(mut self, method: Method, pattern: &str, handler: Handler) -> Self {
        let segments = split(pattern)
            .map(|s| {
                if let Some(name) = s.strip_prefix(':') {
                    Segment::Param(name.to_string())
                } else if let Some(name) = s.strip_prefix('*') {
                    Segment::Rest(name.to_string())
                } else {
                    Segment::Literal(s.to_string())
                }
            })
            .collect();
        self.routes.push(Route { method, segments, handler });
        self
    }

    pub fn get(self, pattern: &str, handler: Handler) -> Self {
        self.route(Method::Get, pattern, handler)
    }
    pub fn post(self, pattern: &str, handler: Handler) -> Self {
        self.route(Method::Post, pattern, handler)
    }
    pub fn put(self, pattern: &str, handler: Handler) -> Self {
        self.route(Method::Put, pattern, handler)
    }
    pub fn patch(self, pattern: &str, handler: Handler) -> Self {
        self.route(Method::Patch, pattern, handler)
    }
    pub fn delete(self, pattern: &str, handler: Handler) -> Self {
        self.route(Method::Delete, pattern, handler)
    }

    /// Runs the matching handler; 404 if no pattern matches, 405 if only the method differs.
    ///
    /// The path is taken as the host hands it over, in one canonical form: each segment
    /// percent-decoded exactly once. A path that is not in that form (an empty segment,
    /// `.` or `..`, a broken escape) is refused with 400 rather than guessed at, so the
    /// route that runs is always the one the host checked the caller against.
    pub fn dispatch(&self, mut request: Request) -> Response {
        // A refusal is a Japanese page for a browser, problem+json for everyone else.
        let html = request.wants_html();
        let refuse = |e: Error| if html { e.into_page() } else { e.into_response() };
        let path = match path_segments(&request.path) {
            Ok(segments) => segments,
            Err(why) => return refuse(Error::bad_request(why)),
        };
        let mut path_matched = false;
        for route in &self.routes {
            let Some(params) = match_segments(&route.segments, &path) else { continue };
            let method_matches = route.method == request.method
                || (request.method == Method::Head && route.method == Method::Get);
            if !method_matches {
                path_matched = true;
                continue;
            }
            request.params = params;
            if let Err(e) = request.check_form_token() {
                return refuse(e);
            }
            return (route.handler)(&request).unwrap_or_else(refuse);
        }
        if path_matched {
            refuse(Error::new(405, "Method not allowed", format!("{} is not allowed on {}", request.method.as_str(), request.path)))
        } else {
            refuse(Error::not_found(format!("this module has no route {}", request.path)))
        }
    }
}

/// Segments of a route pattern (written by the module's author).
fn split(pattern: &str) -> impl Iterator<Item = &str> {
    pattern.split('/').filter(|s| !s.is_empty())
}

/// The decoded segments of a request path in canonical form (`/`, or `/a/b` with at most
/// one trailing `/`).
fn path_segments(path: &str) -> std::result::Result<Vec<String>, &'static str> {
    let path = path.strip_prefix('/').unwrap_or(path);
    let path = path.strip_suffix('/').unwrap_or(path);
    if path.is_empty() {
        return Ok(Vec::new());
    }
    path.split('/')
        .map(|raw| match crate::url::decode_segment(raw) {
            Some(s) if s.is_empty() => Err("the path has an empty segment"),
            Some(s) if s == "." || s == ".." => Err("the path has a `.` or `..` segment"),
            Some(s) if s.contains('/') => Err("the path has an encoded `/`"),
            Some(s) => Ok(s),
            None => Err("the path has a broken percent-escape or invalid UTF-8"),
        })
        .collect()
}

fn match_segments(
    pattern: &[Segment],
    path: &[String],
) -> Option<std::collections::HashMap<String, String>> {
    let mut params = std::collections::HashMap::new();
    for (i, segment) in pattern.iter().enumerate() {
        match segment {
            Segment::Rest(name) => {
                params.insert(name.clone(), path.get(i..).unwrap_or_default().join("/"));
                return Some(params);
            }
            Segment::Literal(lit) => {
                if path.get(i)? != lit {
                    return None;
                }
            }
            Segment::Param(name) => {
                params.insert(name.clone(), path.get(i)?.clone());
            }
        }
    }
    (pattern.len() == path.len()).then_some(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(req: &Request) -> Result<Response> {
        Ok(Response::text(format!("id={}", req.param("id").unwrap_or("-"))))
    }
    fn rest(req: &Request) -> Result<Response> {
        Ok(Response::text(req.param("rest").unwrap_or("").to_string()))
    }
    fn body(r: Response) -> (u16, String) {
        (r.status, String::from_utf8(r.body).unwrap())
    }
    fn req(m: Method, p: &str) -> Request {
        Request::new(m, p, vec![], vec![])
    }

    #[test]
    fn matches_params_rest_and_methods() {
        let router = Router::new().get("/entries/:id", ok).get("/files/*rest", rest);
        assert_eq!(body(router.dispatch(req(Method::Get, "/entries/%E3%81%82"))), (200, "id=あ".into()));
        assert_eq!(body(router.dispatch(req(Method::Get, "/files/a/b"))), (200, "a/b".into()));
        assert_eq!(router.dispatch(req(Method::Post, "/entries/1")).status, 405);
        assert_eq!(router.dispatch(req(Method::Get, "/entries")).status, 404);
        assert_eq!(router.dispatch(req(Method::Get, "/entries/1/x")).status, 404);
        assert_eq!(router.dispatch(req(Method::Head, "/entries/1")).status, 200);
        assert_eq!(body(router.dispatch(req(Method::Get, "/entries/1/"))), (200, "id=1".into()));
    }

    #[test]
    fn paths_not_in_canonical_form_are_refused_not_reinterpreted() {
        let router = Router::new().get("/", ok).get("/staff", ok).get("/entries/:id", ok);
        for path in ["//staff", "/x/../staff", "/./staff", "/%2e%2e/staff", "/entries/a%2Fb", "/entries/%zz", "/entries/%C0%AE"] {
            assert_eq!(router.dispatch(req(Method::Get, path)).status, 400, "{path}");
        }
    }
}
