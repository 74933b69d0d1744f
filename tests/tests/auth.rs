//! Who may do what: every bad token is refused and logged; roles stay in their lane.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use nukisashi_e2e::{Backend, Host, HostSpec, mint, problem, staged_plugin};
use reqwest::Method;
use serde_json::json;
use std::path::Path;
use std::process::Command;

const CHIYODA: &str = "131016";
const SAPPORO: &str = "011002";
const ISSUER: &str = "https://idp.example.lg.jp";
const AUDIENCE: &str = "nukisashi-chiyoda";

fn openssl(args: &[&str], dir: &Path) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl is installed");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn claims(iss: &str, aud: &str, exp_offset: i64) -> serde_json::Value {
    let now = chrono::Utc::now().timestamp();
    json!({"sub": "idp-user-1", "role": "admin", "lg_code": CHIYODA, "iss": iss, "aud": aud, "iat": now, "exp": now + exp_offset})
}

/// A host that also trusts an RS256 identity provider whose keys are in `dir`.
async fn start(dir: &Path) -> Host {
    openssl(&["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "idp.key"], dir);
    openssl(&["pkey", "-in", "idp.key", "-pubout", "-out", "idp.pub"], dir);
    let settings = format!(
        "[[auth.providers]]\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\nalgorithm = \"RS256\"\npem_file = \"{}\"\n\
         roles = [\"resident\", \"staff\", \"admin\"]\nlg_codes = [\"{CHIYODA}\"]\n",
        dir.join("idp.pub").display()
    );
    HostSpec::new(Backend::Sqlite, &dir.join("host"), &[]).await.unwrap().settings(&settings).start().unwrap()
}

async fn status_with(host: &Host, token: &str) -> reqwest::Response {
    host.send_as(token, Method::GET, &format!("/api/v1/municipalities/{CHIYODA}/subscriptions"), None).await
}

#[tokio::test]
async fn bad_tokens_are_refused_and_logged() {
    let dir = tempfile::tempdir().unwrap();
    let host = start(dir.path()).await;
    let private = std::fs::read(dir.path().join("idp.key")).unwrap();
    let public = std::fs::read(dir.path().join("idp.pub")).unwrap();
    let rs = |claims: serde_json::Value| {
        jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &EncodingKey::from_rsa_pem(&private).unwrap()).unwrap()
    };

    // Positive controls: the local admin token and the identity provider's RS256 token work.
    assert_eq!(status_with(&host, &host.token("admin", Some(CHIYODA))).await.status(), 200);
    assert_eq!(status_with(&host, &rs(claims(ISSUER, AUDIENCE, 600))).await.status(), 200);

    let other_dir = tempfile::tempdir().unwrap();
    let alg_none = format!(
        "{}.{}.",
        B64.encode(br#"{"alg":"none","typ":"JWT"}"#),
        B64.encode(claims("nukisashi", "nukisashi", 600).to_string())
    );
    // HS256 signed with the provider's *public* key as the secret: the classic confusion.
    let confused = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims(ISSUER, AUDIENCE, 600), &EncodingKey::from_secret(&public)).unwrap();
    let cases = [
        ("expired", mint(&host.data_dir, "admin", Some(CHIYODA), -1), "the token has expired"),
        ("signed by another host", mint(other_dir.path(), "admin", Some(CHIYODA), 1), "InvalidSignature"),
        ("alg none", alg_none, ""),
        ("HS/RS confusion", confused, ""),
        ("wrong issuer", rs(claims("https://evil.example", AUDIENCE, 600)), "InvalidIssuer"),
        ("wrong audience", rs(claims(ISSUER, "someone-else", 600)), "InvalidAudience"),
        ("garbage", "not.a.token".to_string(), ""),
    ];
    for (case, token, reason) in cases {
        let r = status_with(&host, &token).await;
        assert_eq!(r.status(), 401, "{case}");
        let p = problem(r).await;
        assert_eq!(p["type"], "urn:nukisashi:problem:invalid-token", "{case}");
        let detail = p["detail"].as_str().unwrap();
        assert!(detail.contains(reason), "{case}: {p}");
        assert!(!detail.contains("Error("), "{case}: the reason is a sentence, not the library's debug text: {detail}");
    }
    // A refused token says so in the challenge too (RFC 6750).
    let r = status_with(&host, "not.a.token").await;
    let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_string();
    assert!(challenge.starts_with("Bearer realm=\"nukisashi\", error=\"invalid_token\""), "{challenge}");
    let r = host.get(&format!("/api/v1/municipalities/{CHIYODA}/subscriptions")).await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"nukisashi\"");
    let log = host.log();
    let failed_logins = log.lines().filter(|l| l.contains("failed login")).count();
    assert!(failed_logins >= 7, "every refused token is logged with its reason:\n{log}");
    assert!(log.contains("the token has expired"));
}

#[tokio::test]
async fn roles_stay_in_their_lane_and_refusals_are_logged() {
    let dir = tempfile::tempdir().unwrap();
    let host = HostSpec::new(Backend::Sqlite, dir.path(), &[]).await.unwrap().start().unwrap();
    let sapporo_admin = host.token("admin", Some("011002"));
    let chiyoda_staff = host.token("staff", Some(CHIYODA));
    let vendor = host.token("vendor", Some("acme"));
    let resident = host.token("resident", None);
    let checks = [
        (&sapporo_admin, Method::GET, format!("/api/v1/municipalities/{CHIYODA}/subscriptions"), None),
        (&sapporo_admin, Method::PUT, format!("/api/v1/municipalities/{CHIYODA}/subscriptions/guestbook"), Some(json!({"grants": []}))),
        (&chiyoda_staff, Method::PUT, format!("/api/v1/municipalities/{CHIYODA}/subscriptions/guestbook"), Some(json!({"grants": []}))),
        (&vendor, Method::POST, "/api/v1/modules/guestbook/swap".to_string(), Some(json!({"version": "1.0.0"}))),
        (&resident, Method::GET, "/api/v1/reviews".to_string(), None),
        (&vendor, Method::POST, "/api/v1/vendors".to_string(), Some(json!({"id": "x", "name": "x", "public_key": "x"}))),
    ];
    for (token, method, path, body) in checks {
        let r = host.send_as(token, method.clone(), &path, body.as_ref()).await;
        assert_eq!(r.status(), 403, "{method} {path}");
        assert_eq!(problem(r).await["type"], "urn:nukisashi:problem:forbidden");
    }
    let log = host.log();
    assert!(log.lines().filter(|l| l.contains("refused authorization")).count() >= 6, "{log}");
}

#[tokio::test]
async fn jwks_identity_provider_tokens_are_accepted_and_others_refused() {
    let dir = tempfile::tempdir().unwrap();
    let jwk_for = |name: &str| -> serde_json::Value {
        openssl(&["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", &format!("{name}.key")], dir.path());
        openssl(&["pkey", "-in", &format!("{name}.key"), "-pubout", "-outform", "DER", "-out", &format!("{name}.der")], dir.path());
        // A P-256 SubjectPublicKeyInfo ends with the uncompressed point's x and y.
        let der = std::fs::read(dir.path().join(format!("{name}.der"))).unwrap();
        let (x, y) = der[der.len() - 64..].split_at(32);
        json!({"kty": "EC", "crv": "P-256", "x": B64.encode(x), "y": B64.encode(y), "alg": "ES256", "use": "sig", "kid": name})
    };
    let trusted = jwk_for("trusted");
    let _stranger = jwk_for("stranger");
    std::fs::write(dir.path().join("jwks.json"), json!({"keys": [trusted]}).to_string()).unwrap();
    let settings = format!(
        "[[auth.providers]]\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\nalgorithm = \"ES256\"\njwks_file = \"{}\"\nroles = [\"admin\"]\nlg_codes = [\"{CHIYODA}\"]\n",
        dir.path().join("jwks.json").display()
    );
    let host = HostSpec::new(Backend::Sqlite, &dir.path().join("host"), &[]).await.unwrap().settings(&settings).start().unwrap();
    let es = |key: &str| {
        let pem = std::fs::read(dir.path().join(format!("{key}.key"))).unwrap();
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(key.to_string());
        jsonwebtoken::encode(&header, &claims(ISSUER, AUDIENCE, 600), &EncodingKey::from_ec_pem(&pem).unwrap()).unwrap()
    };
    assert_eq!(status_with(&host, &es("trusted")).await.status(), 200);
    let r = status_with(&host, &es("stranger")).await;
    assert_eq!(r.status(), 401);
    assert!(problem(r).await["detail"].as_str().unwrap().contains("InvalidSignature"));
}

/// The fault fixture, whose `/whoami` says who the `identity` interface reports, with a
/// staff-only `/echo/staff`.
const FIXTURE: &str = r#"id = "fault-fixture"
version = "1.0.0"
vendor = "local"
category = "test"
name = { ja = "試験", en = "Fixture" }
description = "whoami"
wit_major = 1
routes = [{ path = "/", auth = "public" }, { path = "/echo/staff", auth = "staff" }]
"#;

const OTHER_ISSUER: &str = "https://idp-b.example.jp";

#[tokio::test]
async fn identities_cannot_be_confused() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["a", "b"] {
        openssl(&["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", &format!("{name}.key")], dir.path());
        openssl(&["pkey", "-in", &format!("{name}.key"), "-pubout", "-out", &format!("{name}.pub")], dir.path());
    }
    // 千代田区's own sign-in for its residents, staff and admins; a second provider that
    // may vouch for 千代田区's residents only.
    let settings = format!(
        "[[auth.providers]]\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\nalgorithm = \"RS256\"\npem_file = \"{}\"\nroles = [\"resident\", \"staff\", \"admin\"]\nlg_codes = [\"{CHIYODA}\"]\n\
         [[auth.providers]]\nissuer = \"{OTHER_ISSUER}\"\naudience = \"{AUDIENCE}\"\nalgorithm = \"RS256\"\npem_file = \"{}\"\nroles = [\"resident\"]\nlg_codes = [\"{CHIYODA}\"]\n",
        dir.path().join("a.pub").display(),
        dir.path().join("b.pub").display()
    );
    let mut spec = HostSpec::new(Backend::Sqlite, &dir.path().join("host"), &[]).await.unwrap().settings(&settings);
    spec.plugins = vec![staged_plugin(dir.path(), "fault-fixture", "fault-fixture", FIXTURE)];
    let host = spec.start().unwrap();
    let sign = |key: &str, claims: &serde_json::Value| {
        let pem = std::fs::read(dir.path().join(format!("{key}.key"))).unwrap();
        jsonwebtoken::encode(&Header::new(Algorithm::RS256), claims, &EncodingKey::from_rsa_pem(&pem).unwrap()).unwrap()
    };
    let now = chrono::Utc::now().timestamp();
    let token = |iss: &str, role: &str, lg: Option<&str>, sub: &str| {
        let mut c = json!({"sub": sub, "role": role, "iss": iss, "aud": AUDIENCE, "iat": now, "exp": now + 600});
        if let Some(lg) = lg {
            c["lg_code"] = json!(lg);
        }
        c
    };
    let whoami = |token: Option<String>, path: &'static str| {
        let host = &host;
        async move {
            let mut request = host.client.get(host.url(&format!("/{CHIYODA}/fault-fixture{path}")));
            if let Some(t) = token {
                request = request.bearer_auth(t);
            }
            let r = request.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<serde_json::Value>().await.unwrap())
        }
    };

    // Positive control: 千代田区's provider signs in 千代田区's staff.
    let (status, me) = whoami(Some(sign("a", &token(ISSUER, "staff", Some(CHIYODA), "clerk-1"))), "/echo/staff/whoami").await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["role"], "staff");

    // A provider asserting more than it may is refused, with the reason, and logged.
    let local_secret = std::fs::read(host.data_dir.join("jwt-secret")).unwrap();
    let hs = |claims: &serde_json::Value| jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(&local_secret)).unwrap();
    let day = 86_400;
    let mut not_yet = token(ISSUER, "resident", Some(CHIYODA), "early");
    not_yet["nbf"] = json!(now + day);
    let mut from_the_future = token(ISSUER, "resident", Some(CHIYODA), "early");
    from_the_future["iat"] = json!(now + day);
    let mut local_not_yet = token("nukisashi", "operator", None, "early");
    local_not_yet["aud"] = json!("nukisashi");
    local_not_yet["nbf"] = json!(now + day);
    let mut local_future = local_not_yet.clone();
    local_future.as_object_mut().unwrap().remove("nbf");
    local_future["iat"] = json!(now + day);
    let refused = [
        ("operator from a municipality's provider", sign("a", &token(ISSUER, "operator", None, "mallory")), "may not assert role operator"),
        ("another municipality's admin", sign("a", &token(ISSUER, "admin", Some(SAPPORO), "mallory")), "may not assert municipality 011002"),
        ("staff from a residents-only provider", sign("b", &token(OTHER_ISSUER, "staff", Some(CHIYODA), "mallory")), "may not assert role staff"),
        ("vendor from a municipality's provider", sign("a", &json!({"sub": "m", "role": "vendor", "vendor_id": "acme", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 600})), "may not assert role vendor"),
        ("nbf a day ahead", sign("a", &not_yet), "not valid yet (nbf)"),
        ("iat a day ahead", sign("a", &from_the_future), "issued in the future"),
        ("the host's own token, nbf a day ahead", hs(&local_not_yet), "not valid yet (nbf)"),
        ("the host's own token, iat a day ahead", hs(&local_future), "issued in the future"),
    ];
    for (case, token, reason) in refused {
        let (status, body) = whoami(Some(token), "/whoami").await;
        assert_eq!(status, 401, "{case}: {body}");
        assert!(body["detail"].as_str().unwrap().contains(reason), "{case}: {body}");
        assert!(host.log().contains(reason), "{case} is logged with its reason");
    }

    // Two providers, the same `sub`: two people.
    let (_, via_a) = whoami(Some(sign("a", &token(ISSUER, "resident", Some(CHIYODA), "user-1"))), "/whoami").await;
    let (_, via_b) = whoami(Some(sign("b", &token(OTHER_ISSUER, "resident", Some(CHIYODA), "user-1"))), "/whoami").await;
    assert_eq!(via_a["subject"], format!("{ISSUER}#user-1"));
    assert_eq!(via_b["subject"], format!("{OTHER_ISSUER}#user-1"));

    // 札幌市's staff on 千代田区's module: refused on a staff route, anonymous elsewhere.
    let sapporo_staff = host.token("staff", Some(SAPPORO));
    let (status, _) = whoami(Some(sapporo_staff.clone()), "/echo/staff/whoami").await;
    assert_eq!(status, 403);
    let (status, me) = whoami(Some(sapporo_staff), "/whoami").await;
    assert_eq!(status, 200);
    assert_eq!(me, json!({"subject": null, "role": "anonymous", "addressee_number": null}));
    let log = host.log();
    assert!(log.contains("refused module route") && log.contains("caller treated as anonymous in this municipality"), "{log}");
}
