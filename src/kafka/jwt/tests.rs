use super::*;

const SECRET: &str = "a shared secret of at least 32 bytes";
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/jwt");

fn config() -> OAuthBearerConfig {
    OAuthBearerConfig {
        issuer: "https://idp.example".into(),
        audience: "blink".into(),
        hs256_secret: SECRET.into(),
        rs256_public_keys: vec![fixture("idp.pub.pem")],
        principal_claim: String::new(),
        clock_skew_s: 30,
    }
}

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(FIXTURES).join(name)
}

fn validator() -> TokenValidator {
    TokenValidator::from_config(&config()).unwrap()
}

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(2_000_000_000)
}

/// A token with `claims`, signed with `alg` (HS256 with [`SECRET`], RS256 with the fixture
/// key named `rsa_key`, or anything else unsigned).
fn mint(alg: &str, rsa_key: &str, claims: serde_json::Value) -> String {
    let header = serde_json::json!({"alg": alg, "typ": "JWT"});
    let input = format!(
        "{}.{}",
        B64URL.encode(header.to_string()),
        B64URL.encode(claims.to_string())
    );
    let signature = match alg {
        "HS256" => hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, SECRET.as_bytes()),
            input.as_bytes(),
        )
        .as_ref()
        .to_vec(),
        "RS256" => {
            let pk8 = std::fs::read(format!("{FIXTURES}/{rsa_key}.pk8")).unwrap();
            let key = signature::RsaKeyPair::from_pkcs8(&pk8).unwrap();
            let mut out = vec![0; key.public().modulus_len()];
            key.sign(
                &signature::RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                input.as_bytes(),
                &mut out,
            )
            .unwrap();
            out
        }
        _ => Vec::new(),
    };
    format!("{input}.{}", B64URL.encode(signature))
}

fn good_claims() -> serde_json::Value {
    serde_json::json!({"sub": "fluentbit", "iss": "https://idp.example", "aud": "blink", "exp": 2_000_000_600u64})
}

#[test]
fn hs256_and_rs256_tokens_name_their_principal() {
    let v = validator();
    for alg in ["HS256", "RS256"] {
        let claims = v.validate(&mint(alg, "idp", good_claims()), now()).unwrap();
        assert_eq!(claims.principal, "User:fluentbit");
        assert_eq!(
            claims.expires,
            UNIX_EPOCH + Duration::from_secs(2_000_000_630)
        );
    }
    let mut c = good_claims();
    c["aud"] = serde_json::json!(["other", "blink"]);
    c["email"] = serde_json::json!("fb@example.com");
    assert!(
        v.validate(&mint("RS256", "idp", c.clone()), now()).is_ok(),
        "an audience list"
    );
    let mut by_email = config();
    by_email.principal_claim = "email".into();
    let v2 = TokenValidator::from_config(&by_email).unwrap();
    assert_eq!(
        v2.validate(&mint("HS256", "", c), now()).unwrap().principal,
        "User:fb@example.com"
    );
}

#[test]
fn forged_expired_and_foreign_tokens_are_refused_with_a_reason() {
    let v = validator();
    let with = |change: &dyn Fn(&mut serde_json::Value)| {
        let mut c = good_claims();
        change(&mut c);
        c
    };
    let cases: Vec<(String, &str)> = vec![
        (mint("RS256", "other", good_claims()), "does not verify"),
        (mint("none", "", good_claims()), "\"none\" is not accepted"),
        (mint("HS512", "", good_claims()), "not accepted"),
        (
            mint("HS256", "", with(&|c| c["exp"] = 1_999_999_000u64.into())),
            "expired",
        ),
        (
            mint(
                "HS256",
                "",
                with(&|c| {
                    c.as_object_mut().unwrap().remove("exp");
                }),
            ),
            "no expiry",
        ),
        (
            mint("HS256", "", with(&|c| c["exp"] = "soon".into())),
            "not a time",
        ),
        (
            mint("HS256", "", with(&|c| c["nbf"] = 2_000_000_500u64.into())),
            "not valid yet",
        ),
        (
            mint(
                "HS256",
                "",
                with(&|c| c["iss"] = "https://evil.example".into()),
            ),
            "issuer",
        ),
        (
            mint("HS256", "", with(&|c| c["aud"] = "someone-else".into())),
            "audience",
        ),
        (
            mint(
                "HS256",
                "",
                with(&|c| {
                    c.as_object_mut().unwrap().remove("aud");
                }),
            ),
            "audience",
        ),
        (mint("HS256", "", with(&|c| c["sub"] = "".into())), "`sub`"),
        ("a.b".into(), "not a signed JWT"),
        ("!!.e30.e30".into(), "header is not base64url"),
        (format!("{}.x", "a".repeat(MAX_TOKEN_BYTES)), "longer than"),
    ];
    for (token, reason) in cases {
        let e = v.validate(&token, now()).unwrap_err();
        assert!(e.contains(reason), "{reason}: {e}");
    }
    // A payload changed after signing.
    let token = mint("HS256", "", good_claims());
    let parts: Vec<&str> = token.split('.').collect();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        B64URL.encode(with(&|c| c["sub"] = "admin".into()).to_string()),
        parts[2]
    );
    assert!(
        v.validate(&forged, now())
            .unwrap_err()
            .contains("does not verify")
    );
    // Within the clock skew, an expired token still passes; beyond it, not.
    let token = mint("HS256", "", with(&|c| c["exp"] = 1_999_999_980u64.into()));
    assert!(v.validate(&token, now()).is_ok());
    assert!(v.validate(&token, now() + Duration::from_secs(11)).is_err());
}

#[test]
fn keys_and_settings_are_checked_at_start() {
    let mut pkcs1 = config();
    pkcs1.rs256_public_keys = vec![fixture("idp.pkcs1.pem")];
    let v = TokenValidator::from_config(&pkcs1).unwrap();
    assert!(
        v.validate(&mint("RS256", "idp", good_claims()), now())
            .is_ok()
    );
    type Change = Box<dyn Fn(&mut OAuthBearerConfig)>;
    let cases: Vec<(Change, &str)> = vec![
        (Box::new(|c| c.issuer.clear()), "issuer"),
        (Box::new(|c| c.audience.clear()), "audience"),
        (Box::new(|c| c.hs256_secret = "short".into()), "32 bytes"),
        (
            Box::new(|c| {
                c.hs256_secret.clear();
                c.rs256_public_keys.clear();
            }),
            "no key",
        ),
        (
            Box::new(|c| c.rs256_public_keys = vec![fixture("missing.pem")]),
            "missing.pem",
        ),
        (
            Box::new(|c| c.rs256_public_keys = vec![fixture("README.md")]),
            "no PEM block",
        ),
    ];
    for (change, expected) in cases {
        let mut c = config();
        change(&mut c);
        let e = TokenValidator::from_config(&c).unwrap_err();
        assert!(
            e.contains(expected) && e.contains("[kafka.oauthbearer]"),
            "{expected}: {e}"
        );
    }
    assert!(
        !format!("{v:?}").contains(SECRET),
        "the secret is not printed"
    );
}

#[test]
fn der_lengths_beyond_the_input_are_refused() {
    assert_eq!(der_element(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
    assert_eq!(der_element(&[0x30, 0x05, 1, 2]), None);
    assert_eq!(der_element(&[0x30, 0x80]), None);
    assert_eq!(
        der_element(&[0x30, 0x81, 0x01, 7, 9]),
        Some((0x30, &[7u8][..], &[9u8][..]))
    );
    assert_eq!(spki_rsa_key(&[0x30, 0x00]), None);
}
