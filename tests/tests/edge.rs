//! The edge, tried from outside as an attacker would: path tricks against every protected
//! route of the business modules and the guestbook, a property test that the path a module
//! receives is the path the policy checked, module origins that reach only their module,
//! and response headers a module may not send. Requests are sent byte for byte
//! (`raw_request`): an HTTP client library would clean `.`, `..` and some escapes up
//! before they ever reached the host.

use nukisashi_e2e::{Backend, Host, HostSpec, RawResponse, business_plugin, raw_request, staged_plugin};
use serde_json::Value;
use std::path::Path;

const CHIYODA: &str = "131016";
const SAPPORO: &str = "011002";

/// The guestbook as a vendor would publish it: the page public, the entries for residents.
const GUESTBOOK: &str = r#"id = "guestbook"
version = "1.0.0"
vendor = "local"
category = "電子申請"
name = { ja = "ゲストブック", en = "Guestbook" }
description = "記帳"
capabilities = ["kv"]
wit_major = 1
routes = [{ path = "/", auth = "public" }, { path = "/entries", auth = "resident" }]
"#;

/// The fault fixture with its echo route split by auth level.
const FIXTURE: &str = r#"id = "fault-fixture"
version = "1.0.0"
vendor = "local"
category = "test"
name = { ja = "試験", en = "Fixture" }
description = "echo and whoami"
capabilities = []
wit_major = 1
routes = [{ path = "/", auth = "public" }, { path = "/echo/staff", auth = "staff" }]
"#;

const HOSTILE: &str = r#"id = "hostile"
version = "1.0.0"
vendor = "local"
category = "test"
name = { ja = "攻撃", en = "Hostile" }
description = "a vendor page that attacks"
capabilities = []
wit_major = 1
routes = [{ path = "/", auth = "public" }]
"#;

async fn start(dir: &Path) -> Host {
    let plugins = vec![
        business_plugin(dir, "furusato-tax"),
        business_plugin(dir, "e-application"),
        business_plugin(dir, "child-allowance"),
        staged_plugin(dir, "guestbook", "guestbook", GUESTBOOK),
        staged_plugin(dir, "fault-fixture", "fault-fixture", FIXTURE),
        staged_plugin(dir, "hostile-fixture", "hostile", HOSTILE),
    ];
    let mut spec = HostSpec::new(Backend::Sqlite, &dir.join("host"), &[]).await.unwrap();
    spec.plugins = plugins;
    spec.start().unwrap()
}

/// Every signed-in route of the business modules and the guestbook: (method, module, path,
/// level). `level` is what the manifest declares for it.
const PROTECTED: &[(&str, &str, &str, &str)] = &[
    ("GET", "furusato-tax", "/staff", "staff"),
    ("GET", "furusato-tax", "/staff/onestop", "staff"),
    ("GET", "furusato-tax", "/staff/donations", "staff"),
    ("GET", "furusato-tax", "/staff/gifts", "staff"),
    ("GET", "furusato-tax", "/staff/report", "staff"),
    ("POST", "furusato-tax", "/staff/gifts", "staff"),
    ("POST", "furusato-tax", "/staff/costs", "staff"),
    ("POST", "furusato-tax", "/staff/onestop/1/status", "staff"),
    ("GET", "furusato-tax", "/donations/mine", "resident"),
    ("GET", "furusato-tax", "/onestop/mine", "resident"),
    ("GET", "furusato-tax", "/simulate/mine", "resident"),
    ("POST", "furusato-tax", "/donations", "resident"),
    ("POST", "furusato-tax", "/onestop", "resident"),
    ("GET", "e-application", "/staff", "staff"),
    ("GET", "e-application", "/staff/applications", "staff"),
    ("POST", "e-application", "/staff/forms", "staff"),
    ("POST", "e-application", "/staff/applications/A-1/status", "staff"),
    ("GET", "e-application", "/applications/mine", "resident"),
    ("GET", "child-allowance", "/staff", "staff"),
    ("GET", "child-allowance", "/staff/claims", "staff"),
    ("GET", "child-allowance", "/staff/payment-run", "staff"),
    ("GET", "child-allowance", "/staff/refused-handoffs", "staff"),
    ("POST", "child-allowance", "/staff/claims", "staff"),
    ("GET", "guestbook", "/entries", "resident"),
    ("POST", "guestbook", "/entries", "resident"),
];

/// Ways to write `path` that a lenient router might take for it. Each is either refused at
/// the edge or routed as exactly what it canonically is.
fn tricks(path: &str) -> Vec<String> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let first = segments[0];
    let rest: String = segments[1..].iter().map(|s| format!("/{s}")).collect();
    let mut out = vec![
        format!("/{path}"),
        format!("{path}//"),
        format!("/./{}", &path[1..]),
        format!("/x/..{path}"),
        format!("/%2e%2e{path}"),
        format!("/%2E{path}"),
        format!("/.%2e{path}"),
        format!("{path}/."),
        format!("{path}/%2e%2e"),
        format!("/%2f{}", &path[1..]),
        format!("/%2F{}", &path[1..]),
        format!("/%5c{}", &path[1..]),
        format!("{path}%00"),
        format!("{path}%0d%0a"),
        format!("/%252e%252e{path}"),
        format!("/%25%32%65%25%32%65{path}"),
        format!("/%c0%ae%c0%ae{path}"),
        format!("{path}/{}", "a".repeat(5000)),
        // Canonical spellings of the same path: routed, so they must need the token.
        format!("{path}/"),
        format!("/%{:02x}{}{rest}", first.as_bytes()[0], &first[1..]),
        // Other paths altogether: the module's public route answers (404), never this one.
        path.to_uppercase(),
        format!("{path};x"),
    ];
    if segments.len() > 1 {
        out.push(format!("/{first}//{}", &rest[1..]));
        out.push(format!("/{first}%2f{}", &rest[1..]));
        out.push(format!("/{first}%2F{}", &rest[1..]));
        out.push(format!("/{first}%5c{}", &rest[1..]));
        out.push(format!("/{first}/./{}", &rest[1..]));
        out.push(format!("/{first}/x/..{rest}"));
    }
    out
}

/// The path as it is after the one decoding the edge does, if it is canonical: what the
/// route's auth level is decided on.
fn same_route(trick: &str, path: &str) -> bool {
    let decoded = trick.replace("%73", "s").replace("%64", "d").replace("%65", "e").replace("%61", "a").replace("%67", "g").replace("%6f", "o");
    decoded.strip_suffix('/').unwrap_or(&decoded) == path
}

async fn send(host: &Host, method: &str, module: &str, target: &str, on_origin: bool, token: Option<&str>) -> RawResponse {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("content-type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("authorization", a.as_str()));
    }
    let body: &[u8] = if method == "POST" { b"{}" } else { b"" };
    if on_origin {
        let origin_host = format!("{module}--{CHIYODA}.localhost:{}", host.port());
        raw_request(host.port(), method, target, &origin_host, &headers, body).await
    } else {
        let host_header = format!("127.0.0.1:{}", host.port());
        raw_request(host.port(), method, &format!("/{CHIYODA}/{module}{target}"), &host_header, &headers, body).await
    }
}

#[tokio::test]
async fn path_tricks_never_reach_a_protected_route_without_its_token() {
    let dir = tempfile::tempdir().unwrap();
    let host = start(dir.path()).await;
    let resident = host.token("resident", None);
    let other_staff = host.token("staff", Some(SAPPORO));
    let staff = host.token("staff", Some(CHIYODA));
    let mut tried = 0;
    for &(method, module, path, level) in PROTECTED {
        for on_origin in [false, true] {
            let mut callers = vec![("no token", None)];
            if level == "staff" {
                callers.push(("a resident", Some(resident.as_str())));
                callers.push(("another municipality's staff", Some(other_staff.as_str())));
            }
            for trick in tricks(path) {
                for (who, token) in &callers {
                    let r = send(&host, method, module, &trick, on_origin, *token).await;
                    tried += 1;
                    let case = format!("{method} {module} {trick} (own origin: {on_origin}) as {who}: {} {}", r.status, r.body);
                    assert!(matches!(r.status, 400 | 401 | 403 | 404 | 405 | 414), "{case}");
                    if same_route(&trick, path) {
                        assert!(matches!(r.status, 401 | 403), "a canonical spelling is the same route and needs its token: {case}");
                    }
                    if matches!(r.status, 400 | 414) {
                        assert_eq!(r.header("content-type"), Some("application/problem+json"), "{case}");
                        assert_eq!(r.json()["type"], "urn:nukisashi:problem:non-canonical-path", "{case}");
                        assert!(!r.json()["detail"].as_str().unwrap_or("").is_empty(), "the refusal says what was wrong: {case}");
                    }
                }
            }
            // With the right token, the canonical spellings reach the route itself: the same
            // answer as the plain path.
            if method == "GET" {
                let token = if level == "staff" { &staff } else { &resident };
                let plain = send(&host, method, module, path, on_origin, Some(token)).await;
                assert!(plain.status < 500, "{module} {path}: {}", plain.body);
                for trick in tricks(path).iter().filter(|t| same_route(t, path)) {
                    let r = send(&host, method, module, trick, on_origin, Some(token)).await;
                    assert_eq!(r.status, plain.status, "{module} {trick} as its own {level}: {}", r.body);
                }
            }
        }
    }
    // Tricks on the module id in the path form.
    for target in ["/131016/Furusato-Tax/staff/onestop", "/131016/furusato-tax./staff/onestop", "/131016/furusato-tax%2e/staff/onestop", "/131016/%66urusato-tax/staff/onestop", "/131016//furusato-tax/staff/onestop", "/131016/./furusato-tax/staff/onestop", "/%31%33%31%30%31%36/furusato-tax/staff/onestop"] {
        let r = raw_request(host.port(), "GET", target, &format!("127.0.0.1:{}", host.port()), &[], b"").await;
        assert!(matches!(r.status, 400 | 404), "{target}: {} {}", r.status, r.body);
        assert_eq!(r.header("content-type"), Some("application/problem+json"), "{target}");
    }
    let r = raw_request(host.port(), "GET", "/131016/Guestbook/", &format!("127.0.0.1:{}", host.port()), &[], b"").await;
    assert!(r.json()["detail"].as_str().unwrap().contains("/131016/guestbook/"), "the refusal names the canonical spelling: {}", r.body);
    assert!(tried > 2000, "{tried} requests");
    assert!(host.log().contains("refused module route"), "refusals are logged");
}

/// The edge's rules, written out independently: the canonical form of a module-relative
/// path, or `None` if the edge must refuse it.
fn canonical(raw: &str) -> Option<(String, Vec<String>)> {
    let raw = raw.strip_prefix('/').unwrap_or(raw);
    let raw = raw.strip_suffix('/').unwrap_or(raw);
    if raw.is_empty() {
        return Some(("/".into(), vec![]));
    }
    let mut segments = Vec::new();
    for segment in raw.split('/') {
        let bytes = segment.as_bytes();
        let mut decoded = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                let byte = u8::from_str_radix(hex, 16).ok().filter(|_| hex.bytes().all(|b| b.is_ascii_hexdigit()))?;
                if byte == b'/' || byte == b'\\' {
                    return None;
                }
                decoded.push(byte);
                i += 3;
            } else {
                decoded.push(bytes[i]);
                i += 1;
            }
        }
        let text = String::from_utf8(decoded).ok()?;
        if text.is_empty() || text == "." || text == ".." || text.contains('%') || text.contains('\\') || text.chars().any(char::is_control) {
            return None;
        }
        segments.push(text);
    }
    let encoded = segments
        .iter()
        .map(|s| s.bytes().map(|b| if b.is_ascii_alphanumeric() || b"-._~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }).collect::<String>())
        .map(|s| format!("/{s}"))
        .collect();
    Some((encoded, segments))
}

#[test]
fn the_path_a_module_receives_is_the_path_the_policy_checked() {
    use proptest::prelude::*;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let host = runtime.block_on(start(dir.path()));
    let segment = prop::sample::select(vec![
        "echo", "staff", "whoami", "%65cho", "%73taff", "STAFF", "", ".", "..", "%2e", "%2E%2e", ".%2e", "%2f", "%2F", "%5c", "%5C", "%00", "%0a", "%7f",
        "%25", "%252e", "%25%32%65", "%c0%ae", "%e3%81%82", "%e3%81", "%ed%a0%80", "%zz", "%4", "a", "a+b", "~x", ";", "%20", "%3B",
    ]);
    let config = ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() };
    proptest!(config, |(first in prop::sample::select(vec!["echo", "%65cho", "echo/staff", "echo/%73taff", "echo//staff", "echo/./staff", "echo/x/../staff"]), rest in prop::collection::vec(segment, 0..5), trailing in any::<bool>())| {
        let mut raw = format!("/{first}");
        for s in &rest {
            raw.push('/');
            raw.push_str(s);
        }
        if trailing {
            raw.push('/');
        }
        let on_origin = rest.len() % 2 == 0;
        let r = runtime.block_on(send(&host, "GET", "fault-fixture", &raw, on_origin, None));
        match canonical(&raw) {
            None => prop_assert!(matches!(r.status, 400 | 414), "{raw} must be refused: {} {}", r.status, r.body),
            Some((encoded, segments)) => {
                let staff = segments.len() >= 2 && segments[0] == "echo" && segments[1] == "staff";
                if staff {
                    prop_assert_eq!(r.status, 401, "{} reached a staff route without a token: {}", raw, r.body);
                } else if segments.first().is_some_and(|s| s == "echo") {
                    prop_assert_eq!(r.status, 200, "{}: {}", raw, r.body);
                    let seen = r.json();
                    prop_assert_eq!(seen["path"].as_str(), Some(encoded.as_str()), "the module got another path than was checked for {}", raw);
                } else {
                    prop_assert!(r.status == 404, "{raw}: {} {}", r.status, r.body);
                }
            }
        }
    });
}

#[tokio::test]
async fn a_module_origin_reaches_only_its_module() {
    let dir = tempfile::tempdir().unwrap();
    let host = start(dir.path()).await;
    let origin = host.origin(CHIYODA, "guestbook");

    let page = host.client.get(format!("{origin}/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["x-nukisashi-version"], "guestbook@1.0.0");
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    assert_eq!(page.headers()["x-frame-options"], "SAMEORIGIN");
    assert!(page.headers().get_all("content-security-policy").iter().any(|v| v == "frame-ancestors 'self'"));
    assert!(page.text().await.unwrap().contains("千代田区"));
    // The console and the API are not on a module's origin.
    for path in ["/console/", "/console/app.js", "/api/v1/reviews", "/api/v1/openapi.json", "/metrics"] {
        let r = host.client.get(format!("{origin}{path}")).send().await.unwrap();
        assert_ne!(r.status(), 200, "{path} on a module origin");
        assert!(r.headers().get("content-security-policy").is_none_or(|v| !v.to_str().unwrap().contains("script-src 'self'")), "{path}");
    }
    // Another municipality's module has another origin with its own data.
    let sapporo = host.origin(SAPPORO, "guestbook");
    assert!(host.client.get(format!("{sapporo}/")).send().await.unwrap().text().await.unwrap().contains("さっぽろ"));
    // Names under the modules domain that are not a module are refused, never the platform.
    for name in ["console.localhost", "guestbook--131017.localhost", "guestbook-131016.localhost", "guestbook--131016.localhost."] {
        let r = raw_request(host.port(), "GET", "/console/", &format!("{name}:{}", host.port()), &[], b"").await;
        assert!(matches!(r.status, 400 | 404), "{name}: {}", r.status);
        assert_eq!(r.header("content-type"), Some("application/problem+json"));
    }
    let r = raw_request(host.port(), "GET", "/", &format!("GUESTBOOK--131016.LOCALHOST:{}", host.port()), &[], b"").await;
    assert_eq!(r.status, 200, "host names are case-insensitive");
    let r = raw_request(host.port(), "GET", &format!("{origin}/"), &format!("127.0.0.1:{}", host.port()), &[], b"").await;
    assert_eq!(r.status, 400, "a target and a Host header that disagree are refused");
    // The platform's own namespace on a module origin is the platform's in every spelling.
    for target in ["/.nukisashi/nothing", "/%2enukisashi/replay?id=x", "/.NUKISASHI/signin", "/.Nukisashi/session?code=x", "/%2Enukisashi"] {
        let r = send(&host, "GET", "guestbook", target, true, None).await;
        assert!(r.header("x-nukisashi-version").is_none(), "{target} reached the module: {r:?}");
        assert!(matches!(r.status, 400 | 404), "{target}: {}", r.status);
    }
    // A tunnel, an echo or an invented method is the platform's to refuse, on both mounts.
    for method in ["CONNECT", "TRACE", "PROPFIND"] {
        // (CONNECT names an authority, so it only has the origin form.)
        for on_origin in [true, false].into_iter().filter(|o| *o || method != "CONNECT") {
            let target = if method == "CONNECT" && on_origin { format!("guestbook--{CHIYODA}.localhost:{}", host.port()) } else { "/".to_string() };
            let r = if method == "CONNECT" && on_origin {
                raw_request(host.port(), method, &target, &target, &[], b"").await
            } else {
                send(&host, method, "guestbook", &target, on_origin, None).await
            };
            assert_eq!(r.status, 405, "{method} (origin: {on_origin}): {r:?}");
            assert_eq!(r.header("content-type"), Some("application/problem+json"), "{method}");
            assert!(r.header("x-nukisashi-version").is_none(), "{method} reached the module");
        }
    }
}

#[tokio::test]
async fn the_path_form_is_sandboxed_and_browsers_are_sent_to_the_module_origin() {
    let dir = tempfile::tempdir().unwrap();
    let host = start(dir.path()).await;
    let r = host.get(&format!("/{CHIYODA}/hostile/")).await;
    assert_eq!(r.status(), 200);
    let csp: Vec<String> = r.headers().get_all("content-security-policy").iter().map(|v| v.to_str().unwrap().to_string()).collect();
    assert!(csp.contains(&"sandbox".to_string()), "{csp:?}");
    assert!(r.headers().get("set-cookie").is_none(), "no module cookie on the platform's origin");

    let navigation = host
        .client
        .get(host.url(&format!("/{CHIYODA}/guestbook/entries?limit=5")))
        .header("sec-fetch-mode", "navigate")
        .send()
        .await
        .unwrap();
    // reqwest follows the redirect to the module's own origin.
    assert_eq!(navigation.status(), 401, "the entries need a resident there too");
    assert_eq!(navigation.url().as_str(), format!("{}/entries?limit=5", host.origin(CHIYODA, "guestbook")));
    // A form post too (307 keeps the method and the body).
    let platform = format!("127.0.0.1:{}", host.port());
    let post = raw_request(host.port(), "POST", &format!("/{CHIYODA}/guestbook/entries"), &platform, &[("sec-fetch-mode", "navigate")], b"name=x").await;
    assert_eq!(post.status, 307);

    // On the platform's origin a module cannot send the browser elsewhere or prompt for a
    // password; on its own origin it can redirect, but still not prompt.
    let away = raw_request(host.port(), "GET", &format!("/{CHIYODA}/hostile/away"), &platform, &[], b"").await;
    assert_eq!(away.status, 302);
    for dropped in ["location", "refresh", "www-authenticate"] {
        assert!(away.header(dropped).is_none(), "{dropped} on the platform origin: {away:?}");
    }
    assert_eq!(away.header("origin-agent-cluster"), Some("?1"));
    let own = raw_request(host.port(), "GET", "/away", &format!("hostile--{CHIYODA}.localhost:{}", host.port()), &[], b"").await;
    assert_eq!(own.header("location"), Some("https://evil.example/phish"));
    assert!(own.header("www-authenticate").is_none());
}

#[tokio::test]
async fn only_well_formed_platform_names_reach_the_platform_and_operators_stay_out_of_modules() {
    let dir = tempfile::tempdir().unwrap();
    let host = start(dir.path()).await;
    for malformed in ["guestbook--131016.localhost/x", "x.localhost:1:2", "a.localhost,127.0.0.1", "a.loc%61lhost", "[a.localhost]", "a b.localhost", "user@127.0.0.1"] {
        let r = raw_request(host.port(), "GET", "/api/v1/modules", malformed, &[], b"").await;
        assert_eq!(r.status, 400, "{malformed}: {}", r.body);
        assert_eq!(r.json()["type"], "urn:nukisashi:problem:invalid-host", "{malformed}");
    }
    // A host listening on loopback answers the console and the API on loopback names only
    // (a DNS-rebinding page uses its own name); probes answer on any name.
    let r = raw_request(host.port(), "GET", "/console/", &format!("rebind.example:{}", host.port()), &[], b"").await;
    assert_eq!(r.status, 421, "{}", r.body);
    assert_eq!(raw_request(host.port(), "GET", "/healthz", &format!("10.0.0.7:{}", host.port()), &[], b"").await.status, 200);
    assert_eq!(raw_request(host.port(), "GET", "/console/", &format!("localhost:{}", host.port()), &[], b"").await.status, 200);

    // Operators run the platform; a municipality's staff pages are not theirs.
    let operator = host.token("operator", None);
    let staff_page = host.client.get(format!("{}/staff/onestop", host.origin(CHIYODA, "furusato-tax"))).bearer_auth(&operator).send().await.unwrap();
    assert_eq!(staff_page.status(), 403);
    let whoami: Value = host.client.get(format!("{}/whoami", host.origin(CHIYODA, "fault-fixture"))).bearer_auth(&operator).send().await.unwrap().json().await.unwrap();
    assert_eq!(whoami["role"], "anonymous", "{whoami}");
    // What the client claims about where the request came from does not reach the module.
    let seen = raw_request(host.port(), "GET", &format!("/{CHIYODA}/fault-fixture/echo/x"), &format!("127.0.0.1:{}", host.port()), &[("x-forwarded-host", "evil.example")], b"").await;
    let headers: Vec<(String, String)> = serde_json::from_value(seen.json()["headers"].clone()).unwrap();
    assert!(!headers.iter().any(|(n, _)| n == "x-forwarded-host"), "{headers:?}");
}

#[tokio::test]
async fn module_headers_that_reach_beyond_the_module_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let host = start(dir.path()).await;
    let r = host.client.get(format!("{}/", host.origin(CHIYODA, "hostile"))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let cookies: Vec<&str> = r.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap()).collect();
    assert_eq!(cookies, vec!["own=1; Path=/"], "only a host-only cookie of the module's own survives");
    assert!(r.headers().get("access-control-allow-origin").is_none());
    assert!(r.headers().get("clear-site-data").is_none());
    let r = host.client.get(format!("{}/sw.js", host.origin(CHIYODA, "hostile"))).send().await.unwrap();
    assert!(r.headers().get("service-worker-allowed").is_none());
    assert!(host.log().contains("module response headers dropped at the edge"));

    // The module sees no credentials and nothing claiming to come from the host.
    let seen: Value = host
        .client
        .get(format!("{}/echo/x", host.origin(CHIYODA, "fault-fixture")))
        .bearer_auth(host.token("resident", None))
        .header("x-nukisashi-base-path", "/forged")
        .header("cookie", "nukisashi_session=secret; mine=1")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let headers: Vec<(String, String)> = serde_json::from_value(seen["headers"].clone()).unwrap();
    assert!(!headers.iter().any(|(n, _)| n == "authorization"), "{headers:?}");
    assert!(headers.contains(&("cookie".into(), "mine=1".into())), "{headers:?}");
    assert_eq!(seen["base_path"], "", "a module on its own origin is the whole site");
}

#[tokio::test]
async fn a_hostile_vendor_page_cannot_reach_anyone_elses_credentials() {
    use nukisashi_e2e::browser::Browser;
    let dir = tempfile::tempdir().unwrap();
    let host = start(dir.path()).await;
    let admin = host.token("admin", Some(CHIYODA));
    let hostile = host.origin(CHIYODA, "hostile");
    let victim = host.origin(CHIYODA, "guestbook");
    let attack = format!("/?platform={}&victim={victim}", host.base);

    // An admin signed in to the console opens the vendor's page in the same tab.
    let browser = Browser::start().await.unwrap();
    browser.sign_in(&host.base, &admin).await.unwrap();
    browser.wait_for_text("サービスカタログ").await.unwrap();
    browser.client.goto(&format!("{hostile}{attack}")).await.unwrap();
    browser.wait_for("body[data-done=yes]").await.unwrap();
    let text = browser.wait_for("#results").await.unwrap().text().await.unwrap();
    let results: Value = serde_json::from_str(&text).unwrap();
    println!("what the hostile page got: {results}");
    assert!(!text.contains(&admin), "the page found the console's token: {results}");
    let storage: Value = serde_json::from_str(results["storage"].as_str().unwrap()).unwrap();
    assert_eq!(storage["session"], serde_json::json!([]), "{results}");
    assert!(results["api"].as_str().unwrap().starts_with("failed"), "the API on the platform origin answered the page: {results}");
    assert!(results["api_same_origin"].as_str().unwrap().starts_with("read 404"), "the API is not on a module origin: {results}");
    assert!(results["sw_console"].as_str().unwrap().starts_with("failed"), "a service worker over the console: {results}");
    if let Some(own) = results["sw_own_wide"].as_str().filter(|r| r.starts_with("registered")) {
        assert!(own.contains(&hostile), "a worker it registers stays on its own origin: {own}");
    }
    let cookies = results["cookies"].as_str().unwrap();
    assert!(!cookies.contains("stolen_parent") && !cookies.contains("stolen_victim"), "{cookies}");
    assert!(results["cross_module"].as_str().unwrap().starts_with("failed"), "another module's answer was readable: {results}");
    browser.screenshot("edge-hostile-page").await.unwrap();

    // Nothing it tried landed anywhere else: not at the victim module (by script or by its
    // response headers) …
    let (status, entries) = host.call(Some(&host.token("resident", None)), reqwest::Method::GET, &format!("/{CHIYODA}/guestbook/entries"), None).await;
    assert_eq!((status, entries), (200, serde_json::json!([])), "the cross-module post created nothing");
    let fixture = host.origin(CHIYODA, "fault-fixture");
    browser.client.goto(&format!("{fixture}/echo/cookies")).await.unwrap();
    let seen = browser.wait_for("body").await.unwrap().text().await.unwrap();
    for name in ["stolen_parent", "stolen_victim", "header_parent", "nukisashi_session", "own="] {
        assert!(!seen.contains(name), "cookie {name} reached another module: {seen}");
    }
    let sapporo = host.origin(SAPPORO, "fault-fixture");
    browser.client.goto(&format!("{sapporo}/echo/cookies")).await.unwrap();
    let seen = browser.wait_for("body").await.unwrap().text().await.unwrap();
    assert!(!seen.contains("stolen") && !seen.contains("header_parent"), "cookie reached another municipality: {seen}");

    // … nor at the console, which still has its token and no service worker.
    browser.client.goto(&format!("{}/console/", host.base)).await.unwrap();
    browser.wait_for_text("サービスカタログ").await.unwrap();
    let workers = browser
        .client
        .execute_async("const done = arguments[arguments.length - 1]; navigator.serviceWorker.getRegistrations().then(r => done(r.length), e => done(-1));", vec![])
        .await
        .unwrap();
    assert_eq!(workers, serde_json::json!(0), "no service worker controls the console");
    let console_cookies = browser.client.execute("return document.cookie", vec![]).await.unwrap();
    assert_eq!(console_cookies, serde_json::json!(""), "no cookie reached the platform origin");

    // The old way in, the path form on the platform's origin, sends the browser to the
    // module's own origin before any of its script runs.
    browser.client.goto(&format!("{}/{CHIYODA}/hostile{attack}", host.base)).await.unwrap();
    browser.wait_for("body[data-done=yes]").await.unwrap();
    let url = browser.client.current_url().await.unwrap();
    assert!(url.as_str().starts_with(&hostile), "{url}");
}

#[tokio::test]
async fn every_refusal_on_the_platform_origin_is_a_problem() {
    let dir = tempfile::tempdir().unwrap();
    let host = start(dir.path()).await;
    let operator = host.token("operator", None);
    let cases = [
        (host.client.get(host.url("/console/missing.js")).send().await.unwrap(), 404, "no-console-file"),
        (host.client.delete(host.url("/api/v1/reviews")).bearer_auth(&operator).send().await.unwrap(), 405, "method-not-allowed"),
        (host.client.get(host.url("/no/such/path")).send().await.unwrap(), 404, "no-route"),
        (host.client.get(host.url("/api/v1/reviews")).send().await.unwrap(), 401, "unauthenticated"),
    ];
    for (response, status, kind) in cases {
        assert_eq!(response.status(), status, "{kind}");
        let allow = response.headers().get("allow").cloned();
        let p = nukisashi_e2e::problem(response).await;
        assert_eq!(p["type"], format!("urn:nukisashi:problem:{kind}"), "{p}");
        assert!(!p["detail"].as_str().unwrap().is_empty());
        if status == 405 {
            assert!(allow.is_some(), "a 405 says what is allowed");
        }
    }
    // A body past the API's limit, sent byte for byte (the host answers before reading it all).
    let auth = format!("Bearer {operator}");
    let too_big = raw_request(host.port(), "POST", "/api/v1/vendors", &format!("127.0.0.1:{}", host.port()), &[("authorization", &auth), ("content-type", "application/json")], &vec![b' '; 3 << 20]).await;
    assert_eq!(too_big.status, 413);
    assert_eq!(too_big.header("content-type"), Some("application/problem+json"));
    assert_eq!(too_big.json()["type"], "urn:nukisashi:problem:body-too-large");
    assert_eq!(too_big.header("connection"), Some("close"), "the unread rest of the body ends the connection");
}
