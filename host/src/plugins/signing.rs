//! Vendor signatures: Ed25519 over the component's digest and the manifest's digest.
//!
//! The signed message is `nukisashi-publish-v1\n<sha256(component) hex>\n<sha256(manifest) hex>\n`,
//! so neither the bytes nor the manifest (capabilities, routes) can be changed after
//! signing. Keys and signatures travel as standard base64.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

pub fn message(component: &[u8], manifest: &[u8]) -> Vec<u8> {
    format!(
        "nukisashi-publish-v1\n{}\n{}\n",
        hex::encode(Sha256::digest(component)),
        hex::encode(Sha256::digest(manifest))
    )
    .into_bytes()
}

/// A new signing key; returns (private key base64, public key base64).
pub fn generate() -> Result<(String, String), String> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| format!("no randomness: {e}"))?;
    let key = SigningKey::from_bytes(&seed);
    Ok((BASE64.encode(key.to_bytes()), BASE64.encode(key.verifying_key().to_bytes())))
}

pub fn sign(private_key: &str, component: &[u8], manifest: &[u8]) -> Result<String, String> {
    let bytes: [u8; 32] = BASE64
        .decode(private_key.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or("the private key is not 32 bytes of base64")?;
    let key = SigningKey::from_bytes(&bytes);
    Ok(BASE64.encode(key.sign(&message(component, manifest)).to_bytes()))
}

/// Parses a public key as the operator registers it.
pub fn parse_public_key(public_key: &str) -> Result<VerifyingKey, String> {
    let bytes: [u8; 32] = BASE64
        .decode(public_key.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or("a vendor public key is 32 bytes of base64")?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| format!("not an Ed25519 public key: {e}"))
}

pub fn verify(public_key: &str, signature: &str, component: &[u8], manifest: &[u8]) -> Result<(), String> {
    let key = parse_public_key(public_key)?;
    let bytes: [u8; 64] = BASE64
        .decode(signature.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or("the signature is not 64 bytes of base64")?;
    key.verify(&message(component, manifest), &Signature::from_bytes(&bytes))
        .map_err(|_| "the signature does not match this component and manifest for the vendor's registered key".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_bind_bytes_and_manifest() {
        let (private, public) = generate().unwrap();
        let sig = sign(&private, b"component", b"manifest").unwrap();
        assert!(verify(&public, &sig, b"component", b"manifest").is_ok());
        assert!(verify(&public, &sig, b"componenT", b"manifest").is_err());
        assert!(verify(&public, &sig, b"component", b"manifesT").is_err());
        let (_, other) = generate().unwrap();
        assert!(verify(&other, &sig, b"component", b"manifest").is_err());
        assert!(verify(&public, "bm90IGEgc2lnbmF0dXJl", b"component", b"manifest").unwrap_err().contains("64 bytes"));
    }
}
