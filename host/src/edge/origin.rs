//! Every (municipality, module) on an origin of its own.
//!
//! A module's pages run vendor code in residents' and clerks' browsers. Browsers isolate
//! storage, cookies, service workers and script access by origin, so each module of each
//! municipality is served on its own host name, `{module}--{lg_code}.{modules domain}`
//! (`guestbook--131016.localhost:8080` on a laptop: browsers resolve every `*.localhost`
//! name to loopback). The console and the API answer only on other host names (the
//! platform origin), and a module origin answers only its module. So a module's page
//! cannot read the console's token, register a service worker over the console, or read
//! another module's responses; what is left (cookies set with a `Domain` for the parent
//! domain) is closed by the modules domain being a public suffix: `localhost` is one to
//! browsers, a production domain must be registered in the Public Suffix List
//! (docs/OPERATIONS.md).

use crate::api::problem::Problem;
use crate::lgcode::LgCode;
use axum::http::{HeaderMap, Uri, header};
use std::sync::atomic::{AtomicU16, Ordering};

/// Where a request is addressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// The console, the API, health and metrics (and the path form of modules), under the
    /// host name the request named (lower-case; none for a request without one).
    Platform(Option<String>),
    /// One module of one municipality, on its own origin.
    Module { lg_code: LgCode, module: String },
}

/// The host names modules are served on, and how browsers reach them.
pub struct ModuleOrigins {
    scheme: String,
    /// Lower-case, no trailing dot, e.g. `localhost` or `modules.example.lg.jp`.
    domain: String,
    /// The port in the module URLs; 0 for the scheme's default (or while this host's own
    /// listening port is not known yet).
    port: AtomicU16,
    /// Whether `port` was configured (and so is not this host's listening port).
    port_configured: bool,
    /// `[edge] platform_url`, e.g. `https://platform.example.lg.jp`.
    platform: Option<String>,
}

impl ModuleOrigins {
    /// From `[edge] modules_url` (e.g. `https://modules.example.lg.jp`), or
    /// `http(s)://localhost:<listening port>` when it is not set.
    pub fn new(modules_url: Option<&str>, platform_url: Option<&str>, tls: bool) -> anyhow::Result<Self> {
        let platform = match platform_url {
            Some(configured) => {
                let url = url::Url::parse(configured).map_err(|e| anyhow::anyhow!("[edge] platform_url `{configured}` is not a URL: {e}"))?;
                if !matches!(url.scheme(), "http" | "https") || url.path() != "/" || url.query().is_some() || url.host_str().is_none() {
                    anyhow::bail!("[edge] platform_url `{configured}` must be http(s)://host[:port] with nothing after it");
                }
                Some(url.origin().ascii_serialization())
            }
            None => None,
        };
        let Some(configured) = modules_url else {
            return Ok(Self { scheme: if tls { "https" } else { "http" }.into(), domain: "localhost".into(), port: AtomicU16::new(0), port_configured: false, platform });
        };
        let url = url::Url::parse(configured).map_err(|e| anyhow::anyhow!("[edge] modules_url `{configured}` is not a URL: {e}"))?;
        let domain = match url.host() {
            Some(url::Host::Domain(d)) => d.trim_end_matches('.').to_ascii_lowercase(),
            _ => anyhow::bail!("[edge] modules_url `{configured}` must name a domain (modules get sub-domains of it), not an IP address"),
        };
        if !matches!(url.scheme(), "http" | "https") || url.path() != "/" || url.query().is_some() {
            anyhow::bail!("[edge] modules_url `{configured}` must be http(s)://domain[:port] with nothing after it");
        }
        // No port in the URL: the scheme's default, left out of module URLs (0).
        Ok(Self { scheme: url.scheme().into(), domain, port: AtomicU16::new(url.port().unwrap_or(0)), port_configured: true, platform })
    }

    /// How browsers reach the platform (sign-in, the console): `[edge] platform_url`, or
    /// `{scheme}://localhost:<port>` when it is not set.
    pub fn platform_origin(&self) -> String {
        match &self.platform {
            Some(configured) => configured.clone(),
            None => format!("{}://localhost{}", self.scheme, self.port_suffix()),
        }
    }

    /// Whether module origins are https (their cookies are then `Secure`).
    pub fn is_https(&self) -> bool {
        self.scheme == "https"
    }

    /// `:port` in URLs, or nothing for the scheme's default.
    fn port_suffix(&self) -> String {
        let port = self.port.load(Ordering::Relaxed);
        let default_port = matches!((self.scheme.as_str(), port), ("http", 80) | ("https", 443) | (_, 0));
        if default_port { String::new() } else { format!(":{port}") }
    }

    /// Tells the origins the port this host listens on (used when none was configured).
    pub fn listening_on(&self, port: u16) {
        if !self.port_configured {
            self.port.store(port, Ordering::Relaxed);
        }
    }

    /// The origin of `module` at `lg_code`, e.g. `http://guestbook--131016.localhost:8080`.
    pub fn origin(&self, lg_code: &LgCode, module: &str) -> String {
        format!("{}://{module}--{lg_code}.{}{}", self.scheme, self.domain, self.port_suffix())
    }

    /// Which origin a request is addressed to, from its URI's authority (HTTP/2, or an
    /// absolute-form request line) or its one `Host` header, which must be a well-formed
    /// `host[:port]`. A name under the modules domain that is not a module origin is
    /// refused, never taken for the platform.
    pub fn destination(&self, uri: &Uri, headers: &HeaderMap) -> Result<Destination, Problem> {
        let mut hosts = headers.get_all(header::HOST).iter();
        let host_header = match (hosts.next(), hosts.next()) {
            (_, Some(_)) => return Err(Problem::bad_request("ambiguous-host", "the request has more than one Host header")),
            (Some(value), None) => Some(host_name(value.to_str().unwrap_or("\u{0}"))?),
            (None, None) => None,
        };
        let target = uri.authority().map(|a| host_name(a.as_str())).transpose()?;
        let name = match (target, host_header) {
            (Some(a), Some(h)) if !a.eq_ignore_ascii_case(h) => {
                return Err(Problem::bad_request("ambiguous-host", "the request's target and its Host header name different hosts"));
            }
            (Some(a), _) => a,
            (None, Some(h)) => h,
            (None, None) => return Ok(Destination::Platform(None)),
        };
        let name = name.to_ascii_lowercase();
        if name.ends_with('.') {
            return Err(Problem::bad_request("non-canonical-host", format!("write the host name without the trailing dot: {}", name.trim_end_matches('.'))));
        }
        let Some(label) = name.strip_suffix(self.domain.as_str()).and_then(|rest| rest.strip_suffix('.')) else {
            return Ok(Destination::Platform(Some(name)));
        };
        let parsed = label.rsplit_once("--").and_then(|(module, code)| {
            let lg_code = LgCode::parse(code).ok()?;
            crate::is_valid_module_id(module).then(|| Destination::Module { lg_code, module: module.to_string() })
        });
        parsed.ok_or_else(|| {
            Problem::not_found("no-module-origin", format!("`{name}` is not a module's address: modules are served at <module>--<municipality code>.{}", self.domain))
        })
    }

    /// The module's origin as `host[:port]`, what it sees as the request's authority.
    pub fn authority(&self, lg_code: &LgCode, module: &str) -> String {
        let origin = self.origin(lg_code, module);
        origin.split_once("://").map(|(_, a)| a.to_string()).unwrap_or(origin)
    }
}

/// The host name of a `host[:port]` authority, checked: DNS labels of letters, digits and
/// `-` (a trailing dot is left for the caller to refuse), or a bracketed IPv6 literal; the
/// port, if any, digits. Anything else (userinfo, paths, spaces, commas, escapes, a second
/// port) is refused.
fn host_name(value: &str) -> Result<&str, Problem> {
    let invalid = || Problem::bad_request("invalid-host", "the Host is not a host name with an optional port");
    let (host, port) = if value.starts_with('[') {
        let end = value.find(']').ok_or_else(invalid)?;
        let (host, rest) = value.split_at(end + 1);
        let literal = &host[1..host.len() - 1];
        if literal.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(invalid());
        }
        (host, rest.strip_prefix(':'))
    } else {
        match value.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (value, None),
        }
    };
    if let Some(port) = port {
        if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
    } else if value.starts_with('[') && !value.ends_with(']') {
        return Err(invalid());
    }
    if !host.starts_with('[') {
        let labels = host.strip_suffix('.').unwrap_or(host);
        let well_formed = !labels.is_empty()
            && labels.len() <= 253
            && labels.split('.').all(|l| !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
        if !well_formed {
            return Err(invalid());
        }
    }
    Ok(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn destination(origins: &ModuleOrigins, host: &str) -> Result<Destination, Problem> {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, host.parse().unwrap());
        origins.destination(&Uri::from_static("/"), &headers)
    }

    #[test]
    fn module_origins_are_recognised_and_built() {
        let origins = ModuleOrigins::new(None, None, false).unwrap();
        origins.listening_on(8080);
        let chiyoda = LgCode::parse("131016").unwrap();
        assert_eq!(origins.origin(&chiyoda, "furusato-tax"), "http://furusato-tax--131016.localhost:8080");
        let module = Destination::Module { lg_code: chiyoda, module: "furusato-tax".into() };
        assert_eq!(destination(&origins, "furusato-tax--131016.localhost:8080").unwrap(), module);
        assert_eq!(destination(&origins, "Furusato-Tax--131016.LOCALHOST:8080").unwrap(), module, "host names are case-insensitive");
        assert_eq!(destination(&origins, "127.0.0.1:8080").unwrap(), Destination::Platform(Some("127.0.0.1".into())));
        assert_eq!(destination(&origins, "localhost:8080").unwrap(), Destination::Platform(Some("localhost".into())));
        assert_eq!(destination(&origins, "[::1]:8080").unwrap(), Destination::Platform(Some("[::1]".into())));
        for malformed in ["furusato-tax--131016.localhost/x", "x.localhost:8080:8080", "a.localhost,127.0.0.1", "a.loc%61lhost", "[a.localhost]", "a b.localhost", "a.localhost :80", "user@a.localhost", "", ":80", "[::1"] {
            assert_eq!(destination(&origins, malformed).unwrap_err().kind, "urn:nukisashi:problem:invalid-host", "{malformed:?}");
        }
        for refused in ["console.localhost", "furusato-tax--131017.localhost", "a.b--131016.localhost", "--131016.localhost"] {
            assert_eq!(destination(&origins, refused).unwrap_err().status, 404, "{refused}");
        }
        assert_eq!(destination(&origins, "furusato-tax--131016.localhost.:8080").unwrap_err().status, 400);
    }

    #[test]
    fn a_configured_modules_url_sets_scheme_domain_and_port() {
        let origins = ModuleOrigins::new(Some("https://Modules.Example.lg.jp"), None, false).unwrap();
        origins.listening_on(8080);
        let chiyoda = LgCode::parse("131016").unwrap();
        assert_eq!(origins.origin(&chiyoda, "guestbook"), "https://guestbook--131016.modules.example.lg.jp");
        assert!(matches!(destination(&origins, "guestbook--131016.modules.example.lg.jp").unwrap(), Destination::Module { .. }));
        assert_eq!(destination(&origins, "guestbook--131016.localhost").unwrap(), Destination::Platform(Some("guestbook--131016.localhost".into())));
        assert!(ModuleOrigins::new(Some("https://10.0.0.1"), None, false).is_err());
        assert!(ModuleOrigins::new(Some("https://modules.example.lg.jp/x"), None, false).is_err());
    }

    #[test]
    fn the_target_and_the_host_header_must_agree() {
        let origins = ModuleOrigins::new(None, None, false).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "127.0.0.1:8080".parse().unwrap());
        let uri: Uri = "http://guestbook--131016.localhost:8080/".parse().unwrap();
        assert_eq!(origins.destination(&uri, &headers).unwrap_err().status, 400);
        headers.append(header::HOST, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(origins.destination(&Uri::from_static("/"), &headers).unwrap_err().status, 400);
    }
}
