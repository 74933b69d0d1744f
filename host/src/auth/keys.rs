//! Token verification keys and the local HS256 secret.

use super::policy::{Principal, Role};
use super::AuthError;
use crate::lgcode::LgCode;
use anyhow::{Context, Result};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Issuer and audience of tokens the host mints with its own secret.
pub const LOCAL_ISSUER: &str = "nukisashi";
pub const LOCAL_AUDIENCE: &str = "nukisashi";

/// `[auth]` in the settings file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// External identity providers (municipal single sign-on).
    pub providers: Vec<Provider>,
}

/// An identity provider whose RS256/ES256 tokens the host accepts, and what it may assert.
/// A token asserting a role, a municipality or a vendor outside these lists is refused
/// (and logged), however well it is signed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    pub issuer: String,
    pub audience: String,
    /// `RS256` or `ES256`.
    pub algorithm: String,
    /// Roles its tokens may carry, e.g. `["resident", "staff", "admin"]` for a
    /// municipality's sign-in. `operator` only for a provider configured as the platform
    /// operators' own.
    pub roles: Vec<Role>,
    /// Municipalities whose `admin`, `staff` and `resident` tokens it may issue (the
    /// `lg_code` claim). Required for `admin` and `staff`; a provider with none may issue
    /// resident tokens without an `lg_code` (and so without a 宛名番号) only.
    #[serde(default)]
    pub lg_codes: Vec<String>,
    /// Vendors whose tokens it may issue (the `vendor_id` claim); required for `vendor`.
    #[serde(default)]
    pub vendors: Vec<String>,
    /// A PEM public key, or …
    pub pem_file: Option<PathBuf>,
    /// … a JWKS file with the provider's keys.
    pub jwks_file: Option<PathBuf>,
    /// Offer "sign in with this provider" in the web console.
    pub sign_in: Option<SignIn>,
    /// Sign residents and staff in with this provider in the browser, on the pages of every
    /// module of the municipalities in `lg_codes` (OpenID Connect; `crate::signin`).
    pub browser: Option<crate::signin::oidc::BrowserSettings>,
}

/// How the web console signs users in through a provider: OAuth 2.0 authorization code
/// with PKCE (RFC 7636), the console being a public client. The provider's access token
/// (a JWT with the claims below, checked like any other token of this provider) becomes
/// the console's bearer token.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    /// The button's label, e.g. `自治体共通認証`.
    pub name: String,
    pub authorization_endpoint: String,
    /// Must allow cross-origin POSTs from the console (CORS), as public-client token
    /// endpoints do.
    pub token_endpoint: String,
    pub client_id: String,
    #[serde(default = "default_scope")]
    pub scope: String,
}

fn default_scope() -> String {
    "openid".into()
}

impl SignIn {
    /// The token endpoint's origin, for the console's `connect-src`.
    pub fn token_origin(&self) -> String {
        reqwest::Url::parse(&self.token_endpoint).map(|u| u.origin().ascii_serialization()).unwrap_or_default()
    }

    fn check(&self, issuer: &str) -> Result<()> {
        crate::signin::oidc::check_url(issuer, "sign_in.authorization_endpoint", &self.authorization_endpoint)?;
        crate::signin::oidc::check_url(issuer, "sign_in.token_endpoint", &self.token_endpoint)
    }
}

/// The claims the platform reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lg_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A resident's 宛名番号 in the municipality of `lg_code`, vouched for by the identity
    /// provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addressee_number: Option<String>,
    pub iss: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    /// An ID token's answer to the sign-in request's `nonce`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

struct Key {
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    label: String,
    /// What tokens verified by this key may assert; `None` for the host's own secret.
    may_assert: Option<Assertions>,
}

/// A provider's allowance, checked against every token it signs.
#[derive(Debug, Clone)]
pub(crate) struct Assertions {
    roles: Vec<Role>,
    lg_codes: Vec<LgCode>,
    vendors: Vec<String>,
}

impl Assertions {
    pub(crate) fn of(provider: &Provider) -> Result<Self> {
        let issuer = &provider.issuer;
        if provider.roles.is_empty() {
            anyhow::bail!("identity provider {issuer}: `roles` is empty; list the roles its tokens may carry");
        }
        let lg_codes = provider
            .lg_codes
            .iter()
            .map(|c| LgCode::parse(c).map_err(|e| anyhow::anyhow!("identity provider {issuer}: lg_codes: {e}")))
            .collect::<Result<Vec<_>>>()?;
        let municipal = provider.roles.iter().any(|r| matches!(r, Role::Admin | Role::Staff));
        if municipal && lg_codes.is_empty() {
            anyhow::bail!("identity provider {issuer} may assert admin or staff but lists no `lg_codes`: name the municipalities it signs in for");
        }
        if provider.roles.contains(&Role::Vendor) && provider.vendors.is_empty() {
            anyhow::bail!("identity provider {issuer} may assert vendor but lists no `vendors`: name the vendor ids it signs in for");
        }
        Ok(Self { roles: provider.roles.clone(), lg_codes, vendors: provider.vendors.clone() })
    }

    /// Why these claims go beyond the allowance, if they do.
    fn exceeded_by(&self, claims: &Claims) -> Option<String> {
        let role = role_name(claims.role);
        if !self.roles.contains(&claims.role) {
            return Some(format!("this identity provider may not assert role {role}"));
        }
        if let Some(code) = &claims.lg_code {
            if !self.lg_codes.iter().any(|c| c.as_str() == code) {
                return Some(format!("this identity provider may not assert municipality {code}"));
            }
        }
        if let Some(vendor) = &claims.vendor_id {
            if !self.vendors.contains(vendor) {
                return Some(format!("this identity provider may not assert vendor {vendor}"));
            }
        }
        None
    }
}

fn role_name(role: Role) -> String {
    serde_json::to_value(role).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

pub struct Authenticator {
    keys: Vec<Key>,
    /// Providers the console offers sign-in with.
    pub sign_in: Vec<SignIn>,
}

/// Reads the host's HS256 secret, creating it (0600) on first run.
pub fn local_secret(data_dir: &Path) -> Result<Vec<u8>> {
    let path = data_dir.join("jwt-secret");
    if let Ok(existing) = std::fs::read(&path) {
        return Ok(existing);
    }
    std::fs::create_dir_all(data_dir)?;
    let mut secret = vec![0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| anyhow::anyhow!("no randomness for the secret: {e}"))?;
    let secret = hex::encode(secret).into_bytes();
    write_private(&path, &secret)?;
    Ok(secret)
}

/// Writes a new file readable only by its owner; refuses to overwrite.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(bytes)?;
    Ok(())
}

/// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
pub const LEEWAY_SECONDS: u64 = 30;

pub(crate) fn validation(algorithm: Algorithm, issuer: &str, audience: &str) -> Validation {
    let mut v = Validation::new(algorithm);
    v.set_issuer(&[issuer]);
    v.set_audience(&[audience]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    v.validate_nbf = true;
    v.leeway = LEEWAY_SECONDS;
    v
}

fn provider_algorithm(provider: &Provider) -> Result<Algorithm> {
    match provider.algorithm.as_str() {
        "RS256" => Ok(Algorithm::RS256),
        "ES256" => Ok(Algorithm::ES256),
        other => anyhow::bail!("identity provider {}: algorithm {other} is not supported (use RS256 or ES256)", provider.issuer),
    }
}

/// The provider's keys from its `pem_file` and `jwks_file`.
pub fn provider_keys(provider: &Provider) -> Result<Vec<DecodingKey>> {
    let algorithm = provider_algorithm(provider)?;
    let mut decoding = Vec::new();
    if let Some(pem) = &provider.pem_file {
        let bytes = std::fs::read(pem).with_context(|| format!("cannot read {}", pem.display()))?;
        decoding.push(match algorithm {
            Algorithm::RS256 => DecodingKey::from_rsa_pem(&bytes)?,
            _ => DecodingKey::from_ec_pem(&bytes)?,
        });
    }
    if let Some(jwks) = &provider.jwks_file {
        let text = std::fs::read_to_string(jwks).with_context(|| format!("cannot read {}", jwks.display()))?;
        let set: jsonwebtoken::jwk::JwkSet = serde_json::from_str(&text).with_context(|| format!("{} is not a JWKS document", jwks.display()))?;
        for jwk in &set.keys {
            decoding.push(DecodingKey::from_jwk(jwk)?);
        }
    }
    Ok(decoding)
}

impl Authenticator {
    pub fn new(data_dir: &Path, settings: &AuthSettings) -> Result<Self> {
        let secret = local_secret(data_dir)?;
        let mut keys = vec![Key {
            decoding: DecodingKey::from_secret(&secret),
            validation: validation(Algorithm::HS256, LOCAL_ISSUER, LOCAL_AUDIENCE),
            issuer: LOCAL_ISSUER.into(),
            label: "the host's own secret".into(),
            may_assert: None,
        }];
        for provider in &settings.providers {
            if provider.issuer == LOCAL_ISSUER || provider.issuer.contains('#') {
                anyhow::bail!("identity provider `{}`: the issuer must not be `{LOCAL_ISSUER}` (the host's own) nor contain `#`", provider.issuer);
            }
            let may_assert = Assertions::of(provider)?;
            if let Some(sign_in) = &provider.sign_in {
                sign_in.check(&provider.issuer)?;
            }
            let algorithm = provider_algorithm(provider)?;
            let decoding = provider_keys(provider)?;
            if decoding.is_empty() && provider.browser.is_none() {
                anyhow::bail!("identity provider {} has neither pem_file nor jwks_file (nor browser sign-in, whose keys may come from discovery)", provider.issuer);
            }
            for key in decoding {
                keys.push(Key {
                    decoding: key,
                    validation: validation(algorithm, &provider.issuer, &provider.audience),
                    issuer: provider.issuer.clone(),
                    label: format!("identity provider {}", provider.issuer),
                    may_assert: Some(may_assert.clone()),
                });
            }
        }
        Ok(Self { keys, sign_in: settings.providers.iter().filter_map(|p| p.sign_in.clone()).collect() })
    }

    /// Verifies a bearer token. Only keys of the algorithm the token names are tried
    /// (none for `alg: none`); the reason reported is the one from the key whose issuer the
    /// token claims, so the log says what is actually wrong.
    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| AuthError::Invalid(format!("unreadable token header: {e}")))?;
        let candidates: Vec<&Key> = self.keys.iter().filter(|k| k.validation.algorithms.contains(&header.alg)).collect();
        if candidates.is_empty() {
            return Err(AuthError::Invalid(format!("tokens signed with {:?} are not accepted here", header.alg)));
        }
        let claimed_issuer = claimed_issuer(token);
        let mut reason = None;
        for key in candidates {
            match jsonwebtoken::decode::<Claims>(token, &key.decoding, &key.validation) {
                Ok(data) => return checked(key, data.claims),
                Err(e) => {
                    let why = refusal_reason(e.kind());
                    let message = format!("{why} (checked against {})", key.label);
                    if reason.is_none() || claimed_issuer.as_deref() == Some(key.issuer.as_str()) {
                        reason = Some(message);
                    }
                }
            }
        }
        Err(AuthError::Invalid(reason.unwrap_or_default()))
    }
}

/// Why a token failed verification, in a sentence a person can act on (no library
/// internals); the names in parentheses are the stable ones the log is searched by.
pub(crate) fn refusal_reason(kind: &jsonwebtoken::errors::ErrorKind) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match kind {
        ErrorKind::ExpiredSignature => "the token has expired".into(),
        ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)".into(),
        ErrorKind::InvalidSignature => "the signature does not match (InvalidSignature)".into(),
        ErrorKind::InvalidIssuer => "the token is from another issuer (InvalidIssuer)".into(),
        ErrorKind::InvalidAudience => "the token is for another audience (InvalidAudience)".into(),
        ErrorKind::InvalidSubject => "the token's subject is not accepted (InvalidSubject)".into(),
        ErrorKind::MissingRequiredClaim(claim) => format!("the token has no `{claim}` claim"),
        ErrorKind::InvalidClaimFormat(claim) => format!("the token's `{claim}` claim is not in the expected format"),
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName | ErrorKind::MissingAlgorithm => "the token's algorithm is not the one this key uses".into(),
        ErrorKind::Json(e) => format!("the token's claims are not the platform's: {e}"),
        ErrorKind::Base64(_) | ErrorKind::Utf8(_) | ErrorKind::InvalidToken => "the token is not a well-formed JWT".into(),
        _ => "the token cannot be verified".into(),
    }
}

/// The `iss` a token claims, read without verifying (only to pick the error to report).
fn claimed_issuer(token: &str) -> Option<String> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice::<serde_json::Value>(&bytes).ok()?.get("iss")?.as_str().map(str::to_string)
}

/// The claims of a token `key` verified, checked against what its issuer may assert and
/// against the clock.
fn checked(key: &Key, claims: Claims) -> Result<Principal, AuthError> {
    verified_principal(key.may_assert.as_ref(), &key.issuer, &key.label, claims)
}

/// The principal of claims whose signature, issuer and audience were verified: checked
/// against the clock and against what the issuer may assert. Bearer tokens and the ID
/// tokens of browser sign-in both end here.
pub(crate) fn verified_principal(may_assert: Option<&Assertions>, issuer: &str, label: &str, claims: Claims) -> Result<Principal, AuthError> {
    let now = chrono::Utc::now().timestamp();
    if claims.iat > now + LEEWAY_SECONDS as i64 {
        return Err(AuthError::Invalid(format!("the token is issued in the future (iat {}, now {now}; checked against {label})", claims.iat)));
    }
    if let Some(why) = may_assert.and_then(|a| a.exceeded_by(&claims)) {
        return Err(AuthError::Invalid(format!("{why} (issuer {issuer})")));
    }
    principal(claims, issuer)
}

fn principal(claims: Claims, issuer: &str) -> Result<Principal, AuthError> {
    let lg_code = match &claims.lg_code {
        Some(code) => Some(LgCode::parse(code).map_err(|e| AuthError::Invalid(format!("lg_code claim: {e}")))?),
        None => None,
    };
    match claims.role {
        Role::Vendor if claims.vendor_id.is_none() => return Err(AuthError::Invalid("a vendor token needs a vendor_id claim".into())),
        Role::Admin | Role::Staff if lg_code.is_none() => return Err(AuthError::Invalid("admin and staff tokens need an lg_code claim".into())),
        _ => {}
    }
    // A 宛名番号 means something only in the municipality that issued it.
    let addressee_number = claims.addressee_number.filter(|n| lg_code.is_some() && !n.is_empty() && n.len() <= 15 && n.bytes().all(|b| b.is_ascii_digit()));
    // Subjects are unique per issuer only: a provider's users are `{issuer}#{sub}`, so two
    // providers' same `sub` are two people. The host's own tokens keep the bare `sub`.
    let subject = if issuer == LOCAL_ISSUER { claims.sub } else { format!("{issuer}#{}", claims.sub) };
    Ok(Principal { subject, role: claims.role, vendor_id: claims.vendor_id, lg_code, name: claims.name, addressee_number })
}

/// Mints a token with the host's local secret (for `nukisashi token mint`).
pub fn mint(data_dir: &Path, claims_without_times: Claims, ttl_seconds: i64) -> Result<String> {
    if claims_without_times.sub.contains('#') {
        anyhow::bail!("a subject must not contain `#`: it separates an identity provider's issuer from its subjects");
    }
    let secret = local_secret(data_dir)?;
    let now = chrono::Utc::now().timestamp();
    let claims = Claims { iat: now, exp: now + ttl_seconds, ..claims_without_times };
    Ok(jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(&secret))?)
}

#[cfg(test)]
mod sign_in_tests {
    use super::SignIn;

    fn sign_in(authorize: &str, token: &str) -> SignIn {
        SignIn { name: "IdP".into(), authorization_endpoint: authorize.into(), token_endpoint: token.into(), client_id: "c".into(), scope: "openid".into() }
    }

    #[test]
    fn endpoints_are_https_or_loopback_and_give_their_origin() {
        let good = sign_in("https://idp.example.lg.jp/authorize", "https://idp.example.lg.jp:8443/token");
        good.check("idp").unwrap();
        assert_eq!(good.token_origin(), "https://idp.example.lg.jp:8443");
        sign_in("http://127.0.0.1:9000/authorize", "http://localhost:9000/token").check("idp").unwrap();
        let refused = sign_in("http://idp.example.lg.jp/authorize", "https://idp.example.lg.jp/token").check("idp").unwrap_err().to_string();
        assert!(refused.contains("authorization_endpoint must be https://"), "{refused}");
        let refused = sign_in("https://idp.example.lg.jp/authorize", "token").check("idp").unwrap_err().to_string();
        assert!(refused.contains("is not a URL"), "{refused}");
    }
}
