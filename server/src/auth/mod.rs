//! Bearer-token authentication shared by REST and the Socket.IO handshake.
//!
//! Tokens are HS256 JWTs with `sub` (the user id), `role` and an optional `name`. A valid token
//! for a user the server has not seen creates that user, so load tests need no user setup.

pub mod session;

use std::collections::HashSet;
use std::sync::Mutex;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::db::{Db, now_micros};
use crate::error::ApiError;
use crate::telemetry::metrics::Limit;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub exp: u64,
}

/// The caller of a request or the owner of a socket, once its token was checked.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub id: String,
    pub role: Role,
    pub name: Option<String>,
    /// When its token expires, seconds since the Unix epoch.
    pub expires_at: u64,
}

impl AuthUser {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

/// Signs and checks tokens with one HS256 secret.
pub struct Auth {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// Users known to exist in the database, so a request does not write for each token use.
    known_users: Mutex<HashSet<String>>,
}

const MAX_USER_ID_LEN: usize = 128;

impl Auth {
    pub fn new(secret: &str) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 30;
        Self {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            validation,
            known_users: Mutex::new(HashSet::new()),
        }
    }

    /// How long after `exp` a token is still accepted (clock skew between machines).
    pub fn leeway_secs(&self) -> u64 {
        self.validation.leeway
    }

    pub fn mint(&self, sub: &str, role: Role, name: Option<&str>, ttl_secs: u64) -> String {
        mint_token(&self.encoding, sub, role, name, ttl_secs)
    }

    /// Checks a token and returns who it speaks for.
    pub fn verify(&self, token: &str) -> Result<AuthUser, ApiError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| ApiError::Unauthorized(format!("invalid bearer token: {e}")))?;
        let c = data.claims;
        if c.sub.is_empty() || c.sub.len() > MAX_USER_ID_LEN {
            return Err(ApiError::Unauthorized(format!(
                "token `sub` must be 1 to {MAX_USER_ID_LEN} characters"
            )));
        }
        Ok(AuthUser {
            id: c.sub,
            role: c.role,
            name: c.name,
            expires_at: c.exp,
        })
    }

    /// Makes sure the user row exists (created on first sight of a valid token).
    pub async fn ensure_user(&self, db: &Db, user: &AuthUser) -> Result<(), ApiError> {
        if self
            .known_users
            .lock()
            .expect("poisoned")
            .contains(&user.id)
        {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO users (id, name, role, created_us) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(&user.id)
        .bind(user.name.clone().unwrap_or_else(|| user.id.clone()))
        .bind(user.role.as_str())
        .bind(now_micros())
        .execute(&db.pool)
        .await?;
        self.known_users
            .lock()
            .expect("poisoned")
            .insert(user.id.clone());
        Ok(())
    }
}

/// Signs a token with `secret` (used by `booking-server mint-token`).
pub fn mint_with_secret(
    secret: &str,
    sub: &str,
    role: Role,
    name: Option<&str>,
    ttl_secs: u64,
) -> String {
    mint_token(
        &EncodingKey::from_secret(secret.as_bytes()),
        sub,
        role,
        name,
        ttl_secs,
    )
}

fn mint_token(key: &EncodingKey, sub: &str, role: Role, name: Option<&str>, ttl: u64) -> String {
    let claims = Claims {
        sub: sub.to_string(),
        role,
        name: name.map(str::to_string),
        exp: jsonwebtoken::get_current_timestamp() + ttl,
    };
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, key)
        .expect("HS256 signing of plain claims cannot fail")
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| {
                ApiError::Unauthorized("missing `Authorization: Bearer` header".into())
            })?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .ok_or_else(|| {
                ApiError::Unauthorized("`Authorization` must be `Bearer <token>`".into())
            })?;
        let user = state.auth.verify(token.trim())?;
        let writes = !matches!(
            parts.method,
            axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
        );
        if writes
            && !user.is_admin()
            && let Err(wait) = state.write_rates.admit(&user.id, std::time::Instant::now())
        {
            state.metrics.limit_hit(Limit::WritesPerUser).increment(1);
            tracing::info!(user = %user.id, "write refused: too many writes a second");
            return Err(ApiError::TooManyRequests {
                message: format!(
                    "too many writes: at most {} a second per user; retry after the wait",
                    state.write_rates.per_second()
                ),
                retry_after: wait,
            });
        }
        state.auth.ensure_user(&state.db, &user).await?;
        Ok(user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_verify_and_carry_role() {
        let auth = Auth::new("s3cret");
        let token = auth.mint("alice", Role::Admin, Some("Alice"), 60);
        let user = auth.verify(&token).unwrap();
        assert_eq!(user.id, "alice");
        assert!(user.is_admin());
        assert_eq!(user.name.as_deref(), Some("Alice"));
    }

    #[test]
    fn tokens_of_another_secret_are_refused() {
        let token = mint_with_secret("other", "bob", Role::User, None, 60);
        let err = Auth::new("s3cret").verify(&token).unwrap_err();
        assert_eq!(err.status(), axum::http::StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn expired_tokens_are_refused() {
        let claims = Claims {
            sub: "bob".into(),
            role: Role::User,
            name: None,
            exp: jsonwebtoken::get_current_timestamp() - 3600,
        };
        let key = EncodingKey::from_secret(b"s3cret");
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).unwrap();
        assert!(Auth::new("s3cret").verify(&token).is_err());
        assert!(Auth::new("s3cret").verify("not-a-token").is_err());
    }
}
