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
    pub fn dispatch(&self, mut request: Request) -> Response {
        let path: Vec<String> = split(&request.path).map(|s| crate::url::decode(s, false)).collect();
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
            return (route.handler)(&request).unwrap_or_else(Error::into_response);
        }
        if path_matched {
            Error::new(405, "Method not allowed", format!("{} is not allowed on {}", request.method.as_str(), request.path))
                .into_response()
        } else {
            Error::not_found(format!("this module has no route {}", request.path)).into_response()
        }
    }
}

fn split(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
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
    }
}
