//! What administrators may see: users and recent audit events.

use super::paging::{timed_key, List, PageRequest};
use super::{Auth, AuthError, ROLE_ADMIN};
use crate::protocol::{username_rule, AccessClaims, AuditEventView, Paged, UserView};

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
}
