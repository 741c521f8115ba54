//! Passwords — argon2id with the `argon2` crate's default parameters, stored as PHC strings and
//! verified by the crate in constant time — and the random values auth needs: refresh tokens,
//! generated passwords and the HS256 key.
//!
//! Randomness comes from the operating system through `argon2::password_hash::try_generate_salt`
//! (16 bytes of `getrandom` per call), which argon2 brings anyway: no RNG crate of our own.

use super::AuthError;
use argon2::password_hash::try_generate_salt;
use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

/// Shortest password `tars user add|passwd` and `admin_password` accept, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password accepted anywhere, in bytes (hashing cost grows with the length).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Refresh tokens start with this, so that they are recognisable in a leak (and never mistaken
/// for their hash, which is plain hex).
const REFRESH_TOKEN_PREFIX: &str = "tars_rt_";

/// Refuses passwords that are too short or too long, saying which limit and what is valid.
pub fn check_new_password(password: &str) -> Result<(), AuthError> {
    let n_chars = password.chars().count();
    if n_chars < MIN_PASSWORD_CHARS {
        return Err(AuthError::WeakPassword(format!(
            "is {n_chars} characters long; use at least {MIN_PASSWORD_CHARS}"
        )));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(AuthError::WeakPassword(format!(
            "is {} bytes long; use at most {MAX_PASSWORD_BYTES}",
            password.len()
        )));
    }
    Ok(())
}

/// The argon2id PHC string of a new password (checked with [`check_new_password`]). Slow on
/// purpose (tens of milliseconds): async code calls it through `spawn_blocking`.
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    check_new_password(password)?;
    let hash: PasswordHash = Argon2::default()
        .hash_password(password.as_bytes())
        .map_err(|error| AuthError::Hashing(error.to_string()))?;
    Ok(hash.to_string())
}

/// Whether `password` matches the PHC string `phc`; `None` compares with a hash no password
/// matches, taking as long as a real comparison, so that unknown users cost the same time.
pub(crate) fn verify_password(password: &str, phc: Option<&str>) -> bool {
    let matches = Argon2::default()
        .verify_password(password.as_bytes(), phc.unwrap_or_else(|| dummy_hash()))
        .is_ok();
    matches && phc.is_some()
}

/// Makes the hash [`verify_password`] compares unknown users with now, so that the first
/// unknown user does not take longer than the others.
pub(crate) fn warm_up() {
    dummy_hash();
}

/// A hash of a random password nobody knows, made once per process.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let password = generate_password().unwrap_or_else(|_| "no password matches".repeat(2));
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|hash: PasswordHash| hash.to_string())
            .unwrap_or_default()
    })
}

/// A new random password: 26 characters of lower-case base32, 128 bits.
pub fn generate_password() -> Result<String, AuthError> {
    Ok(base32(&random_bytes::<1>()?[0]))
}

/// `16 × N` bytes from the operating system's random number generator.
pub(crate) fn random_bytes<const N: usize>() -> Result<[[u8; 16]; N], AuthError> {
    let mut blocks = [[0u8; 16]; N];
    for block in &mut blocks {
        *block = try_generate_salt().map_err(|error| AuthError::Random(error.to_string()))?;
    }
    Ok(blocks)
}

/// A new opaque refresh token (`tars_rt_` + 256 random bits in hex) and its stored hash.
pub(crate) fn new_refresh_token() -> Result<(String, String), AuthError> {
    let token = format!(
        "{REFRESH_TOKEN_PREFIX}{}",
        hex(random_bytes::<2>()?.as_flattened())
    );
    let hash = sha256_hex(&token);
    Ok((token, hash))
}

/// The stored hash of a presented refresh token; `None` when it cannot be one of ours.
pub(crate) fn refresh_token_hash(token: &str) -> Option<String> {
    let random = token.strip_prefix(REFRESH_TOKEN_PREFIX)?;
    let ours = random.len() == 64
        && random
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    ours.then(|| sha256_hex(token))
}

pub(crate) fn sha256_hex(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes()))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(2 * bytes.len());
    for byte in bytes {
        text.push(DIGITS[usize::from(byte >> 4)] as char);
        text.push(DIGITS[usize::from(byte & 0xf)] as char);
    }
    text
}

/// RFC 4648 base32, lower-case, without padding.
fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut text = String::new();
    let (mut buffer, mut n_bits) = (0u32, 0);
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        n_bits += 8;
        while n_bits >= 5 {
            n_bits -= 5;
            text.push(ALPHABET[((buffer >> n_bits) & 31) as usize] as char);
        }
    }
    if n_bits > 0 {
        text.push(ALPHABET[((buffer << (5 - n_bits)) & 31) as usize] as char);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_to_argon2id_and_verify_only_themselves() {
        let hash = hash_password("correct horse").unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(verify_password("correct horse", Some(&hash)));
        assert!(!verify_password("correct horsf", Some(&hash)));
        assert!(!verify_password("correct horse", Some("not a phc string")));
        assert!(!verify_password("correct horse", None));
        assert_ne!(hash, hash_password("correct horse").unwrap(), "salted");
    }

    #[test]
    fn new_passwords_have_limits_that_errors_name() {
        assert_eq!(
            check_new_password("short").unwrap_err().to_string(),
            "the password is 5 characters long; use at least 8"
        );
        assert_eq!(
            hash_password(&"x".repeat(1025)).unwrap_err().to_string(),
            "the password is 1025 bytes long; use at most 1024"
        );
        let generated = generate_password().unwrap();
        assert_eq!(generated.len(), 26);
        assert!(check_new_password(&generated).is_ok());
        assert_ne!(generated, generate_password().unwrap());
    }

    #[test]
    fn refresh_tokens_are_prefixed_random_and_stored_as_their_sha256() {
        let (token, hash) = new_refresh_token().unwrap();
        assert!(
            token.starts_with("tars_rt_") && token.len() == 8 + 64,
            "{token}"
        );
        assert_eq!(refresh_token_hash(&token), Some(hash.clone()));
        assert_eq!(hash.len(), 64);
        assert_ne!(new_refresh_token().unwrap().0, token);
        for not_ours in [
            "",
            "tars_rt_",
            &token[8..],
            &token.to_uppercase(),
            &format!("{token}0"),
        ] {
            assert_eq!(refresh_token_hash(not_ours), None, "{not_ours}");
        }
    }

    #[test]
    fn hex_sha256_and_base32_match_their_references() {
        // FIPS 180-2 and RFC 4648 test vectors.
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(base32(b"foobar"), "mzxw6ytboi");
        assert_eq!(base32(b"f"), "my");
        assert_eq!(hex(&[0x00, 0xab, 0xff]), "00abff");
    }
}
