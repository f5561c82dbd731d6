//! What administrators may see and do: users and recent audit events, and
//! (from the command line) a user's role.

use super::audit::{AuditKind, Event};
use super::{Auth, AuthError, ClientInfo, ROLE_ADMIN};
use crate::protocol::{username_rule, AccessClaims, AuditEventView, UserView};
use crate::store::UserRecord;

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

    /// Gives the account of `username` the role `role` and ends every session
    /// of theirs, on every instance at once (in memory here, by notice or the
    /// next poll elsewhere): an access token carries its role, so none with
    /// the old role may stay live. The person logs in again with the new one.
    pub async fn set_role(&self, username: &str, role: &str) -> Result<UserRecord, AuthError> {
        let key = username_rule::key(username);
        let mut user = self.store.user_by_name_key(&key).await?.ok_or(AuthError::NotFound)?;
        let now = self.now();
        let revoked = self.store.set_role(&user.id, role, now).await?;
        let detail = format!("{} → {role}; {} sessions ended", user.role, revoked.len());
        self.sessions_revoked(&user.id, revoked, "role_changed", now).await;
        user.role = role.to_string();
        self.audit(Event {
            kind: AuditKind::RoleChanged,
            at: now,
            account: Some((&user).into()),
            session_id: None,
            client: &ClientInfo::default(),
            detail: Some(detail),
        })
        .await?;
        Ok(user)
    }
}
