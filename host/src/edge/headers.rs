//! What crosses the edge in headers: the request a module sees carries no platform
//! credentials and nothing a client could use to impersonate the host; the response a
//! browser sees carries no grant a module may not make, and safe defaults the module did
//! not tighten itself.

use super::Mount;
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Headers that describe one hop, not the message; never passed through.
const HOP_BY_HOP: &[&str] = &["connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection", "proxy-authorization", "proxy-authenticate"];

/// Cookie names the platform keeps for itself (its sign-in session); a module can neither
/// read nor set them.
pub const RESERVED_COOKIE_PREFIX: &str = "nukisashi";

/// Response headers a module may not send: they reach beyond its own origin (service
/// worker scope, wiping other state, transport policy for the whole name, cross-origin
/// read grants) or speak for the host.
const MODULE_MAY_NOT_SEND: &[&str] = &[
    "service-worker-allowed",
    "clear-site-data",
    "strict-transport-security",
    "alt-svc",
    "timing-allow-origin",
    // A credential prompt, and a way back into `document.domain`.
    "www-authenticate",
    "origin-agent-cluster",
    "set-cookie2",
    "x-request-id",
];

/// Request headers a client may send that would lie to a module about where the request
/// came from or went to.
const CLIENT_MAY_NOT_CLAIM: &[&str] = &["forwarded", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "x-real-ip"];

/// Referrer policies at least as strict as the default the host adds.
const STRICT_REFERRER_POLICIES: &[&str] = &["no-referrer", "same-origin", "strict-origin", "strict-origin-when-cross-origin"];

/// Cleans a request's headers for the module: no bearer token (the module gets verified
/// claims), no hop-by-hop headers, nothing that claims to come from the host, and none of
/// the platform's cookies (on the path form, no cookies at all: they belong to the
/// platform's origin).
pub fn scrub_request(headers: &mut HeaderMap, mount: &Mount) {
    headers.remove(header::AUTHORIZATION);
    remove_all(headers, HOP_BY_HOP);
    remove_all(headers, CLIENT_MAY_NOT_CLAIM);
    remove_host_headers(headers);
    match mount {
        Mount::Path { .. } => {
            headers.remove(header::COOKIE);
        }
        Mount::Origin => {
            let kept: Vec<String> = headers
                .get_all(header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(';'))
                .map(str::trim)
                .filter(|pair| !pair.is_empty() && !reserved_cookie(pair.split('=').next().unwrap_or("")))
                .map(str::to_string)
                .collect();
            headers.remove(header::COOKIE);
            if let Ok(value) = HeaderValue::from_str(&kept.join("; ")) {
                if !kept.is_empty() {
                    headers.insert(header::COOKIE, value);
                }
            }
        }
    }
}

/// Filters a module's response headers and adds the platform's defaults. Returns what was
/// dropped, for the log.
pub fn filter_response(headers: &mut HeaderMap, mount: &Mount) -> Vec<String> {
    let mut dropped = Vec::new();
    // The host frames the body itself (JavaScript runtimes send a length as a matter of
    // course): not worth a warning.
    headers.remove(header::CONTENT_LENGTH);
    let names: Vec<HeaderName> = headers.keys().cloned().collect();
    for name in names {
        let n = name.as_str();
        let any_value = |f: &dyn Fn(&str) -> bool| headers.get_all(&name).iter().any(|v| f(&v.to_str().unwrap_or("").to_ascii_lowercase()));
        let path_form = matches!(mount, Mount::Path { .. });
        let refused = HOP_BY_HOP.contains(&n)
            || MODULE_MAY_NOT_SEND.contains(&n)
            || n.starts_with("access-control-")
            || n.starts_with("x-nukisashi-")
            || (n == "cross-origin-resource-policy" && any_value(&|v| v.contains("cross-origin")))
            || (n == "link" && any_value(&|v| v.contains("serviceworker")))
            // On the platform's origin a module may not send the browser anywhere else.
            || (path_form && n == "refresh")
            || (path_form && n == "location" && any_value(&|v| !v.starts_with('/') || v.starts_with("//") || v.starts_with("/\\")));
        if refused {
            headers.remove(&name);
            dropped.push(n.to_string());
        }
    }
    let cookies: Vec<HeaderValue> = headers.get_all(header::SET_COOKIE).iter().cloned().collect();
    headers.remove(header::SET_COOKIE);
    for cookie in cookies {
        if cookie_allowed(&cookie, mount) {
            headers.append(header::SET_COOKIE, cookie);
        } else {
            dropped.push(format!("set-cookie {}", cookie.to_str().unwrap_or("").split('=').next().unwrap_or("")));
        }
    }
    add_defaults(headers, mount);
    dropped
}

/// A module may set host-only cookies on its own origin (no `Domain`, which would share
/// them with its parent domain), and none of the platform's names; on the path form it
/// may set none (that origin is the platform's).
fn cookie_allowed(cookie: &HeaderValue, mount: &Mount) -> bool {
    if matches!(mount, Mount::Path { .. }) {
        return false;
    }
    let Ok(text) = cookie.to_str() else { return false };
    let mut parts = text.split(';');
    let name = parts.next().and_then(|pair| pair.split_once('=')).map(|(n, _)| n.trim()).unwrap_or("");
    !name.is_empty() && !reserved_cookie(name) && !parts.any(|attribute| attribute.trim().to_ascii_lowercase().starts_with("domain"))
}

fn reserved_cookie(name: &str) -> bool {
    let name = name.trim().to_ascii_lowercase();
    let name = name.strip_prefix("__host-").or_else(|| name.strip_prefix("__secure-")).unwrap_or(&name);
    name.starts_with(RESERVED_COOKIE_PREFIX)
}

fn add_defaults(headers: &mut HeaderMap, mount: &Mount) {
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert("origin-agent-cluster", HeaderValue::from_static("?1"));
    let strict_referrer = headers
        .get(header::REFERRER_POLICY)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').next_back().is_some_and(|p| STRICT_REFERRER_POLICIES.contains(&p.trim().to_ascii_lowercase().as_str())));
    if !strict_referrer {
        headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("strict-origin-when-cross-origin"));
    }
    let deny = headers.get(header::X_FRAME_OPTIONS).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"deny"));
    if !deny {
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("SAMEORIGIN"));
    }
    // A second policy is enforced together with the module's own: it can only tighten.
    headers.append(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("frame-ancestors 'self'"));
    if matches!(mount, Mount::Path { .. }) {
        // On the platform's origin a module's page runs in an opaque origin of its own: no
        // access to the console's storage, cookies or service workers.
        headers.append(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("sandbox"));
    }
}

fn remove_all(headers: &mut HeaderMap, names: &[&str]) {
    for name in names {
        headers.remove(*name);
    }
}

fn remove_host_headers(headers: &mut HeaderMap) {
    let host_headers: Vec<HeaderName> = headers.keys().filter(|n| n.as_str().starts_with("x-nukisashi-")).cloned().collect();
    for name in host_headers {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn path_form() -> Mount {
        Mount::Path { base: "/131016/guestbook".into() }
    }

    #[test]
    fn grants_beyond_the_module_are_dropped_and_defaults_added() {
        let mut h = headers(&[
            ("service-worker-allowed", "/"),
            ("clear-site-data", "\"*\""),
            ("access-control-allow-origin", "*"),
            ("access-control-allow-credentials", "true"),
            ("strict-transport-security", "max-age=1; includeSubDomains"),
            ("x-nukisashi-version", "forged@9"),
            ("cross-origin-resource-policy", "cross-origin"),
            ("set-cookie", "theirs=1; Domain=localhost; Path=/"),
            ("set-cookie", "nukisashi_session=forged; Path=/"),
            ("set-cookie", "__Host-nukisashi-session=forged; Path=/; Secure"),
            ("set-cookie", "mine=1; Path=/; HttpOnly"),
            ("content-type", "text/html"),
            ("referrer-policy", "unsafe-url"),
        ]);
        let dropped = filter_response(&mut h, &Mount::Origin);
        assert_eq!(dropped.len(), 10, "{dropped:?}");
        assert_eq!(h.get_all("set-cookie").iter().collect::<Vec<_>>(), vec!["mine=1; Path=/; HttpOnly"]);
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["referrer-policy"], "strict-origin-when-cross-origin");
        assert_eq!(h["x-frame-options"], "SAMEORIGIN");
        assert_eq!(h.get_all("content-security-policy").iter().collect::<Vec<_>>(), vec!["frame-ancestors 'self'"]);
        assert_eq!(h["content-type"], "text/html");
    }

    #[test]
    fn stricter_module_choices_are_kept() {
        let mut h = headers(&[("referrer-policy", "no-referrer"), ("x-frame-options", "DENY"), ("content-security-policy", "default-src 'none'")]);
        filter_response(&mut h, &Mount::Origin);
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h.get_all("content-security-policy").iter().count(), 2, "the module's policy and the host's both apply");
    }

    #[test]
    fn the_path_form_is_sandboxed_and_sets_no_cookies_nor_leads_elsewhere() {
        let mut h = headers(&[("set-cookie", "mine=1; Path=/"), ("location", "https://evil.example/"), ("refresh", "0; url=https://evil.example/")]);
        filter_response(&mut h, &path_form());
        assert!(h.get("set-cookie").is_none() && h.get("location").is_none() && h.get("refresh").is_none());
        assert!(h.get_all("content-security-policy").iter().any(|v| v == "sandbox"));
        for inside in ["/131016/guestbook/entries/1"] {
            let mut h = headers(&[("location", inside)]);
            filter_response(&mut h, &path_form());
            assert_eq!(h["location"], inside);
        }
        for elsewhere in ["//evil.example/", "/\\evil.example/"] {
            let mut h = headers(&[("location", elsewhere)]);
            filter_response(&mut h, &path_form());
            assert!(h.get("location").is_none(), "{elsewhere}");
        }
    }

    #[test]
    fn prompts_and_agent_cluster_opt_outs_are_dropped() {
        let mut h = headers(&[("www-authenticate", "Basic realm=x"), ("origin-agent-cluster", "?0"), ("link", "</sw.js>; rel=\"serviceworker\""), ("link", "</style.css>; rel=preload")]);
        filter_response(&mut h, &Mount::Origin);
        assert!(h.get("www-authenticate").is_none());
        assert_eq!(h["origin-agent-cluster"], "?1");
        assert!(h.get("link").is_none(), "a header with a service worker link goes whole");
    }

    #[test]
    fn requests_lose_credentials_and_host_headers() {
        let mut h = headers(&[
            ("authorization", "Bearer secret"),
            ("x-nukisashi-base-path", "/forged"),
            ("cookie", "nukisashi_session=s; mine=1"),
            ("cookie", "__Host-nukisashi-x=2; other=3"),
            ("connection", "close"),
            ("x-forwarded-host", "evil.example"),
            ("forwarded", "host=evil.example"),
        ]);
        scrub_request(&mut h, &Mount::Origin);
        assert!(h.get("authorization").is_none() && h.get("x-nukisashi-base-path").is_none() && h.get("connection").is_none());
        assert!(h.get("x-forwarded-host").is_none() && h.get("forwarded").is_none());
        assert_eq!(h["cookie"], "mine=1; other=3");
        let mut h = headers(&[("cookie", "mine=1")]);
        scrub_request(&mut h, &path_form());
        assert!(h.get("cookie").is_none());
    }
}
