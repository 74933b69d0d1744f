//! The host as an OpenID Connect relying party (authorization code flow, Core 1.0 §3.1)
//! for one identity provider: endpoints from discovery (`/.well-known/openid-configuration`,
//! cached for an hour) with the configured ones as the fallback, PKCE (S256), the code
//! exchanged server-side, the ID token verified (signature, issuer, audience = client id,
//! expiry, nonce) and its claims checked against what the provider may assert.

use crate::auth::{Assertions, AuthError, Claims, Principal, Provider};
use crate::lgcode::LgCode;
use anyhow::{Context, Result};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// `[auth.providers.browser]`: how residents and staff sign in with this provider.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrowserSettings {
    /// What the sign-in page calls it, e.g. `千代田区 共通認証`.
    pub name: String,
    /// This host's client id at the provider (the ID token's audience).
    pub client_id: String,
    /// A file holding the client secret, for a confidential client (sent with HTTP Basic);
    /// without one the host is a public client and relies on PKCE alone.
    pub client_secret_file: Option<PathBuf>,
    /// Read the endpoints from `{issuer}/.well-known/openid-configuration` (default). The
    /// explicit endpoints below are used when discovery is off or the document cannot be read.
    #[serde(default = "yes")]
    pub discovery: bool,
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
    /// The provider's keys, when they are not in `pem_file` / `jwks_file`.
    pub jwks_uri: Option<String>,
    #[serde(default = "default_scope")]
    pub scope: String,
}

fn yes() -> bool {
    true
}

fn default_scope() -> String {
    "openid".into()
}

/// Where a provider is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub authorization: String,
    pub token: String,
    pub jwks: Option<String>,
}

/// How a provider's endpoints are found.
enum EndpointSource {
    /// Discovery, then these (if both are set).
    Discover { fallback: Option<Endpoints> },
    Fixed(Endpoints),
    /// Under the platform's own origin (the demo provider): known once the host listens.
    Platform { prefix: &'static str },
}

/// One identity provider the host signs browsers in with.
pub struct OidcProvider {
    pub issuer: String,
    pub name: String,
    pub client_id: String,
    client_secret: Option<String>,
    scope: String,
    source: EndpointSource,
    algorithm: Algorithm,
    /// Keys from the provider's files (or the demo provider's own).
    fixed_keys: Vec<DecodingKey>,
    /// Municipalities whose pages offer this provider.
    pub lg_codes: Vec<LgCode>,
    may_assert: Assertions,
    http: reqwest::Client,
    cache: tokio::sync::Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    discovered: Option<(Endpoints, Instant)>,
    /// Keys read from `jwks_uri`, and when.
    jwks: Option<(Vec<DecodingKey>, Instant)>,
}

/// How long discovered endpoints are kept.
const DISCOVERY_TTL: Duration = Duration::from_secs(3600);
/// Keys fetched from `jwks_uri` are fetched again when a token fails with them, at most this often.
const JWKS_REFETCH: Duration = Duration::from_secs(60);
/// Every call to a provider gives up after this long.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);

impl OidcProvider {
    /// From `[[auth.providers]]` with a `browser` table.
    pub fn from_settings(provider: &Provider, browser: &BrowserSettings, fixed_keys: Vec<DecodingKey>) -> Result<Self> {
        let issuer = &provider.issuer;
        let may_assert = Assertions::of(provider)?;
        let lg_codes: Vec<LgCode> = provider.lg_codes.iter().filter_map(|c| LgCode::parse(c).ok()).collect();
        if lg_codes.is_empty() {
            anyhow::bail!("identity provider {issuer}: browser sign-in needs `lg_codes`, the municipalities whose pages offer it");
        }
        let algorithm = match provider.algorithm.as_str() {
            "RS256" => Algorithm::RS256,
            "ES256" => Algorithm::ES256,
            other => anyhow::bail!("identity provider {issuer}: algorithm {other} is not supported (use RS256 or ES256)"),
        };
        let configured = match (&browser.authorization_endpoint, &browser.token_endpoint) {
            (Some(a), Some(t)) => Some(Endpoints { authorization: a.clone(), token: t.clone(), jwks: browser.jwks_uri.clone() }),
            (None, None) => None,
            _ => anyhow::bail!("identity provider {issuer}: set both browser.authorization_endpoint and browser.token_endpoint, or neither"),
        };
        if let Some(endpoints) = &configured {
            endpoints.check(issuer)?;
        }
        let source = match (browser.discovery, configured) {
            (true, fallback) => {
                check_url(issuer, "issuer", &format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/')))?;
                EndpointSource::Discover { fallback }
            }
            (false, Some(endpoints)) => EndpointSource::Fixed(endpoints),
            (false, None) => anyhow::bail!("identity provider {issuer}: with browser.discovery = false, set browser.authorization_endpoint and browser.token_endpoint"),
        };
        if fixed_keys.is_empty() && browser.jwks_uri.is_none() && !browser.discovery {
            anyhow::bail!("identity provider {issuer}: no keys for its ID tokens: set pem_file, jwks_file or browser.jwks_uri");
        }
        let client_secret = match &browser.client_secret_file {
            Some(path) => Some(std::fs::read_to_string(path).with_context(|| format!("identity provider {issuer}: cannot read {}", path.display()))?.trim().to_string()),
            None => None,
        };
        Ok(Self {
            issuer: issuer.clone(),
            name: browser.name.clone(),
            client_id: browser.client_id.clone(),
            client_secret,
            scope: browser.scope.clone(),
            source,
            algorithm,
            fixed_keys,
            lg_codes,
            may_assert,
            http: client()?,
            cache: Default::default(),
        })
    }

    /// The demo provider served by this host under `prefix` on the platform origin.
    pub fn platform_hosted(issuer: &str, name: &str, client_id: &str, prefix: &'static str, key: DecodingKey, provider: &Provider) -> Result<Self> {
        Ok(Self {
            issuer: issuer.into(),
            name: name.into(),
            client_id: client_id.into(),
            client_secret: None,
            scope: "openid".into(),
            source: EndpointSource::Platform { prefix },
            algorithm: Algorithm::EdDSA,
            fixed_keys: vec![key],
            lg_codes: provider.lg_codes.iter().filter_map(|c| LgCode::parse(c).ok()).collect(),
            may_assert: Assertions::of(provider)?,
            http: client()?,
            cache: Default::default(),
        })
    }

    /// Where the provider is reached now (`platform` is this host's platform origin).
    pub async fn endpoints(&self, platform: &str) -> Result<Endpoints, String> {
        match &self.source {
            EndpointSource::Fixed(endpoints) => Ok(endpoints.clone()),
            EndpointSource::Platform { prefix } => {
                Ok(Endpoints { authorization: format!("{platform}{prefix}/authorize"), token: format!("{platform}{prefix}/token"), jwks: None })
            }
            EndpointSource::Discover { fallback } => {
                let mut cache = self.cache.lock().await;
                if let Some((endpoints, at)) = &cache.discovered {
                    if at.elapsed() < DISCOVERY_TTL {
                        return Ok(endpoints.clone());
                    }
                }
                match self.discover().await {
                    Ok(endpoints) => {
                        cache.discovered = Some((endpoints.clone(), Instant::now()));
                        Ok(endpoints)
                    }
                    Err(why) => match fallback {
                        Some(endpoints) => {
                            tracing::warn!(issuer = %self.issuer, reason = %why, "discovery failed; using the configured endpoints");
                            Ok(endpoints.clone())
                        }
                        None => Err(why),
                    },
                }
            }
        }
    }

    async fn discover(&self) -> Result<Endpoints, String> {
        #[derive(Deserialize)]
        struct Metadata {
            issuer: String,
            authorization_endpoint: String,
            token_endpoint: String,
            jwks_uri: Option<String>,
        }
        let url = format!("{}/.well-known/openid-configuration", self.issuer.trim_end_matches('/'));
        let response = self.http.get(&url).send().await.map_err(|e| format!("cannot read {url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("{url} answered {}", response.status()));
        }
        let metadata: Metadata = response.json().await.map_err(|e| format!("{url} is not a discovery document: {e}"))?;
        if metadata.issuer != self.issuer {
            return Err(format!("{url} names issuer `{}`, not `{}`", metadata.issuer, self.issuer));
        }
        let endpoints = Endpoints { authorization: metadata.authorization_endpoint, token: metadata.token_endpoint, jwks: metadata.jwks_uri };
        endpoints.check(&self.issuer).map_err(|e| e.to_string())?;
        Ok(endpoints)
    }

    /// The URL the browser is sent to.
    pub fn authorization_url(&self, endpoints: &Endpoints, redirect_uri: &str, state: &str, nonce: &str, code_verifier: &str) -> Result<String, String> {
        let challenge = pkce_challenge(code_verifier);
        let url = url::Url::parse_with_params(
            &endpoints.authorization,
            [
                ("response_type", "code"),
                ("client_id", self.client_id.as_str()),
                ("redirect_uri", redirect_uri),
                ("scope", self.scope.as_str()),
                ("state", state),
                ("nonce", nonce),
                ("code_challenge", challenge.as_str()),
                ("code_challenge_method", "S256"),
                ("ui_locales", "ja"),
            ],
        )
        .map_err(|e| format!("the authorization endpoint is not a URL: {e}"))?;
        Ok(url.into())
    }

    /// Exchanges the code for tokens and verifies the ID token; the signed-in principal.
    pub async fn finish(&self, endpoints: &Endpoints, code: &str, redirect_uri: &str, code_verifier: &str, nonce: &str) -> Result<Principal, String> {
        #[derive(Deserialize)]
        struct TokenResponse {
            id_token: Option<String>,
        }
        let form = [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", redirect_uri), ("client_id", self.client_id.as_str()), ("code_verifier", code_verifier)];
        let mut request = self.http.post(&endpoints.token).form(&form);
        if let Some(secret) = &self.client_secret {
            request = request.basic_auth(&self.client_id, Some(secret));
        }
        let response = request.send().await.map_err(|e| format!("the token endpoint cannot be reached: {e}"))?;
        let status = response.status();
        if !status.is_success() {
            let body: String = response.text().await.unwrap_or_default().chars().take(300).collect();
            return Err(format!("the token endpoint refused the code ({status}): {body}"));
        }
        let tokens: TokenResponse = response.json().await.map_err(|e| format!("the token endpoint's answer is not a token response: {e}"))?;
        let id_token = tokens.id_token.ok_or("the token endpoint answered no id_token (is `openid` in the scope?)")?;
        self.verify_id_token(endpoints, &id_token, nonce).await
    }

    async fn verify_id_token(&self, endpoints: &Endpoints, token: &str, nonce: &str) -> Result<Principal, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| format!("the ID token is unreadable: {e}"))?;
        if header.alg != self.algorithm {
            return Err(format!("the ID token is signed with {:?}, this provider is configured for {:?}", header.alg, self.algorithm));
        }
        let validation = crate::auth::validation(self.algorithm, &self.issuer, &self.client_id);
        let label = format!("identity provider {}", self.issuer);
        let mut last = String::from("no key to check it with");
        for refetch in [false, true] {
            let keys = self.keys(endpoints, refetch).await?;
            for key in keys.iter().chain(&self.fixed_keys) {
                match jsonwebtoken::decode::<Claims>(token, key, &validation) {
                    Ok(data) => {
                        if data.claims.nonce.as_deref() != Some(nonce) {
                            return Err("the ID token's nonce is not the one this sign-in sent".into());
                        }
                        return crate::auth::verified_principal(Some(&self.may_assert), &self.issuer, &label, data.claims).map_err(|e| match e {
                            AuthError::Invalid(why) | AuthError::Forbidden(why) => why,
                            AuthError::Missing => "no token".into(),
                        });
                    }
                    Err(e) => last = crate::auth::refusal_reason(e.kind()),
                }
            }
            if endpoints.jwks.is_none() {
                break;
            }
        }
        Err(format!("the ID token was refused: {last}"))
    }

    /// Keys from `jwks_uri`: cached; fetched again on `refetch` when the cache is older than
    /// [`JWKS_REFETCH`] (the provider may have rotated its key).
    async fn keys(&self, endpoints: &Endpoints, refetch: bool) -> Result<Vec<DecodingKey>, String> {
        let Some(uri) = &endpoints.jwks else { return Ok(Vec::new()) };
        let mut cache = self.cache.lock().await;
        if let Some((keys, at)) = &cache.jwks {
            if !refetch || at.elapsed() < JWKS_REFETCH {
                return Ok(keys.clone());
            }
        }
        let response = self.http.get(uri).send().await.map_err(|e| format!("cannot read the provider's keys at {uri}: {e}"))?;
        let set: jsonwebtoken::jwk::JwkSet = response.json().await.map_err(|e| format!("{uri} is not a JWKS document: {e}"))?;
        let keys: Vec<DecodingKey> = set.keys.iter().filter_map(|k| DecodingKey::from_jwk(k).ok()).collect();
        cache.jwks = Some((keys.clone(), Instant::now()));
        Ok(keys)
    }
}

impl Endpoints {
    fn check(&self, issuer: &str) -> Result<()> {
        check_url(issuer, "authorization_endpoint", &self.authorization)?;
        check_url(issuer, "token_endpoint", &self.token)?;
        if let Some(jwks) = &self.jwks {
            check_url(issuer, "jwks_uri", jwks)?;
        }
        Ok(())
    }
}

/// Provider URLs are https (plain http only on loopback).
pub(crate) fn check_url(issuer: &str, what: &str, url: &str) -> Result<()> {
    let parsed = url::Url::parse(url).with_context(|| format!("identity provider {issuer}: {what} `{url}` is not a URL"))?;
    let loopback = matches!(parsed.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    if parsed.scheme() != "https" && !(parsed.scheme() == "http" && loopback) {
        anyhow::bail!("identity provider {issuer}: {what} must be https:// (plain http only on loopback), not `{url}`");
    }
    Ok(())
}

fn client() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder().timeout(PROVIDER_TIMEOUT).redirect(reqwest::redirect::Policy::none()).build()?)
}

/// RFC 7636 S256: BASE64URL(SHA-256(verifier)).
pub fn pkce_challenge(verifier: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_challenge_is_the_unpadded_base64url_sha256_of_the_verifier() {
        // Computed independently: python3 -c "import hashlib,base64; print(base64.urlsafe_b64encode(hashlib.sha256(b'dBjftJeZ4CVP-mJ92K9qaNoqz9RqZdCnrL_JbHTzrZI').digest()).rstrip(b'='))"
        assert_eq!(pkce_challenge("dBjftJeZ4CVP-mJ92K9qaNoqz9RqZdCnrL_JbHTzrZI"), "irJ3z3oYP47gzQFKoMKN4sxrz9k7qVxeE9aA1GP-Vkc");
    }

    #[test]
    fn provider_urls_are_https_or_loopback() {
        check_url("i", "token_endpoint", "https://idp.example.lg.jp/token").unwrap();
        check_url("i", "token_endpoint", "http://127.0.0.1:9000/token").unwrap();
        let refused = check_url("i", "token_endpoint", "http://idp.example.lg.jp/token").unwrap_err().to_string();
        assert!(refused.contains("must be https://"), "{refused}");
    }
}
