//! Checking the JSON Web Tokens that SASL/OAUTHBEARER clients present (RFC 7519, RFC 7515):
//! HS256 with a shared secret, RS256 with an identity provider's RSA public keys.
//!
//! A token is accepted only if its signature verifies with a configured key of the algorithm
//! its header names (`none` and every other algorithm are refused), it has not expired (`exp`
//! is required), it is already valid (`nbf`), and its issuer (`iss`) and audience (`aud`) are
//! the configured ones; the principal is `User:` + its `sub` claim (or the configured claim).
//! Everything is bounded by the token's size, at most [`MAX_TOKEN_BYTES`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use ring::{hmac, signature};

use crate::config::OAuthBearerConfig;

/// The largest token accepted: IdP tokens are a few hundred bytes to a few kilobytes.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// `User:` + the principal claim.
    pub principal: String,
    /// When the token stops being accepted: its `exp` plus the clock skew allowed.
    pub expires: SystemTime,
}

/// The keys and checks of `[kafka.oauthbearer]`.
pub struct TokenValidator {
    issuer: String,
    audience: String,
    principal_claim: String,
    clock_skew: Duration,
    hs256: Option<hmac::Key>,
    rs256: Vec<signature::UnparsedPublicKey<Vec<u8>>>,
}

impl std::fmt::Debug for TokenValidator {
    // The secret is never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenValidator")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("hs256", &self.hs256.is_some())
            .field("rs256_keys", &self.rs256.len())
            .finish()
    }
}

impl TokenValidator {
    /// The validator `config` describes (key files are read now). The error names the setting
    /// or key file at fault.
    pub fn from_config(config: &OAuthBearerConfig) -> Result<Self, String> {
        let fail = |what: &str, why: &str| format!("[kafka.oauthbearer] {what}: {why}");
        if config.issuer.is_empty() || config.audience.is_empty() {
            return Err(fail(
                "issuer, audience",
                "both are required: a token is accepted only from your identity provider, for Blink",
            ));
        }
        if config.hs256_secret.is_empty() && config.rs256_public_keys.is_empty() {
            return Err(fail(
                "hs256_secret, rs256_public_keys",
                "no key: set a shared secret (HS256) or RSA public key files (RS256)",
            ));
        }
        if !config.hs256_secret.is_empty() && config.hs256_secret.len() < 32 {
            return Err(fail(
                "hs256_secret",
                "must be at least 32 bytes (RFC 7518 asks for a key as long as the hash)",
            ));
        }
        let hs256 = (!config.hs256_secret.is_empty())
            .then(|| hmac::Key::new(hmac::HMAC_SHA256, config.hs256_secret.as_bytes()));
        let rs256 = config
            .rs256_public_keys
            .iter()
            .map(|path| {
                let pem = std::fs::read_to_string(path)
                    .map_err(|e| fail("rs256_public_keys", &format!("{}: {e}", path.display())))?;
                let der = rsa_public_key(&pem)
                    .map_err(|e| fail("rs256_public_keys", &format!("{}: {e}", path.display())))?;
                Ok(signature::UnparsedPublicKey::new(
                    &signature::RSA_PKCS1_2048_8192_SHA256,
                    der,
                ))
            })
            .collect::<Result<_, String>>()?;
        Ok(TokenValidator {
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            principal_claim: if config.principal_claim.is_empty() {
                "sub".into()
            } else {
                config.principal_claim.clone()
            },
            clock_skew: Duration::from_secs(config.clock_skew_s),
            hs256,
            rs256,
        })
    }

    /// Checks `token` at time `now`; the error says why it is refused (without the token).
    pub fn validate(&self, token: &str, now: SystemTime) -> Result<Claims, String> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(format!("the token is longer than {MAX_TOKEN_BYTES} bytes"));
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("not a signed JWT (header.payload.signature)".into());
        };
        let header: serde_json::Value = decode_part(header, "header")?;
        let signature = B64URL
            .decode(sig)
            .map_err(|_| "the signature is not base64url".to_string())?;
        let signed = &token[..token.len() - sig.len() - 1];
        match header.get("alg").and_then(|a| a.as_str()) {
            Some("HS256") => {
                let key = self.hs256.as_ref().ok_or("HS256 tokens are not accepted")?;
                hmac::verify(key, signed.as_bytes(), &signature)
                    .map_err(|_| "the signature does not verify".to_string())?;
            }
            Some("RS256") => {
                if self.rs256.is_empty() {
                    return Err("RS256 tokens are not accepted".into());
                }
                // Every configured key is tried, so keys can be rotated by listing both.
                if !self
                    .rs256
                    .iter()
                    .any(|key| key.verify(signed.as_bytes(), &signature).is_ok())
                {
                    return Err("the signature does not verify".into());
                }
            }
            Some(other) => return Err(format!("algorithm {other:?} is not accepted")),
            None => return Err("the header names no algorithm".into()),
        }
        let claims: serde_json::Value = decode_part(payload, "payload")?;
        let time = |name: &str| -> Result<Option<SystemTime>, String> {
            match claims.get(name) {
                None => Ok(None),
                Some(v) => v
                    .as_f64()
                    .filter(|t| t.is_finite() && *t >= 0.0 && *t < 1e11)
                    .map(|t| Some(UNIX_EPOCH + Duration::from_secs_f64(t)))
                    .ok_or_else(|| format!("`{name}` is not a time")),
            }
        };
        let expires = time("exp")?.ok_or("the token has no expiry (`exp`)")?;
        if expires + self.clock_skew <= now {
            return Err("the token has expired".into());
        }
        if let Some(not_before) = time("nbf")?
            && now + self.clock_skew < not_before
        {
            return Err("the token is not valid yet (`nbf`)".into());
        }
        if claims.get("iss").and_then(|i| i.as_str()) != Some(self.issuer.as_str()) {
            return Err("the issuer (`iss`) is not the configured one".into());
        }
        let audience_matches = match claims.get("aud") {
            Some(serde_json::Value::String(a)) => *a == self.audience,
            Some(serde_json::Value::Array(list)) => {
                list.iter().any(|a| a.as_str() == Some(&self.audience))
            }
            _ => false,
        };
        if !audience_matches {
            return Err("the audience (`aud`) does not include Blink's".into());
        }
        let name = claims
            .get(&self.principal_claim)
            .and_then(|s| s.as_str())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("the token has no `{}` claim", self.principal_claim))?;
        Ok(Claims {
            principal: format!("User:{name}"),
            expires: expires + self.clock_skew,
        })
    }
}

fn decode_part(part: &str, what: &str) -> Result<serde_json::Value, String> {
    let bytes = B64URL
        .decode(part)
        .map_err(|_| format!("the {what} is not base64url"))?;
    serde_json::from_slice(&bytes).map_err(|_| format!("the {what} is not JSON"))
}

/// The PKCS#1 RSAPublicKey ring verifies with, from a PEM `PUBLIC KEY` (SubjectPublicKeyInfo,
/// what IdPs and `openssl rsa -pubout` give) or `RSA PUBLIC KEY` (PKCS#1).
fn rsa_public_key(pem: &str) -> Result<Vec<u8>, String> {
    let label = pem
        .lines()
        .find_map(|l| l.trim().strip_prefix("-----BEGIN "))
        .and_then(|l| l.strip_suffix("-----"))
        .ok_or("no PEM block (-----BEGIN PUBLIC KEY-----)")?;
    let body: String = pem
        .lines()
        .map(str::trim)
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    let der = B64
        .decode(body)
        .map_err(|_| "the PEM block is not base64".to_string())?;
    match label {
        "RSA PUBLIC KEY" => Ok(der),
        "PUBLIC KEY" => spki_rsa_key(&der).ok_or_else(|| "not an RSA public key".to_string()),
        other => Err(format!("a PEM {other:?} is not a public key")),
    }
}

/// RSA's algorithm identifier, 1.2.840.113549.1.1.1, as DER.
const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

/// The RSAPublicKey inside a SubjectPublicKeyInfo:
/// SEQUENCE { SEQUENCE { OID rsaEncryption, NULL }, BIT STRING { 0, RSAPublicKey } }.
fn spki_rsa_key(der: &[u8]) -> Option<Vec<u8>> {
    let (0x30, spki, _) = der_element(der)? else {
        return None;
    };
    let (0x30, algorithm, rest) = der_element(spki)? else {
        return None;
    };
    let (0x06, oid, _) = der_element(algorithm)? else {
        return None;
    };
    if oid != RSA_ENCRYPTION {
        return None;
    }
    let (0x03, bits, _) = der_element(rest)? else {
        return None;
    };
    let (&0, key) = bits.split_first()? else {
        return None;
    };
    Some(key.to_vec())
}

/// One DER element: its tag, its contents and what follows it.
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        first as usize
    } else {
        let count = (first & 0x7f) as usize;
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let len = rest[..count]
            .iter()
            .fold(0usize, |n, &b| (n << 8) | b as usize);
        rest = &rest[count..];
        len
    };
    (len <= rest.len()).then(|| (tag, &rest[..len], &rest[len..]))
}

#[cfg(test)]
mod tests;
