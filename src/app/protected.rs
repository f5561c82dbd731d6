//! Guards in the browser. The server's page guard (`server::page_guard`) has
//! already redirected before the first render; these keep the same rules for
//! client-side navigation, deciding before the target page renders:
//! `Protected` around each page that needs a session (the page table puts it
//! there, with the page's access), `leave_when_logged_in` on the guest-only
//! pages.

use leptos::either::EitherOf3;
use leptos::prelude::*;
use leptos_router::hooks::use_navigate;
use leptos_router::NavigateOptions;

use super::auth_store::AuthStore;
use super::components::{Forbidden, Header};
use super::routes::Access;
use crate::protocol::ROLE_ADMIN;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    Allow,
    Forbid,
    /// No token yet: a refresh decides, and nothing protected renders meanwhile.
    Wait,
}

/// Renders `children` only for a logged-in user allowed by `access`. Without a
/// token it refreshes first; a refused refresh goes to `/login?next=<here>`.
///
/// Typed children and `EitherOf3` rather than `AnyView`: each type erased
/// compiles every way of rendering it into the WASM, used or not.
#[component]
pub fn Protected<C: IntoView + 'static>(access: Access, children: TypedChildrenFn<C>) -> impl IntoView {
    let children = children.into_inner();
    let decision = decide(access);
    move || match decision.get() {
        Decision::Allow => EitherOf3::A(view! { <Header/> <main>{children()}</main> }),
        Decision::Forbid => EitherOf3::B(view! { <Header/> <main><Forbidden/></main> }),
        Decision::Wait => EitherOf3::C(view! {
            <main><p class="placeholder" aria-busy="true" data-testid="guard-waiting">"Checking your session…"</p></main>
        }),
    }
}

/// What `Protected` shows, and in the browser the refresh it starts when there
/// is no token. Kept out of `Protected`, which is compiled once per page (it is
/// generic over the page's view), so the WASM holds this once.
fn decide(access: Access) -> Memo<Decision> {
    let store = AuthStore::from_context();
    // A memo, so a refreshed token of the same user does not re-render the page.
    let decision = Memo::new(move |_| match store.claims() {
        Some(claims) if access == Access::Admin && claims.role != ROLE_ADMIN => Decision::Forbid,
        Some(_) => Decision::Allow,
        None => Decision::Wait,
    });
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        if decision.get() == Decision::Wait && !store.has_ended() {
            leptos::task::spawn_local(async move {
                let _ = super::client::refresh_or_sign_out(store, None).await;
            });
        }
    });
    decision
}

/// For `/login` and `/register`: once a session exists (this page logged in,
/// another tab did, or a silent refresh worked), go on to `next`. On arrival
/// it tries that silent refresh once: a visitor coming from another site has a
/// cookie the browser did not send with the first request.
pub fn leave_when_logged_in(next: Memo<String>) {
    let store = AuthStore::from_context();
    let navigate = use_navigate();
    Effect::new(move |_| {
        if store.is_logged_in() {
            navigate(
                &next.get_untracked(),
                NavigateOptions {
                    replace: true,
                    ..Default::default()
                },
            );
        }
    });
    #[cfg(feature = "hydrate")]
    if !store.is_logged_in_untracked() {
        leptos::task::spawn_local(async move {
            let _ = super::client::refresh(store, None).await;
        });
    }
}
