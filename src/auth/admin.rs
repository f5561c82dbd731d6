//! What administrators may see and do: users and recent audit events, and
//! (from the command line) a user's role.

use super::audit::{AuditKind, Event};
use super::paging::{timed_key, List, PageRequest};
use super::{Auth, AuthError, ClientInfo, ROLE_ADMIN};
use crate::protocol::{username_rule, AccessClaims, AuditEventView, Paged, UserView};
use crate::store::UserRecord;

fn require_admin(claims: &AccessClaims) -> Result<(), AuthError> {
    if claims.role == ROLE_ADMIN {
        Ok(())
    } else {
        Err(AuthError::Forbidden)
    }
}

impl Auth {
    /// Users by name (case-folded), a page at a time.
    pub async fn admin_users(&self, claims: &AccessClaims, page: &PageRequest) -> Result<Paged<UserView>, AuthError> {
        require_admin(claims)?;
        let after = page.after_named(List::Users)?;
        let users = self.store.list_users(after.as_deref(), page.rows()).await?;
        Ok(page.page(
            List::Users,
            users,
            |u| username_rule::key(&u.username),
            |u| UserView {
                id: u.id,
                username: u.username,
                role: u.role,
                created_at: u.created_at,
            },
        ))
    }

    /// Audit events, the newest first, a page at a time.
    pub async fn admin_events(
        &self,
        claims: &AccessClaims,
        page: &PageRequest,
    ) -> Result<Paged<AuditEventView>, AuthError> {
        require_admin(claims)?;
        let after = page.after_timed(List::Events)?;
        let events = self
            .store
            .recent_audit(after.as_ref().map(|(at, id)| (*at, id.as_str())), page.rows())
            .await?;
        Ok(page.page(
            List::Events,
            events,
            |e| timed_key(e.at, &e.id),
            |e| AuditEventView {
                id: e.id,
                at: e.at,
                kind: e.kind,
                user_id: e.user_id,
                username: e.username,
                session_id: e.session_id,
                ip: e.ip,
                user_agent: e.user_agent,
                detail: e.detail,
            },
        ))
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
