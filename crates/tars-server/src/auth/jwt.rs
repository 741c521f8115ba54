//! Access tokens: JWTs with the claims `sub` (the user name), `role`, `exp`, `iat` and `jti`,
//! signed with HS256 (a shared secret) or RS256 (a PEM key pair). A token is accepted only with
//! the one algorithm configured, so an RS256 public key can never be used as an HS256 secret.
//!
//! The HS256 secret is `jwt_secret`, or else `<data_dir>/jwt_secret`, created once with 256
//! random bits and mode 0600 so that tokens survive restarts. Replicas of a fleet that do not
//! share a data directory must share `jwt_secret` (or the RS256 keys).

use super::password::{hex, random_bytes};
use super::{AuthError, Principal, Role};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// Shortest accepted HS256 secret, in bytes: the hash's output size (RFC 7518 §3.2).
pub const MIN_SECRET_BYTES: usize = 32;

/// How access tokens are signed.
#[derive(Clone)]
pub enum JwtKey {
    /// HMAC-SHA256 with a shared secret of at least [`MIN_SECRET_BYTES`] bytes.
    Hs256(Vec<u8>),
    /// RSA-SHA256 (PKCS#1 v1.5): signs with the private key, verifies with the public key.
    Rs256 {
        private_pem: Vec<u8>,
        public_pem: Vec<u8>,
    },
}

impl std::fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JwtKey::Hs256(_) => f.write_str("Hs256(***)"),
            JwtKey::Rs256 { .. } => f.write_str("Rs256 { private_pem: ***, public_pem: .. }"),
        }
    }
}

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Claims {
    pub sub: String,
    pub role: Role,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Issue time, seconds since the Unix epoch.
    pub iat: u64,
    /// A unique id per token.
    pub jti: String,
    /// The session (refresh-token family) the token was issued for; absent on tokens issued
    /// without a login (tools, tests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<uuid::Uuid>,
}

/// The keys and rules that sign and check access tokens.
pub(crate) struct Keys {
    algorithm: Algorithm,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl Keys {
    /// Parses `key` and proves it by signing and verifying a probe token (for RS256 this
    /// catches a public key that is not the private key's).
    pub fn new(key: &JwtKey) -> Result<Keys, AuthError> {
        let (algorithm, encoding, decoding) = match key {
            JwtKey::Hs256(secret) => {
                if secret.len() < MIN_SECRET_BYTES {
                    return Err(AuthError::Config {
                        key: "jwt_secret",
                        reason: format!(
                            "it is {} bytes long; use at least {MIN_SECRET_BYTES} random bytes \
                             (e.g. `openssl rand -hex 32`)",
                            secret.len()
                        ),
                    });
                }
                (
                    Algorithm::HS256,
                    EncodingKey::from_secret(secret),
                    DecodingKey::from_secret(secret),
                )
            }
            JwtKey::Rs256 {
                private_pem,
                public_pem,
            } => {
                let pem_error =
                    |key: &'static str, error: jsonwebtoken::errors::Error| AuthError::Config {
                        key,
                        reason: format!("not an RSA key in PEM format ({error})"),
                    };
                (
                    Algorithm::RS256,
                    EncodingKey::from_rsa_pem(private_pem)
                        .map_err(|error| pem_error("jwt_private_key_file", error))?,
                    DecodingKey::from_rsa_pem(public_pem)
                        .map_err(|error| pem_error("jwt_public_key_file", error))?,
                )
            }
        };
        let mut validation = Validation::new(algorithm);
        // Our own tokens, checked by the clock that issued them: no grace period.
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let keys = Keys {
            algorithm,
            encoding,
            decoding,
            validation,
        };
        let probe = Principal {
            subject: "probe".into(),
            role: Role::Viewer,
        };
        let token = keys.sign(&probe, now_seconds(), 60)?;
        match keys.verify(&token) {
            Ok(_) => Ok(keys),
            Err(AuthError::BadSignature) => Err(AuthError::Config {
                key: "jwt_public_key_file",
                reason: "it does not verify what jwt_private_key_file signs; give the public half \
                         of that key pair"
                    .into(),
            }),
            Err(error) => Err(error),
        }
    }

    /// `"HS256"` or `"RS256"`.
    pub fn algorithm_name(&self) -> &'static str {
        match self.algorithm {
            Algorithm::RS256 => "RS256",
            _ => "HS256",
        }
    }

    /// A token for `principal`, issued at `iat` (Unix seconds) and valid for `ttl_seconds`.
    pub fn sign(
        &self,
        principal: &Principal,
        iat: u64,
        ttl_seconds: u64,
    ) -> Result<String, AuthError> {
        self.sign_session(principal, iat, ttl_seconds, None)
    }

    /// [`Keys::sign`] for session `sid`: the token dies with its session.
    pub fn sign_session(
        &self,
        principal: &Principal,
        iat: u64,
        ttl_seconds: u64,
        sid: Option<uuid::Uuid>,
    ) -> Result<String, AuthError> {
        let claims = Claims {
            sub: principal.subject.clone(),
            role: principal.role,
            exp: iat + ttl_seconds,
            iat,
            jti: uuid::Uuid::new_v4().simple().to_string(),
            sid,
        };
        self.sign_claims(&claims)
    }

    pub fn sign_claims(&self, claims: &Claims) -> Result<String, AuthError> {
        jsonwebtoken::encode(&Header::new(self.algorithm), claims, &self.encoding)
            .map_err(|error| AuthError::Signing(error.to_string()))
    }

    /// The principal of a valid token; otherwise why it is not valid.
    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        self.verify_session(token).map(|(principal, _)| principal)
    }

    /// [`Keys::verify`], with the session the token names.
    pub fn verify_session(
        &self,
        token: &str,
    ) -> Result<(Principal, Option<uuid::Uuid>), AuthError> {
        // The header first, so that a broken header reads as malformed, not as bad claims.
        jsonwebtoken::decode_header(token).map_err(|_| AuthError::MalformedToken)?;
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|error| match error.kind() {
                ErrorKind::InvalidSignature => AuthError::BadSignature,
                ErrorKind::ExpiredSignature => AuthError::TokenExpired,
                ErrorKind::InvalidAlgorithm => AuthError::WrongAlgorithm {
                    expected: self.algorithm_name(),
                },
                ErrorKind::MissingRequiredClaim(_)
                | ErrorKind::InvalidClaimFormat(_)
                | ErrorKind::Json(_)
                | ErrorKind::ImmatureSignature
                | ErrorKind::InvalidAudience
                | ErrorKind::InvalidIssuer
                | ErrorKind::InvalidSubject => AuthError::InvalidClaims,
                _ => AuthError::MalformedToken,
            })?;
        let principal = Principal {
            subject: data.claims.sub,
            role: data.claims.role,
        };
        Ok((principal, data.claims.sid))
    }
}

/// Seconds since the Unix epoch.
pub(crate) fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// The HS256 secret kept in `path`: read when it exists, else created with 256 random bits
/// (64 hex digits) and mode 0600. Creation is atomic (a hard link of a complete temporary
/// file), so processes starting together agree on one secret.
pub(crate) fn load_or_create_secret(path: &Path) -> Result<Vec<u8>, AuthError> {
    let io_error = |error: std::io::Error| AuthError::SecretFile {
        path: path.to_path_buf(),
        reason: error.to_string(),
    };
    if !path.exists() {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io_error)?;
        }
        let secret = hex(random_bytes::<2>()?.as_flattened());
        let temporary = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
        write_private(&temporary, format!("{secret}\n").as_bytes()).map_err(io_error)?;
        let linked = std::fs::hard_link(&temporary, path);
        let _ = std::fs::remove_file(&temporary);
        match linked {
            Ok(()) => {
                tracing::info!(path = %path.display(), "created the HS256 key for access tokens")
            }
            // Another process created it first: use theirs.
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(error) => return Err(io_error(error)),
        }
    }
    warn_if_readable_by_others(path);
    let secret = std::fs::read_to_string(path).map_err(io_error)?;
    let secret = secret.trim();
    if secret.len() < MIN_SECRET_BYTES {
        return Err(AuthError::SecretFile {
            path: path.to_path_buf(),
            reason: format!(
                "it holds {} bytes; use at least {MIN_SECRET_BYTES}, or delete it to get a new one",
                secret.len()
            ),
        });
    }
    Ok(secret.as_bytes().to_vec())
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(metadata) = std::fs::metadata(path)
        && metadata.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            path = %path.display(),
            "the HS256 key file is readable by other users; `chmod 600` it"
        );
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    const PRIVATE_PEM: &[u8] = include_bytes!("../../tests/fixtures/auth_rs256_private.pem");
    const PUBLIC_PEM: &[u8] = include_bytes!("../../tests/fixtures/auth_rs256_public.pem");
    const OTHER_PUBLIC_PEM: &[u8] =
        include_bytes!("../../tests/fixtures/auth_rs256_other_public.pem");

    fn hs256(secret: &str) -> Keys {
        Keys::new(&JwtKey::Hs256(secret.as_bytes().to_vec())).unwrap()
    }

    fn alice(role: Role) -> Principal {
        Principal {
            subject: "alice".into(),
            role,
        }
    }

    #[test]
    fn tokens_round_trip_with_both_algorithms() {
        let rs256 = Keys::new(&JwtKey::Rs256 {
            private_pem: PRIVATE_PEM.to_vec(),
            public_pem: PUBLIC_PEM.to_vec(),
        })
        .unwrap();
        for keys in [hs256(&"k".repeat(32)), rs256] {
            let token = keys
                .sign(&alice(Role::Operator), now_seconds(), 60)
                .unwrap();
            assert_eq!(keys.verify(&token).unwrap(), alice(Role::Operator));
            let header = jsonwebtoken::decode_header(&token).unwrap();
            assert_eq!(header.alg, keys.algorithm);
        }
    }

    #[test]
    fn expired_foreign_altered_and_malformed_tokens_are_refused_for_their_reason() {
        let keys = hs256(&"k".repeat(32));
        let now = now_seconds();
        let expired = keys.sign(&alice(Role::Admin), now - 120, 60).unwrap();
        assert!(matches!(
            keys.verify(&expired),
            Err(AuthError::TokenExpired)
        ));
        let foreign = hs256(&"o".repeat(32))
            .sign(&alice(Role::Admin), now, 60)
            .unwrap();
        assert!(matches!(
            keys.verify(&foreign),
            Err(AuthError::BadSignature)
        ));

        // A viewer's token edited to say admin: the signature no longer matches.
        let token = keys.sign(&alice(Role::Viewer), now, 60).unwrap();
        let [header, payload, signature]: [&str; 3] =
            token.split('.').collect::<Vec<_>>().try_into().unwrap();
        let claims = String::from_utf8(base64url_decode(payload)).unwrap();
        let tampered_claims = claims.replace("\"viewer\"", "\"admin\"");
        assert_ne!(claims, tampered_claims);
        let tampered = format!(
            "{header}.{}.{signature}",
            base64url_encode(tampered_claims.as_bytes())
        );
        assert!(matches!(
            keys.verify(&tampered),
            Err(AuthError::BadSignature)
        ));

        for malformed in ["", "not.a.jwt", "abc", "a.b.c.d"] {
            assert!(
                matches!(keys.verify(malformed), Err(AuthError::MalformedToken)),
                "{malformed}"
            );
        }

        // Correctly signed but with a role we do not know, or without `jti`.
        let unknown_role = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({"sub": "alice", "role": "root", "exp": now + 60, "iat": now, "jti": "x"}),
            &EncodingKey::from_secret("k".repeat(32).as_bytes()),
        )
        .unwrap();
        assert!(matches!(
            keys.verify(&unknown_role),
            Err(AuthError::InvalidClaims)
        ));
        let no_jti = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({"sub": "alice", "role": "admin", "exp": now + 60, "iat": now}),
            &EncodingKey::from_secret("k".repeat(32).as_bytes()),
        )
        .unwrap();
        assert!(matches!(
            keys.verify(&no_jti),
            Err(AuthError::InvalidClaims)
        ));
    }

    #[test]
    fn only_the_configured_algorithm_is_accepted() {
        // The classic confusion: an RS256 server's public key used as an HS256 secret.
        let rs256 = Keys::new(&JwtKey::Rs256 {
            private_pem: PRIVATE_PEM.to_vec(),
            public_pem: PUBLIC_PEM.to_vec(),
        })
        .unwrap();
        let forged = hs256(std::str::from_utf8(PUBLIC_PEM).unwrap())
            .sign(&alice(Role::Admin), now_seconds(), 60)
            .unwrap();
        assert!(matches!(
            rs256.verify(&forged),
            Err(AuthError::WrongAlgorithm { expected: "RS256" })
        ));
        let rs256_token = rs256.sign(&alice(Role::Admin), now_seconds(), 60).unwrap();
        assert!(matches!(
            hs256(&"k".repeat(32)).verify(&rs256_token),
            Err(AuthError::WrongAlgorithm { expected: "HS256" })
        ));
    }

    #[test]
    fn bad_keys_are_refused_with_the_key_to_fix() {
        let short = Keys::new(&JwtKey::Hs256(b"short".to_vec())).err().unwrap();
        assert_eq!(
            short.to_string(),
            "invalid jwt_secret: it is 5 bytes long; use at least 32 random bytes (e.g. `openssl rand -hex 32`)"
        );
        let mismatched = Keys::new(&JwtKey::Rs256 {
            private_pem: PRIVATE_PEM.to_vec(),
            public_pem: OTHER_PUBLIC_PEM.to_vec(),
        })
        .err()
        .unwrap();
        assert!(
            mismatched.to_string().starts_with(
                "invalid jwt_public_key_file: it does not verify what jwt_private_key_file signs"
            ),
            "{mismatched}"
        );
        let not_pem = Keys::new(&JwtKey::Rs256 {
            private_pem: b"nope".to_vec(),
            public_pem: PUBLIC_PEM.to_vec(),
        })
        .err()
        .unwrap();
        assert!(
            not_pem
                .to_string()
                .starts_with("invalid jwt_private_key_file: not an RSA key in PEM format"),
            "{not_pem}"
        );
    }

    #[test]
    fn the_generated_secret_is_private_persistent_and_shared() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/jwt_secret");
        let secret = load_or_create_secret(&path).unwrap();
        assert_eq!(secret.len(), 64);
        assert_eq!(load_or_create_secret(&path).unwrap(), secret, "read back");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Only the secret is left behind, no temporary file.
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, ["jwt_secret"]);

        let racers: Vec<_> = (0..8)
            .map(|_| {
                let path = dir.path().join("raced/jwt_secret");
                std::thread::spawn(move || load_or_create_secret(&path).unwrap())
            })
            .collect();
        let secrets: Vec<Vec<u8>> = racers
            .into_iter()
            .map(|racer| racer.join().unwrap())
            .collect();
        assert!(secrets.windows(2).all(|pair| pair[0] == pair[1]));

        std::fs::write(&path, "too short\n").unwrap();
        let error = load_or_create_secret(&path).unwrap_err().to_string();
        assert!(
            error.ends_with("it holds 9 bytes; use at least 32, or delete it to get a new one"),
            "{error}"
        );
    }

    fn base64url_decode(text: &str) -> Vec<u8> {
        let value = |c: u8| match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            _ => 63,
        };
        let (mut bytes, mut buffer, mut n_bits) = (Vec::new(), 0u32, 0);
        for c in text.bytes() {
            buffer = (buffer << 6) | u32::from(value(c));
            n_bits += 6;
            if n_bits >= 8 {
                n_bits -= 8;
                bytes.push((buffer >> n_bits) as u8);
            }
        }
        bytes
    }

    fn base64url_encode(bytes: &[u8]) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let (mut text, mut buffer, mut n_bits) = (String::new(), 0u32, 0);
        for &byte in bytes {
            buffer = (buffer << 8) | u32::from(byte);
            n_bits += 8;
            while n_bits >= 6 {
                n_bits -= 6;
                text.push(ALPHABET[((buffer >> n_bits) & 63) as usize] as char);
            }
        }
        if n_bits > 0 {
            text.push(ALPHABET[((buffer << (6 - n_bits)) & 63) as usize] as char);
        }
        text
    }
}
