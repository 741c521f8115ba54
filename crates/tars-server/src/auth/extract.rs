//! The [`Principal`] extractor: `Authorization: Bearer <access token>`, verified by the
//! [`Auth`] in the router's state, or a 401 [`ApiError`] that says what was wrong.

use super::{Auth, AuthError, Principal};
use crate::error::ApiError;
use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use std::sync::Arc;

/// The token of `Authorization: Bearer <token>` (the scheme in any case, RFC 7235 §2.1).
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, AuthError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(if headers.contains_key(header::AUTHORIZATION) {
            AuthError::MalformedHeader
        } else {
            AuthError::MissingToken
        });
    };
    let value = value.to_str().map_err(|_| AuthError::MalformedHeader)?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(token.trim())
        }
        _ => Err(AuthError::MalformedHeader),
    }
}

/// Verifies the bearer token once per request: a principal that a middleware already put in
/// the request's extensions is reused, and the one verified here is stored there.
impl<S> FromRequestParts<S> for Principal
where
    Arc<Auth>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Principal, ApiError> {
        if let Some(principal) = parts.extensions.get::<Principal>() {
            return Ok(principal.clone());
        }
        let auth = Arc::<Auth>::from_ref(state);
        let principal = auth.authenticate(bearer_token(&parts.headers)?).await?;
        parts.extensions.insert(principal.clone());
        Ok(principal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn bearer_tokens_are_read_and_everything_else_is_named() {
        assert_eq!(
            bearer_token(&headers(&["Bearer abc.def.ghi"])).unwrap(),
            "abc.def.ghi"
        );
        assert_eq!(bearer_token(&headers(&["bearer  abc "])).unwrap(), "abc");
        assert!(matches!(
            bearer_token(&headers(&[])),
            Err(AuthError::MissingToken)
        ));
        for malformed in [
            &["Basic YWRtaW46YWRtaW4="][..],
            &["Bearer"],
            &["Bearer "],
            &["abc.def.ghi"],
            &["Bearer a", "Bearer b"],
        ] {
            assert!(
                matches!(
                    bearer_token(&headers(malformed)),
                    Err(AuthError::MalformedHeader)
                ),
                "{malformed:?}"
            );
        }
    }
}
