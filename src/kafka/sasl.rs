//! SASL authentication on a listener: PLAIN and SCRAM-SHA-256/512 (RFC 5802, RFC 7677), and
//! OAUTHBEARER (RFC 7628) with JWTs ([`super::jwt`]), as Kafka's SaslHandshake v1 and
//! SaslAuthenticate exchange them.
//!
//! Credentials are stored as SCRAM keeps them, never as passwords: for each user, the salt,
//! iteration count, StoredKey and ServerKey of SHA-256 and/or SHA-512 (`blink credential`
//! makes them). A PLAIN password is checked against the same stored key. Neither passwords,
//! proofs nor tokens are logged. On a listener with SASL, a connection may send only
//! ApiVersions, SaslHandshake and SaslAuthenticate until it has authenticated; anything else
//! closes it. A session opened with a token lasts until the token expires, and any session at
//! most `connections_max_reauth_ms` when that is set: the client is told how long (KIP-368)
//! and may authenticate again on the same connection, as the same principal; a request after
//! the session ended closes the connection.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ring::{digest, hmac, pbkdf2, rand::SecureRandom};

use super::jwt::TokenValidator;
use crate::config::UserConfig;

/// A SASL mechanism Blink serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mechanism {
    Plain,
    ScramSha256,
    ScramSha512,
    OAuthBearer,
}

impl Mechanism {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "PLAIN" => Some(Mechanism::Plain),
            "SCRAM-SHA-256" => Some(Mechanism::ScramSha256),
            "SCRAM-SHA-512" => Some(Mechanism::ScramSha512),
            "OAUTHBEARER" => Some(Mechanism::OAuthBearer),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
            Mechanism::OAuthBearer => "OAUTHBEARER",
        }
    }
}

/// The two SCRAM hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hash {
    Sha256,
    Sha512,
}

impl Hash {
    fn pbkdf2(self) -> pbkdf2::Algorithm {
        match self {
            Hash::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            Hash::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }

    fn hmac(self) -> hmac::Algorithm {
        match self {
            Hash::Sha256 => hmac::HMAC_SHA256,
            Hash::Sha512 => hmac::HMAC_SHA512,
        }
    }

    fn digest(self) -> &'static digest::Algorithm {
        match self {
            Hash::Sha256 => &digest::SHA256,
            Hash::Sha512 => &digest::SHA512,
        }
    }

    fn len(self) -> usize {
        match self {
            Hash::Sha256 => 32,
            Hash::Sha512 => 64,
        }
    }
}

/// Lowest iteration count accepted for a stored credential (RFC 7677 asks for 4096).
pub const MIN_ITERATIONS: u32 = 4096;

/// A user's SCRAM credential for one hash: what the server keeps instead of the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub hash: Hash,
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

fn hmac_of(hash: Hash, key: &[u8], data: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hash.hmac(), key), data)
        .as_ref()
        .to_vec()
}

fn salted_password(hash: Hash, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
    let mut out = vec![0u8; hash.len()];
    let iterations = NonZeroU32::new(iterations.max(1)).expect("at least one");
    pbkdf2::derive(hash.pbkdf2(), iterations, salt, password, &mut out);
    out
}

impl Credential {
    /// The credential for `password` with a fresh random salt.
    pub fn new(hash: Hash, password: &str, iterations: u32) -> Self {
        let mut salt = vec![0u8; 24];
        ring::rand::SystemRandom::new()
            .fill(&mut salt)
            .expect("the system's random source");
        Self::with_salt(hash, password, salt, iterations)
    }

    fn with_salt(hash: Hash, password: &str, salt: Vec<u8>, iterations: u32) -> Self {
        let salted = salted_password(hash, password.as_bytes(), &salt, iterations);
        let client_key = hmac_of(hash, &salted, b"Client Key");
        let stored_key = digest::digest(hash.digest(), &client_key).as_ref().to_vec();
        let server_key = hmac_of(hash, &salted, b"Server Key");
        Credential {
            hash,
            iterations,
            salt,
            stored_key,
            server_key,
        }
    }

    /// `iterations:salt:stored_key:server_key`, base64 — the form kept in `blink.toml`.
    pub fn to_config(&self) -> String {
        format!(
            "{}:{}:{}:{}",
            self.iterations,
            B64.encode(&self.salt),
            B64.encode(&self.stored_key),
            B64.encode(&self.server_key)
        )
    }

    pub fn from_config(hash: Hash, text: &str) -> Result<Self, String> {
        let parts: Vec<&str> = text.split(':').collect();
        let [iterations, salt, stored, server] = parts[..] else {
            return Err(
                "expected iterations:salt:stored_key:server_key (blink credential makes it)".into(),
            );
        };
        let iterations: u32 = iterations
            .parse()
            .map_err(|_| format!("{iterations:?} is not an iteration count"))?;
        if iterations < MIN_ITERATIONS {
            return Err(format!(
                "{iterations} iterations: at least {MIN_ITERATIONS}"
            ));
        }
        let decode = |what: &str, s: &str| {
            B64.decode(s)
                .map_err(|_| format!("the {what} is not base64"))
        };
        let credential = Credential {
            hash,
            iterations,
            salt: decode("salt", salt)?,
            stored_key: decode("stored key", stored)?,
            server_key: decode("server key", server)?,
        };
        if credential.stored_key.len() != hash.len() || credential.server_key.len() != hash.len() {
            return Err(format!("keys of {} bytes were expected", hash.len()));
        }
        Ok(credential)
    }

    /// Whether `password` is this credential's password (PLAIN), in constant time.
    fn verifies(&self, password: &str) -> bool {
        let other = Self::with_salt(self.hash, password, self.salt.clone(), self.iterations);
        same_bytes(&other.stored_key, &self.stored_key)
    }
}

/// The users a broker knows, by name.
#[derive(Debug, Clone, Default)]
pub struct Users {
    by_name: HashMap<String, Vec<Credential>>,
}

impl Users {
    /// The users of `[[kafka.users]]`; the error names the user whose credential is wrong.
    pub fn from_config(users: &[UserConfig]) -> Result<Self, String> {
        let mut out = Users::default();
        for user in users {
            let mut any = false;
            for (hash, text) in [
                (Hash::Sha256, &user.scram_sha256),
                (Hash::Sha512, &user.scram_sha512),
            ] {
                if !text.is_empty() {
                    let credential = Credential::from_config(hash, text)
                        .map_err(|e| format!("[kafka] users: {}: {e}", user.name))?;
                    out.add(&user.name, credential);
                    any = true;
                }
            }
            if !any {
                return Err(format!(
                    "[kafka] users: {}: no credential (blink credential {} makes one)",
                    user.name, user.name
                ));
            }
        }
        Ok(out)
    }

    pub fn add(&mut self, name: &str, credential: Credential) {
        self.by_name
            .entry(name.to_owned())
            .or_default()
            .push(credential);
    }

    fn credential(&self, name: &str, hash: Hash) -> Option<&Credential> {
        self.by_name.get(name)?.iter().find(|c| c.hash == hash)
    }

    fn any_credential(&self, name: &str) -> Option<&Credential> {
        self.by_name.get(name)?.first()
    }
}

/// What credentials are checked against: the users (PLAIN, SCRAM) and, when
/// `[kafka.oauthbearer]` is configured, the token validator (OAUTHBEARER).
#[derive(Debug, Default)]
pub struct Authenticator {
    pub users: Users,
    pub tokens: Option<TokenValidator>,
    /// The longest a session lasts before the client must authenticate again (Kafka's
    /// `connections.max.reauth.ms`); `None`: a password session lasts as long as its
    /// connection, a token session until the token expires.
    pub max_session: Option<Duration>,
}

impl From<Users> for Authenticator {
    fn from(users: Users) -> Self {
        Authenticator {
            users,
            ..Default::default()
        }
    }
}

/// Where a connection stands.
#[derive(Debug)]
enum State {
    /// No SASL on this listener: everything is allowed, anonymously.
    Open,
    /// Waiting for SaslHandshake.
    Handshake,
    /// The mechanism is chosen; waiting for its first SaslAuthenticate.
    First(Mechanism),
    /// SCRAM: the server-first message was sent; waiting for the client-final one.
    Final {
        hash: Hash,
        user: String,
        nonce: String,
        /// client-first-bare + "," + server-first, the start of the AuthMessage.
        auth_message: String,
    },
    /// The principal (`User:name`).
    Authenticated(Arc<str>),
    /// A failed attempt: the connection is closed after the answer.
    Failed,
}

/// One connection's authentication.
#[derive(Debug)]
pub struct Session {
    mechanisms: Vec<Mechanism>,
    state: State,
    /// When the session ends: a token's expiry. `None`: with the connection.
    expires: Option<Instant>,
    /// While authenticating again, the principal authenticated before, which must not change.
    previous: Option<Arc<str>>,
}

/// What SaslAuthenticate answers.
pub struct Step {
    /// `None` on success or a challenge, else the error message.
    pub error: Option<String>,
    pub bytes: Vec<u8>,
    /// How long the session lasts, once authenticated with a token (KIP-368's
    /// `session_lifetime_ms`: the client authenticates again before it ends).
    pub lifetime: Option<Duration>,
}

impl Session {
    /// A session for a listener offering `mechanisms` (none: no authentication).
    pub fn new(mechanisms: Vec<Mechanism>) -> Self {
        let state = if mechanisms.is_empty() {
            State::Open
        } else {
            State::Handshake
        };
        Session {
            mechanisms,
            state,
            expires: None,
            previous: None,
        }
    }

    /// Whether requests other than the SASL ones may be served.
    pub fn may_serve(&self) -> bool {
        matches!(self.state, State::Open | State::Authenticated(_)) && !self.expired()
    }

    /// Whether the session's token has expired (the connection is then closed).
    pub fn expired(&self) -> bool {
        self.expires.is_some_and(|t| Instant::now() >= t)
    }

    /// Whether the connection must be closed (after a failed authentication).
    pub fn failed(&self) -> bool {
        matches!(self.state, State::Failed)
    }

    /// The authenticated principal, `User:name`; `None` on a listener without SASL.
    pub fn principal(&self) -> Option<Arc<str>> {
        match &self.state {
            State::Authenticated(principal) => Some(principal.clone()),
            _ => None,
        }
    }

    /// The mechanisms offered, by name.
    pub fn offered(&self) -> Vec<&'static str> {
        self.mechanisms.iter().map(|m| m.name()).collect()
    }

    /// SaslHandshake: `Ok` if `name` is offered and a handshake is expected — first, or again
    /// on an authenticated connection (re-authentication, KIP-368).
    pub fn handshake(&mut self, name: &str) -> Result<(), ()> {
        let offered = Mechanism::parse(name).filter(|m| self.mechanisms.contains(m));
        match (offered, &self.state) {
            (Some(m), State::Handshake) => {
                self.state = State::First(m);
                Ok(())
            }
            (Some(m), State::Authenticated(principal)) => {
                self.previous = Some(principal.clone());
                self.state = State::First(m);
                Ok(())
            }
            _ => Err(()),
        }
    }

    /// SaslAuthenticate: one step of the chosen mechanism.
    pub fn authenticate(&mut self, with: &Authenticator, bytes: &[u8]) -> Step {
        let users = &with.users;
        let state = std::mem::replace(&mut self.state, State::Failed);
        let outcome = match state {
            State::First(Mechanism::OAuthBearer) => self.oauthbearer(with.tokens.as_ref(), bytes),
            State::First(Mechanism::Plain) => self.plain(users, bytes),
            State::First(Mechanism::ScramSha256) => self.scram_first(users, Hash::Sha256, bytes),
            State::First(Mechanism::ScramSha512) => self.scram_first(users, Hash::Sha512, bytes),
            State::Final {
                hash,
                user,
                nonce,
                auth_message,
            } => self.scram_final(users, hash, &user, &nonce, &auth_message, bytes),
            other => {
                self.state = other;
                return Step {
                    error: Some("SaslAuthenticate out of turn: SaslHandshake first".into()),
                    bytes: Vec::new(),
                    lifetime: None,
                };
            }
        };
        let outcome = outcome.and_then(|bytes| self.same_principal_as_before().map(|()| bytes));
        if let (Ok(_), State::Authenticated(_), Some(max)) =
            (&outcome, &self.state, with.max_session)
        {
            let cap = Instant::now() + max;
            self.expires = Some(self.expires.map_or(cap, |t| t.min(cap)));
        }
        match outcome {
            Ok(bytes) => Step {
                error: None,
                bytes,
                lifetime: self
                    .expires
                    .filter(|_| matches!(self.state, State::Authenticated(_)))
                    .map(|t| t.saturating_duration_since(Instant::now())),
            },
            Err(reason) => {
                self.state = State::Failed;
                Step {
                    error: Some(reason),
                    bytes: Vec::new(),
                    lifetime: None,
                }
            }
        }
    }

    /// Re-authentication may renew a session, not change whose it is (Kafka refuses that too).
    fn same_principal_as_before(&mut self) -> Result<(), String> {
        let State::Authenticated(now) = &self.state else {
            return Ok(()); // a SCRAM challenge: checked at the final step
        };
        match self.previous.take() {
            Some(before) if before != *now => Err(format!(
                "re-authentication as {now} on a connection authenticated as {before}"
            )),
            _ => Ok(()),
        }
    }

    /// OAUTHBEARER's initial client response (RFC 7628): a GS2 header, then `key=value` pairs
    /// separated by 0x01, among them `auth=Bearer TOKEN`; Kafka's extensions are ignored.
    fn oauthbearer(
        &mut self,
        tokens: Option<&TokenValidator>,
        bytes: &[u8],
    ) -> Result<Vec<u8>, String> {
        let tokens = tokens.ok_or("OAUTHBEARER is not configured ([kafka.oauthbearer])")?;
        let text =
            std::str::from_utf8(bytes).map_err(|_| "malformed OAUTHBEARER message".to_string())?;
        let pairs = text
            .strip_prefix("n,")
            .or_else(|| text.strip_prefix("y,"))
            .and_then(|rest| rest.split_once(','))
            .map(|(_authzid, pairs)| pairs)
            .ok_or("OAUTHBEARER: the message needs a GS2 header (n,,)")?;
        let token = pairs
            .split('\x01')
            .find_map(|kv| kv.strip_prefix("auth="))
            .and_then(|auth| auth.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("Bearer"))
            .map(|(_, token)| token.trim())
            .ok_or("OAUTHBEARER: no `auth=Bearer TOKEN` in the message")?;
        let claims = tokens
            .validate(token, SystemTime::now())
            .map_err(|why| format!("authentication failed: token refused: {why}"))?;
        let left = claims
            .expires
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        tracing::info!(principal = %claims.principal, expires_in_s = left.as_secs(), "kafka: authenticated (OAUTHBEARER)");
        self.expires = Some(Instant::now() + left);
        self.state = State::Authenticated(Arc::from(claims.principal));
        Ok(Vec::new())
    }

    /// A user authenticated with a password: the session lasts as long as the connection.
    fn authenticated(&mut self, user: &str) {
        self.expires = None;
        self.state = State::Authenticated(Arc::from(format!("User:{user}")));
    }

    fn plain(&mut self, users: &Users, bytes: &[u8]) -> Result<Vec<u8>, String> {
        let text = std::str::from_utf8(bytes).map_err(|_| bad_credentials())?;
        let mut parts = text.split('\0');
        let (Some(authzid), Some(user), Some(password), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("malformed PLAIN message".into());
        };
        if !authzid.is_empty() && authzid != user {
            return Err("PLAIN: authorising as another user is not supported".into());
        }
        match users.any_credential(user) {
            Some(c) if c.verifies(password) => {
                tracing::info!(user, "kafka: authenticated (PLAIN)");
                self.authenticated(user);
                Ok(Vec::new())
            }
            _ => Err(bad_credentials()),
        }
    }

    fn scram_first(&mut self, users: &Users, hash: Hash, bytes: &[u8]) -> Result<Vec<u8>, String> {
        let text = std::str::from_utf8(bytes).map_err(|_| "malformed SCRAM message".to_string())?;
        // gs2 header: "n,," (no channel binding, no authzid) or "y,,"; then the bare message.
        let bare = text
            .strip_prefix("n,,")
            .or_else(|| text.strip_prefix("y,,"))
            .ok_or("SCRAM: channel binding and authorisation ids are not supported")?;
        let mut user = None;
        let mut client_nonce = None;
        for attribute in bare.split(',') {
            match attribute.split_once('=') {
                Some(("n", v)) => user = Some(unescape_username(v)?),
                Some(("r", v)) => client_nonce = Some(v.to_owned()),
                _ => {}
            }
        }
        let (Some(user), Some(client_nonce)) = (user, client_nonce) else {
            return Err("SCRAM: the client-first message needs n= and r=".into());
        };
        if client_nonce.is_empty() || client_nonce.len() > 512 {
            return Err("SCRAM: bad nonce".into());
        }
        let Some(credential) = users.credential(&user, hash) else {
            return Err(bad_credentials());
        };
        let mut random = [0u8; SERVER_NONCE_CHARS / 4 * 3];
        ring::rand::SystemRandom::new()
            .fill(&mut random)
            .map_err(|_| "no random source".to_string())?;
        let nonce = format!("{client_nonce}{}", B64.encode(random));
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&credential.salt),
            credential.iterations
        );
        self.state = State::Final {
            hash,
            user,
            nonce,
            auth_message: format!("{bare},{server_first}"),
        };
        Ok(server_first.into_bytes())
    }

    fn scram_final(
        &mut self,
        users: &Users,
        hash: Hash,
        user: &str,
        nonce: &str,
        auth_message: &str,
        bytes: &[u8],
    ) -> Result<Vec<u8>, String> {
        let text = std::str::from_utf8(bytes).map_err(|_| "malformed SCRAM message".to_string())?;
        let (without_proof, proof) = text
            .rsplit_once(",p=")
            .ok_or("SCRAM: the client-final message needs p=")?;
        let echoed = without_proof
            .split(',')
            .find_map(|a| a.strip_prefix("r="))
            .ok_or("SCRAM: the client-final message needs r=")?;
        // librdkafka before 2.6 sends the client's nonce twice (its own, then the whole
        // server nonce, which starts with it); Kafka accepts that since 3.8.1, and so does
        // Blink — exactly that form, nothing looser. The proof covers what was sent either way.
        let client_nonce = &nonce[..nonce.len() - SERVER_NONCE_CHARS];
        let client_nonce_twice = echoed.strip_suffix(nonce) == Some(client_nonce);
        if echoed != nonce && !client_nonce_twice {
            return Err("SCRAM: the nonce does not match".into());
        }
        let proof = B64.decode(proof).map_err(|_| bad_credentials())?;
        let credential = users.credential(user, hash).ok_or_else(bad_credentials)?;
        let auth_message = format!("{auth_message},{without_proof}");
        let signature = hmac_of(hash, &credential.stored_key, auth_message.as_bytes());
        if proof.len() != signature.len() {
            return Err(bad_credentials());
        }
        let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(p, s)| p ^ s).collect();
        let stored = digest::digest(hash.digest(), &client_key);
        if !same_bytes(stored.as_ref(), &credential.stored_key) {
            return Err(bad_credentials());
        }
        let server_signature = hmac_of(hash, &credential.server_key, auth_message.as_bytes());
        tracing::info!(user, mechanism = ?hash, "kafka: authenticated (SCRAM)");
        self.authenticated(user);
        Ok(format!("v={}", B64.encode(server_signature)).into_bytes())
    }
}

/// The server's part of a SCRAM nonce, after the client's: 18 random bytes in base64.
const SERVER_NONCE_CHARS: usize = 24;

/// Equal bytes, compared in time that does not depend on where they differ.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn bad_credentials() -> String {
    "authentication failed: unknown user or wrong password".into()
}

/// RFC 5802's `=2C` and `=3D` escapes in a user name.
fn unescape_username(name: &str) -> Result<String, String> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err("SCRAM: bad escape in the user name".into()),
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests;
