//! What the web app asks before and after sign-in: the server's public settings
//! (`GET /api/config`), who a token speaks for (`GET /api/me`), and, only with `--dev-login`,
//! a sign-in by name for local runs (`POST /api/auth/dev-login`).

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::{AuthUser, Role};
use crate::app::AppState;
use crate::bookings::rules::check_no_control;
use crate::error::{ApiError, ApiJson, ApiResult};

/// How long a dev-login token lasts: a working day, so a page left open keeps working.
pub const DEV_TOKEN_TTL_SECS: u64 = 12 * 3600;
/// Longest display name a dev login accepts.
pub const MAX_DISPLAY_NAME_LEN: usize = 64;
/// Longest user id a dev login makes, in bytes (tokens accept up to 128).
pub const MAX_DEV_USER_ID_LEN: usize = 96;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/config", get(config))
        .route("/api/me", get(me))
        .route("/api/auth/dev-login", post(dev_login))
}

/// The settings a page needs before it has a token.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicConfig {
    /// True when `POST /api/auth/dev-login` signs people in (the `--dev-login` flag).
    pub dev_login: bool,
    pub node: String,
}

async fn config(State(state): State<AppState>) -> Json<PublicConfig> {
    Json(PublicConfig {
        dev_login: state.config.dev_login,
        node: state.realtime.node().to_string(),
    })
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Me {
    pub id: String,
    pub name: String,
    pub role: Role,
}

impl From<AuthUser> for Me {
    fn from(user: AuthUser) -> Self {
        Me {
            name: user.name.unwrap_or_else(|| user.id.clone()),
            id: user.id,
            role: user.role,
        }
    }
}

async fn me(user: AuthUser) -> Json<Me> {
    Json(Me::from(user))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevLogin {
    pub name: String,
    #[serde(default)]
    pub role: Option<Role>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct DevSession {
    pub token: String,
    pub user: Me,
}

async fn dev_login(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<DevLogin>,
) -> ApiResult<Json<DevSession>> {
    if !state.config.dev_login {
        return Err(ApiError::NotFound(
            "dev login is off: start the server with --dev-login, or sign in with a token".into(),
        ));
    }
    check_no_control("name", &body.name).map_err(ApiError::Unprocessable)?;
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > MAX_DISPLAY_NAME_LEN {
        return Err(ApiError::Unprocessable(format!(
            "name must be 1 to {MAX_DISPLAY_NAME_LEN} characters"
        )));
    }
    let id = user_id_of(name).ok_or_else(|| {
        ApiError::Unprocessable("name must contain at least one letter or digit".into())
    })?;
    let user = Me {
        id,
        name: name.to_string(),
        role: body.role.unwrap_or(Role::User),
    };
    let token = state
        .auth
        .mint(&user.id, user.role, Some(&user.name), DEV_TOKEN_TTL_SECS);
    tracing::info!(user = %user.id, role = user.role.as_str(), "dev login");
    Ok(Json(DevSession { token, user }))
}

/// The user id of a display name: lowercase letters and digits, other runs become one `-`
/// ("Alice Smith" -> "alice-smith"), cut to [`MAX_DEV_USER_ID_LEN`] bytes; `None` when nothing
/// is left.
pub fn user_id_of(name: &str) -> Option<String> {
    let mut id = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if id.len() + c.len_utf8() > MAX_DEV_USER_ID_LEN {
            break;
        }
        if c.is_alphanumeric() {
            id.push(c);
        } else if !id.is_empty() && !id.ends_with('-') {
            id.push('-');
        }
    }
    let id = id.trim_end_matches('-').to_string();
    (!id.is_empty()).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::user_id_of;

    #[test]
    fn display_names_become_stable_user_ids() {
        assert_eq!(user_id_of("Alice").as_deref(), Some("alice"));
        assert_eq!(
            user_id_of("  Alice  Smith ").as_deref(),
            Some("alice-smith")
        );
        assert_eq!(user_id_of("Zoë O'Neil").as_deref(), Some("zoë-o-neil"));
        assert_eq!(user_id_of("--- !!").as_deref(), None);
        let long = user_id_of(&"ë".repeat(64)).unwrap();
        assert!(long.len() <= super::MAX_DEV_USER_ID_LEN, "{}", long.len());
    }
}
