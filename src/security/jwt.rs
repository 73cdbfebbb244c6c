//! HS256 JSON Web Tokens (RFC 7519), only as much as internal authentication needs: a subject and
//! an expiry, signed with one key. Pure: the caller passes the time, nothing here does I/O.
//!
//! The token format is the one Presto's and Trino's nodes exchange in `X-Presto-Internal-Bearer`
//! (HS256, the key being SHA-256 of the shared secret, the node id as `sub`, `exp` in seconds), so
//! a token any JWT library writes with those claims verifies here.
//!
//! Verification refuses before it parses anything it does not need: an oversized token, an
//! algorithm other than HS256 (`none` above all), then a bad signature (compared in constant time
//! by `hmac`), and only then reads the claims.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A token longer than this is refused unread (ours are about 150 bytes).
pub const TOKEN_BYTES_MAX: usize = 4_096;
/// A subject (node id) longer than this is refused.
pub const SUBJECT_BYTES_MAX: usize = 256;

type HmacSha256 = Hmac<Sha256>;

/// The signing key: SHA-256 of the shared secret, as Presto derives it.
#[derive(Clone)]
pub struct Key([u8; 32]);

impl Key {
    pub fn from_secret(secret: &str) -> Key {
        Key(Sha256::digest(secret.as_bytes()).into())
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes keys of any length; this cannot fail.
        HmacSha256::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!("HMAC accepts any key length"))
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Key(redacted)")
    }
}

/// Why a token was refused. [`TokenError::label`] is the bounded metric label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not three base64url parts of at most {TOKEN_BYTES_MAX} bytes")]
    Malformed,
    #[error("the token's algorithm is {0:?}; only HS256 is accepted")]
    Algorithm(String),
    #[error("the token's signature does not match (another shared secret?)")]
    Signature,
    #[error("the token's claims are invalid: {0}")]
    Claims(String),
    #[error("the token expired {0} s ago")]
    Expired(u64),
    #[error("the token expires {0} s from now, later than any token a node issues")]
    TooLong(u64),
}

impl TokenError {
    pub fn label(&self) -> &'static str {
        match self {
            TokenError::Malformed => "malformed",
            TokenError::Algorithm(_) => "algorithm",
            TokenError::Signature => "signature",
            TokenError::Claims(_) => "claims",
            TokenError::Expired(_) => "expired",
            TokenError::TooLong(_) => "too_long",
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
}

/// Signs a token for `subject` that expires at `expires_at_s` (seconds since the epoch).
pub fn sign(key: &Key, subject: &str, expires_at_s: u64) -> String {
    let header = Header { alg: "HS256".into(), typ: Some("JWT".into()) };
    let claims = Claims { sub: subject.to_string(), exp: expires_at_s };
    // Serializing two plain structs cannot fail.
    let encode = |value: &[u8]| URL_SAFE_NO_PAD.encode(value);
    let header = encode(&serde_json::to_vec(&header).unwrap_or_default());
    let claims = encode(&serde_json::to_vec(&claims).unwrap_or_default());
    let signing_input = format!("{header}.{claims}");
    let mut mac = key.mac();
    mac.update(signing_input.as_bytes());
    let signature = encode(&mac.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

/// Verifies `token` at `now_s` and returns its subject.
///
/// `leeway_s` absorbs clock skew between nodes both ways: a token is accepted until `leeway_s`
/// after its expiry, and refused if it expires later than `lifetime_max_s + leeway_s` from now
/// (no node issues such a token; a leaked one would otherwise be good for years).
pub fn verify(key: &Key, token: &str, now_s: u64, lifetime_max_s: u64, leeway_s: u64) -> Result<String, TokenError> {
    if token.len() > TOKEN_BYTES_MAX {
        return Err(TokenError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(header), Some(claims), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(TokenError::Malformed);
    };
    let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).map_err(|_| TokenError::Malformed);
    let header: Header = serde_json::from_slice(&decode(header)?).map_err(|_| TokenError::Malformed)?;
    if header.alg != "HS256" {
        return Err(TokenError::Algorithm(header.alg.chars().take(32).collect()));
    }
    let signing_input_len = token.len() - signature.len() - 1;
    let mut mac = key.mac();
    mac.update(&token.as_bytes()[..signing_input_len]);
    mac.verify_slice(&decode(signature)?).map_err(|_| TokenError::Signature)?;
    let claims: Claims = serde_json::from_slice(&decode(claims)?).map_err(|error| TokenError::Claims(error.to_string()))?;
    if claims.sub.is_empty() || claims.sub.len() > SUBJECT_BYTES_MAX {
        return Err(TokenError::Claims(format!("the subject must be 1 to {SUBJECT_BYTES_MAX} bytes")));
    }
    if now_s > claims.exp.saturating_add(leeway_s) {
        return Err(TokenError::Expired(now_s - claims.exp));
    }
    if claims.exp > now_s.saturating_add(lifetime_max_s).saturating_add(leeway_s) {
        return Err(TokenError::TooLong(claims.exp - now_s));
    }
    Ok(claims.sub)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW_S: u64 = 1_800_000_000;

    fn key() -> Key {
        Key::from_secret("correct horse battery staple")
    }

    fn check(token: &str) -> Result<String, TokenError> {
        verify(&key(), token, NOW_S, 300, 120)
    }

    #[test]
    fn a_signed_token_verifies_and_names_its_subject() {
        let token = sign(&key(), "worker-1", NOW_S + 300);
        assert_eq!(check(&token), Ok("worker-1".to_string()));
    }

    /// Known answer, computed independently with Python's `hmac`, `hashlib` and `base64`:
    /// key = sha256(b"correct horse battery staple"), header {"alg":"HS256","typ":"JWT"},
    /// claims {"sub":"worker-1","exp":1800000300}.
    #[test]
    fn the_signature_matches_an_independent_implementation() {
        let token = sign(&key(), "worker-1", NOW_S + 300);
        assert_eq!(
            token,
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ3b3JrZXItMSIsImV4cCI6MTgwMDAwMDMwMH0.\
             s8-IL4c5sjtMe1rdeNxQMe1SZPUYs7VKxda6BwTIGyk"
        );
    }

    #[test]
    fn another_secret_or_a_changed_claim_is_refused() {
        let foreign = sign(&Key::from_secret("another secret"), "worker-1", NOW_S + 300);
        assert_eq!(check(&foreign), Err(TokenError::Signature));
        let token = sign(&key(), "worker-1", NOW_S + 300);
        let parts: Vec<&str> = token.split('.').collect();
        let forged_claims = URL_SAFE_NO_PAD.encode(br#"{"sub":"rm-9","exp":1800000300}"#);
        let forged = format!("{}.{forged_claims}.{}", parts[0], parts[2]);
        assert_eq!(check(&forged), Err(TokenError::Signature));
    }

    #[test]
    fn the_none_algorithm_and_garbage_are_refused() {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
        let claims = URL_SAFE_NO_PAD.encode(br#"{"sub":"rm-9","exp":1800000300}"#);
        assert_eq!(check(&format!("{header}.{claims}.")), Err(TokenError::Algorithm("none".into())));
        for garbage in ["", "a.b", "a.b.c.d", "!!.!!.!!", &"a".repeat(TOKEN_BYTES_MAX + 1)] {
            assert_eq!(check(garbage), Err(TokenError::Malformed), "{garbage:.20}");
        }
    }

    #[test]
    fn expiry_is_enforced_with_leeway_both_ways() {
        assert!(check(&sign(&key(), "c", NOW_S - 100)).is_ok(), "within the leeway");
        assert_eq!(check(&sign(&key(), "c", NOW_S - 121)), Err(TokenError::Expired(121)));
        assert!(check(&sign(&key(), "c", NOW_S + 420)).is_ok(), "a clock 2 min ahead");
        assert_eq!(check(&sign(&key(), "c", NOW_S + 10_000)), Err(TokenError::TooLong(10_000)));
        assert!(matches!(check(&sign(&key(), "", NOW_S)), Err(TokenError::Claims(_))));
    }
}
