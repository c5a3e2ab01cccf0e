use super::*;

/// RFC 7677's example exchange (SCRAM-SHA-256, user "user", password "pencil").
const SERVER_FIRST: &str =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
const CLIENT_FINAL_WITHOUT_PROOF: &str =
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";

#[test]
fn the_stored_keys_reproduce_rfc_7677s_exchange() {
    let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
    let c = Credential::with_salt(Hash::Sha256, "pencil", salt, 4096);
    let auth = format!("n=user,r=rOprNGfwEbeRWgbNEkqO,{SERVER_FIRST},{CLIENT_FINAL_WITHOUT_PROOF}");
    let server_signature = hmac_of(Hash::Sha256, &c.server_key, auth.as_bytes());
    assert_eq!(
        B64.encode(server_signature),
        "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    );
    let salted = salted_password(Hash::Sha256, b"pencil", &c.salt, 4096);
    let client_key = hmac_of(Hash::Sha256, &salted, b"Client Key");
    let signature = hmac_of(Hash::Sha256, &c.stored_key, auth.as_bytes());
    let proof: Vec<u8> = client_key
        .iter()
        .zip(&signature)
        .map(|(a, b)| a ^ b)
        .collect();
    assert_eq!(
        B64.encode(proof),
        "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
    );
}

/// A SCRAM client, for the exchange below.
fn scram_client(
    session: &mut Session,
    users: &Authenticator,
    hash: Hash,
    user: &str,
    password: &str,
) -> Step {
    scram_client_echoing(session, users, hash, user, password, "")
}

/// A SCRAM client that puts `before` in front of the nonce it echoes (librdkafka before 2.6
/// put its own nonce there again).
fn scram_client_echoing(
    session: &mut Session,
    users: &Authenticator,
    hash: Hash,
    user: &str,
    password: &str,
    before: &str,
) -> Step {
    let first_bare = format!("n={user},r=clientnonce123");
    let step = session.authenticate(users, format!("n,,{first_bare}").as_bytes());
    if step.error.is_some() {
        return step;
    }
    let server_first = String::from_utf8(step.bytes).unwrap();
    let attr = |k: &str| {
        server_first
            .split(',')
            .find_map(|a| a.strip_prefix(k))
            .unwrap()
            .to_owned()
    };
    let (nonce, salt, iterations) = (attr("r="), B64.decode(attr("s=")).unwrap(), attr("i="));
    assert!(nonce.starts_with("clientnonce123") && nonce.len() > 20);
    let without_proof = format!("c=biws,r={before}{nonce}");
    let auth = format!("{first_bare},{server_first},{without_proof}");
    let salted = salted_password(
        hash,
        password.as_bytes(),
        &salt,
        iterations.parse().unwrap(),
    );
    let client_key = hmac_of(hash, &salted, b"Client Key");
    let stored = digest::digest(hash.digest(), &client_key);
    let signature = hmac_of(hash, stored.as_ref(), auth.as_bytes());
    let proof: Vec<u8> = client_key
        .iter()
        .zip(&signature)
        .map(|(a, b)| a ^ b)
        .collect();
    session.authenticate(
        users,
        format!("{without_proof},p={}", B64.encode(proof)).as_bytes(),
    )
}

fn users() -> Authenticator {
    let mut users = Users::default();
    users.add("alice", Credential::new(Hash::Sha256, "s3cret", 4096));
    users.add("alice", Credential::new(Hash::Sha512, "s3cret", 4096));
    users.into()
}

const SECRET: &str = "a shared secret of at least 32 bytes";

/// Users, and tokens signed with [`SECRET`] for issuer "idp" and audience "blink".
fn with_tokens() -> Authenticator {
    let config = crate::config::OAuthBearerConfig {
        issuer: "idp".into(),
        audience: "blink".into(),
        hs256_secret: SECRET.into(),
        clock_skew_s: 0,
        ..Default::default()
    };
    Authenticator {
        tokens: Some(TokenValidator::from_config(&config).unwrap()),
        ..users()
    }
}

/// OAUTHBEARER's client message for an HS256 token naming `sub`, valid for `seconds`.
fn bearer(sub: &str, seconds: i64) -> Vec<u8> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
    let now = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims =
        serde_json::json!({"sub": sub, "iss": "idp", "aud": "blink", "exp": now + seconds});
    let input = format!(
        "{}.{}",
        B64URL.encode(r#"{"alg":"HS256"}"#),
        B64URL.encode(claims.to_string())
    );
    let signature = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, SECRET.as_bytes()),
        input.as_bytes(),
    );
    format!(
        "n,,\x01host=blink\x01auth=Bearer {input}.{}\x01\x01",
        B64URL.encode(signature)
    )
    .into_bytes()
}

#[test]
fn oauthbearer_sessions_last_as_long_as_their_token_and_renew_as_the_same_principal() {
    let auth = with_tokens();
    let mut session = Session::new(vec![Mechanism::OAuthBearer]);
    session.handshake("OAUTHBEARER").unwrap();
    let step = session.authenticate(&auth, &bearer("fluentbit", 600));
    assert_eq!(step.error, None);
    let lifetime = step.lifetime.expect("a token's session has a lifetime");
    assert!(lifetime > Duration::from_secs(590) && lifetime <= Duration::from_secs(600));
    assert!(session.may_serve());
    assert_eq!(session.principal().as_deref(), Some("User:fluentbit"));
    // Re-authentication with a fresh token renews the session.
    session.handshake("OAUTHBEARER").unwrap();
    assert!(!session.may_serve(), "nothing else while re-authenticating");
    assert_eq!(
        session.authenticate(&auth, &bearer("fluentbit", 900)).error,
        None
    );
    assert!(session.may_serve());
    // ... but not as someone else.
    session.handshake("OAUTHBEARER").unwrap();
    let step = session.authenticate(&auth, &bearer("admin", 900));
    assert!(
        step.error
            .unwrap()
            .contains("re-authentication as User:admin")
    );
    assert!(session.failed());
    // A session whose token ran out serves nothing more.
    let mut session = Session::new(vec![Mechanism::OAuthBearer]);
    session.handshake("OAUTHBEARER").unwrap();
    assert_eq!(
        session.authenticate(&auth, &bearer("fluentbit", 1)).error,
        None
    );
    std::thread::sleep(Duration::from_millis(1100));
    assert!(session.expired() && !session.may_serve());
    // Password sessions have no lifetime.
    let mut session = Session::new(vec![Mechanism::Plain]);
    session.handshake("PLAIN").unwrap();
    assert_eq!(
        session.authenticate(&auth, b"\0alice\0s3cret").lifetime,
        None
    );
}

#[test]
fn connections_max_reauth_caps_every_session() {
    let auth = Authenticator {
        max_session: Some(Duration::from_secs(60)),
        ..with_tokens()
    };
    let mut session = Session::new(vec![Mechanism::Plain, Mechanism::OAuthBearer]);
    session.handshake("PLAIN").unwrap();
    let lifetime = session
        .authenticate(&auth, b"\0alice\0s3cret")
        .lifetime
        .unwrap();
    assert!(lifetime > Duration::from_secs(59) && lifetime <= Duration::from_secs(60));
    // Re-authenticating renews it; a wrong password then ends the connection.
    session.handshake("PLAIN").unwrap();
    assert!(
        session
            .authenticate(&auth, b"\0alice\0s3cret")
            .lifetime
            .is_some()
    );
    session.handshake("PLAIN").unwrap();
    assert!(
        session
            .authenticate(&auth, b"\0alice\0wrong")
            .error
            .is_some()
    );
    assert!(session.failed());
    // A token shorter than the cap keeps its own end.
    let mut session = Session::new(vec![Mechanism::OAuthBearer]);
    session.handshake("OAUTHBEARER").unwrap();
    let lifetime = session
        .authenticate(&auth, &bearer("fluentbit", 20))
        .lifetime
        .unwrap();
    assert!(lifetime <= Duration::from_secs(20), "{lifetime:?}");
}

#[test]
fn bad_oauthbearer_messages_and_tokens_are_refused_with_a_reason() {
    let auth = with_tokens();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (bearer("fluentbit", -5), "expired"),
        (b"auth=Bearer x".to_vec(), "GS2 header"),
        (b"n,,\x01auth=Basic abc\x01\x01".to_vec(), "no `auth=Bearer"),
        (b"n,,\x01\x01".to_vec(), "no `auth=Bearer"),
        (
            b"n,,\x01auth=Bearer a.b.c\x01\x01".to_vec(),
            "token refused",
        ),
        (vec![0xff, 0xfe], "malformed"),
    ];
    for (message, reason) in cases {
        let mut session = Session::new(vec![Mechanism::OAuthBearer]);
        session.handshake("OAUTHBEARER").unwrap();
        let e = session.authenticate(&auth, &message).error.unwrap();
        assert!(e.contains(reason), "{reason}: {e}");
        assert!(session.failed());
    }
    // Not configured: refused, not a panic.
    let mut session = Session::new(vec![Mechanism::OAuthBearer]);
    session.handshake("OAUTHBEARER").unwrap();
    let e = session
        .authenticate(&users(), &bearer("fluentbit", 60))
        .error
        .unwrap();
    assert!(e.contains("not configured"), "{e}");
}

#[test]
fn scram_authenticates_the_right_password_only() {
    let users = users();
    for (mechanism, hash) in [
        ("SCRAM-SHA-256", Hash::Sha256),
        ("SCRAM-SHA-512", Hash::Sha512),
    ] {
        let mut session = Session::new(vec![Mechanism::ScramSha256, Mechanism::ScramSha512]);
        assert!(!session.may_serve());
        session.handshake(mechanism).unwrap();
        let step = scram_client(&mut session, &users, hash, "alice", "s3cret");
        assert_eq!(step.error, None);
        assert!(String::from_utf8(step.bytes).unwrap().starts_with("v="));
        assert!(session.may_serve());
        assert_eq!(session.principal().as_deref(), Some("User:alice"));

        let mut session = Session::new(vec![Mechanism::ScramSha256, Mechanism::ScramSha512]);
        session.handshake(mechanism).unwrap();
        let step = scram_client(&mut session, &users, hash, "alice", "wrong");
        assert!(step.error.unwrap().contains("authentication failed"));
        assert!(session.failed() && !session.may_serve());
        // An unknown user is refused at the first message, in the same words.
        let mut session = Session::new(vec![Mechanism::ScramSha256]);
        session.handshake("SCRAM-SHA-256").unwrap();
        let step = scram_client(&mut session, &users, Hash::Sha256, "mallory", "s3cret");
        assert!(
            step.error
                .unwrap()
                .contains("unknown user or wrong password")
        );
    }
}

#[test]
fn old_librdkafkas_doubled_client_nonce_is_accepted_and_nothing_else() {
    let users = users();
    for (before, accepted) in [
        ("clientnonce123", true),
        ("", true),
        ("clientnonce12", false),
        ("x", false),
        ("clientnonce123clientnonce123", false),
    ] {
        let mut session = Session::new(vec![Mechanism::ScramSha256]);
        session.handshake("SCRAM-SHA-256").unwrap();
        let step = scram_client_echoing(
            &mut session,
            &users,
            Hash::Sha256,
            "alice",
            "s3cret",
            before,
        );
        assert_eq!(
            step.error.is_none(),
            accepted,
            "{before:?}: {:?}",
            step.error
        );
    }
}

#[test]
fn plain_checks_the_password_against_the_stored_key() {
    let users = users();
    let mut session = Session::new(vec![Mechanism::Plain]);
    assert!(session.handshake("SCRAM-SHA-256").is_err(), "not offered");
    session.handshake("PLAIN").unwrap();
    assert_eq!(session.authenticate(&users, b"\0alice\0s3cret").error, None);
    assert_eq!(session.principal().as_deref(), Some("User:alice"));
    let mut session = Session::new(vec![Mechanism::Plain]);
    session.handshake("PLAIN").unwrap();
    assert!(
        session
            .authenticate(&users, b"\0alice\0nope")
            .error
            .is_some()
    );
    assert!(session.failed());
    let mut session = Session::new(vec![Mechanism::Plain]);
    session.handshake("PLAIN").unwrap();
    assert!(session.authenticate(&users, b"garbage").error.is_some());
}

#[test]
fn no_mechanisms_means_no_authentication_and_out_of_turn_steps_are_refused() {
    let open = Session::new(Vec::new());
    assert!(open.may_serve());
    assert_eq!(open.principal(), None);
    let mut session = Session::new(vec![Mechanism::Plain]);
    assert!(
        session
            .authenticate(&users(), b"\0alice\0s3cret")
            .error
            .is_some()
    );
    assert!(!session.may_serve());
}

#[test]
fn credentials_round_trip_through_the_config_form_and_bad_ones_are_refused() {
    let c = Credential::new(Hash::Sha512, "pw", 8192);
    assert_eq!(
        Credential::from_config(Hash::Sha512, &c.to_config()).unwrap(),
        c
    );
    assert!(
        Credential::from_config(Hash::Sha256, &c.to_config()).is_err(),
        "key length"
    );
    assert!(Credential::from_config(Hash::Sha256, "100:AAAA:AAAA:AAAA").is_err());
    assert!(Credential::from_config(Hash::Sha256, "not a credential").is_err());
    assert_eq!(unescape_username("a=2Cb=3Dc").unwrap(), "a,b=c");
    assert!(unescape_username("a=ZZ").is_err());
}
