//! What administrators may see: users and recent audit events.

use super::{Auth, AuthError, ROLE_ADMIN};
use crate::protocol::{AccessClaims, AuditEventView, UserView};

/// How many users or events the admin listings return at most.
const ADMIN_LIST_LIMIT: i64 = 200;

fn require_admin(claims: &AccessClaims) -> Result<(), AuthError> {
    if claims.role == ROLE_ADMIN {
        Ok(())
    } else {
        Err(AuthError::Forbidden)
    }
}

impl Auth {
    pub async fn admin_users(&self, claims: &AccessClaims) -> Result<Vec<UserView>, AuthError> {
        require_admin(claims)?;
        let users = self.store.list_users(ADMIN_LIST_LIMIT).await?;
        Ok(users
            .into_iter()
            .map(|u| UserView {
                id: u.id,
                username: u.username,
                role: u.role,
                created_at: u.created_at,
            })
            .collect())
    }

    pub async fn admin_events(&self, claims: &AccessClaims) -> Result<Vec<AuditEventView>, AuthError> {
        require_admin(claims)?;
        let events = self.store.recent_audit(ADMIN_LIST_LIMIT).await?;
        Ok(events
            .into_iter()
            .map(|e| AuditEventView {
                id: e.id,
                at: e.at,
                kind: e.kind,
                user_id: e.user_id,
                username: e.username,
                session_id: e.session_id,
                ip: e.ip,
                user_agent: e.user_agent,
                detail: e.detail,
            })
            .collect())
    }
}
