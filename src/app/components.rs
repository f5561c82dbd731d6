//! Pieces several pages share: the header, announcements, the strength meter,
//! the 403 page, and the sentences for the server's error codes.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_location, use_query_map};

use super::auth_store::AuthStore;
use super::routes::{is_under, ACCOUNT, ADMIN, DASHBOARD, SESSIONS};
use crate::protocol::{password_rule, ROLE_ADMIN};

/// What a person reads for an error code of the API or a form redirect.
pub fn error_message(code: &str) -> &'static str {
    match code {
        "invalid_credentials" => "Wrong username or password.",
        "wrong_password" => "Your current password is not right.",
        "username_taken" => "That username is taken. Pick another.",
        "invalid_username" => "A username has 3 to 32 of the letters a-z, digits, '.', '_' or '-'.",
        "weak_password" => "That password is too easy to guess.",
        "rate_limited" => "Too many attempts. Wait a little and try again.",
        "not_found" => "That no longer exists.",
        "forbidden" => "You are not allowed to do that.",
        "cross_site_request" => "The request came from another site and was refused.",
        "signed_out" => "Your session has ended. Log in again.",
        "bad_request" => "The form was incomplete. Fill in every field.",
        "invalid_email" => "That is not an e-mail address we can send to.",
        "email_taken" => "That address belongs to another account.",
        "invalid_code" => "That code is not right, or this sign-in has expired. Try again, or start again.",
        "reauth_required" => "Confirm it is you to make this change.",
        "second_factor_required" => "Set up a second factor first.",
        "totp_enabled" => "An authenticator app is set up already.",
        "totp_not_enabled" => "No authenticator app is set up, or the setup was restarted elsewhere.",
        "invalid_token" => "This link or code does not work any more: it was used, replaced by a newer one, or expired. Ask for a new one.",
        _ => "The server could not do that just now. Try again.",
    }
}

/// What a person reads for a success code of a form redirect.
pub fn notice_message(code: &str) -> Option<&'static str> {
    match code {
        "password_changed" => Some("Password changed. Your other sessions were signed out."),
        "session_revoked" => Some("The session was signed out."),
        "reset_mailed" => Some(
            "If an account has this verified address, a link to choose a new password is on its way. \
             It works once, and not for long.",
        ),
        "password_reset" => Some("Your password was changed and every session signed out. Log in with the new password."),
        "email_verified" => Some("Your address is confirmed."),
        "totp_removed" => Some("Two-step sign-in is off. Signing in needs only your password now."),
        "verification_mailed" => Some("A link to confirm the address is on its way. Until you open it, your old address stays."),
        _ => None,
    }
}

/// The error and notice a page announces, starting from the `?error=` and
/// `?notice=` codes a form post without JavaScript came back with.
pub fn page_messages() -> (RwSignal<Option<String>>, RwSignal<Option<String>>) {
    let query = use_query_map();
    let error = query.with_untracked(|q| q.get("error")).map(|code| error_message(&code).to_string());
    let notice = query.with_untracked(|q| q.get("notice")).and_then(|code| notice_message(&code));
    (RwSignal::new(error), RwSignal::new(notice.map(str::to_string)))
}

/// A form field's signal, starting from what was typed into the field
/// before the WASM hydrated the page: hydration sets each bound field to its
/// signal, which would otherwise empty it under the person's fingers. Empty
/// on the server, and when the page was reached by client-side navigation
/// (the field found then would be the previous page's).
pub fn typed_field(id: &str) -> RwSignal<String> {
    #[cfg(feature = "hydrate")]
    let typed = {
        use wasm_bindgen::JsCast as _;
        let hydrating = Owner::current_shared_context().is_some_and(|context| context.during_hydration());
        hydrating
            .then(|| document().get_element_by_id(id))
            .flatten()
            .and_then(|field| field.dyn_into::<web_sys::HtmlInputElement>().ok())
            .map(|field| field.value())
            .unwrap_or_default()
    };
    #[cfg(not(feature = "hydrate"))]
    let typed = {
        let _ = id;
        String::new()
    };
    RwSignal::new(typed)
}

/// A region screen readers announce when its text changes.
#[component]
pub fn Announce(
    #[prop(into)] message: Signal<Option<String>>,
    #[prop(default = "error")] kind: &'static str,
) -> impl IntoView {
    let role = if kind == "error" { "alert" } else { "status" };
    view! {
        <p class=format!("announce {kind}") role=role aria-live="polite" data-testid=format!("{kind}-message")>
            {move || message.get().unwrap_or_default()}
        </p>
    }
}

/// Rates a password with the server's own rule. `#[lazy]`: with `--split` the
/// rule and zxcvbn's dictionaries (most of the WASM) go in a chunk of their
/// own, fetched the first time someone types a password, not on every page.
#[lazy]
fn rate_password(password: String, username: String) -> password_rule::Strength {
    password_rule::check(&password, &[&username])
}

/// The live strength meter: the same rule the server applies.
#[component]
pub fn StrengthMeter(#[prop(into)] password: Signal<String>, #[prop(into)] username: Signal<String>) -> impl IntoView {
    let (strength, set_strength) = signal(None::<password_rule::Strength>);
    // Effects run only in the browser; a rating that arrives after the text
    // changed again is dropped.
    Effect::new(move |_| {
        let typed = password.get();
        let name = username.get();
        if typed.is_empty() {
            set_strength.set(None);
            return;
        }
        leptos::task::spawn_local(async move {
            let rated = rate_password(typed.clone(), name.clone()).await;
            if password.get_untracked() == typed && username.get_untracked() == name {
                set_strength.set(Some(rated));
            }
        });
    });
    let score = move || strength.with(|s| s.as_ref().map_or(0, |s| s.score));
    let label = move || match strength.get() {
        None => "Strength: enter a password".to_string(),
        Some(s) if s.acceptable() => format!("Strength: {} of 4, good", s.score),
        Some(s) => format!("Strength: {} of 4, too weak", s.score),
    };
    view! {
        <div class="strength" data-testid="strength">
            <meter min="0" max="4" low="2.5" high="3.5" optimum="4" value=score aria-label="Password strength"></meter>
            <p class="hint" aria-live="polite" data-testid="strength-label">{label}</p>
            <ul class="hint">
                {move || strength.get().map(|s| s.reasons).unwrap_or_default().into_iter().map(|r| view! { <li>{r}</li> }).collect_view()}
            </ul>
        </div>
    }
}

/// The header of every protected page: where you are, who you are, logout.
#[component]
pub fn Header() -> impl IntoView {
    let store = AuthStore::from_context();
    let is_admin = move || store.claims().is_some_and(|c| c.role == ROLE_ADMIN);
    let log_out = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        #[cfg(feature = "hydrate")]
        leptos::task::spawn_local(super::client::log_out(store));
    };
    view! {
        <header class="site-header">
            <a class="brand" href=DASHBOARD>"Gatehouse"</a>
            <nav aria-label="Main">
                <NavLink href=DASHBOARD label="Dashboard"/>
                <NavLink href=SESSIONS label="Sessions"/>
                <NavLink href=ACCOUNT label="Account"/>
                {move || is_admin().then(|| view! { <NavLink href=ADMIN label="Admin"/> })}
            </nav>
            <div class="who">
                <span data-testid="header-username">{move || store.username().unwrap_or_default()}</span>
                <form method="post" action="/logout" on:submit=log_out>
                    <button type="submit" class="secondary" data-testid="logout">"Log out"</button>
                </form>
            </div>
        </header>
        // Every change that may ask to confirm it is you is on a page with
        // this header; here, the dialog loads with the protected pages' chunk
        // rather than with every page (the login page never needs it).
        <ReauthDialog/>
    }
}

/// A link of the main navigation, `aria-current="page"` on the page it leads
/// to. A plain link: the router already takes every same-site click, and
/// leptos_router's `<A>` cost each protected page 3 to 4 KB of compressed WASM.
#[component]
fn NavLink(href: &'static str, label: &'static str) -> impl IntoView {
    let location = use_location();
    let current = move || location.pathname.with(|path| is_under(path, href).then_some("page"));
    view! { <a href=href aria-current=current>{label}</a> }
}

/// The page a user sees for a page of another role; the server answers it with 403.
#[component]
pub fn Forbidden() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(http::StatusCode::FORBIDDEN);
    }
    view! {
        <Title text="Not allowed · Gatehouse"/>
        <section class="card" data-testid="forbidden">
            <h1>"Not allowed"</h1>
            <p>"This page is for administrators only."</p>
            <p><a href=DASHBOARD>"Back to your dashboard"</a></p>
        </section>
    }
}

/// `1 h 2 min`, `3 min 4 s`, `5 s`.
pub fn duration_text(seconds: i64) -> String {
    let seconds = seconds.max(0);
    match (seconds / 3600, seconds % 3600 / 60, seconds % 60) {
        (0, 0, s) => format!("{s} s"),
        (0, m, s) => format!("{m} min {s} s"),
        (h, m, _) => format!("{h} h {m} min"),
    }
}

/// A Unix time as `YYYY-MM-DD HH:MM UTC`, the same on server and browser.
///
/// Worked out here, not with a date crate: this is all the calendar the pages
/// need, and the `time` crate's formatting cost every page showing dates 6 KB
/// of compressed WASM. The tests check it against `time`.
pub fn time_text(unix: i64) -> String {
    let (days, seconds) = (unix.div_euclid(86_400), unix.rem_euclid(86_400));
    // Howard Hinnant's `civil_from_days`: the Gregorian date of a day count
    // from 1970-01-01, in 400-year eras whose years start on 1 March.
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 };
    let year = era * 400 + year_of_era + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02} UTC", seconds / 3_600, seconds % 3_600 / 60)
}

/// "Chrome on Linux" from a user agent string: enough to recognise a device.
pub fn device_text(user_agent: Option<&str>) -> String {
    let Some(ua) = user_agent else {
        return "Unknown device".to_string();
    };
    let browser = [("Edg/", "Edge"), ("Firefox/", "Firefox"), ("Chrome/", "Chrome"), ("Safari/", "Safari")]
        .iter()
        .find(|(marker, _)| ua.contains(marker))
        .map_or("Another client", |(_, name)| name);
    let system = [("Android", "Android"), ("iPhone", "iOS"), ("iPad", "iPadOS"), ("Windows", "Windows"), ("Mac OS X", "macOS"), ("Linux", "Linux")]
        .iter()
        .find(|(marker, _)| ua.contains(marker))
        .map(|(_, name)| *name);
    match system {
        Some(system) => format!("{browser} on {system}"),
        None => browser.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_dates() {
        assert_eq!(time_text(0), "1970-01-01 00:00 UTC");
        assert_eq!(time_text(1_795_000_000), "2026-11-18 11:06 UTC");
        assert_eq!(time_text(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(time_text(-1), "1969-12-31 23:59 UTC");
    }

    proptest::proptest! {
        #[test]
        fn times_agree_with_the_time_crate(unix in -62_135_596_800i64..253_402_300_799) {
            let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
            let expected = time::OffsetDateTime::from_unix_timestamp(unix).unwrap().format(&format).unwrap();
            proptest::prop_assert_eq!(time_text(unix), expected);
        }
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration_text(5), "5 s");
        assert_eq!(duration_text(125), "2 min 5 s");
        assert_eq!(duration_text(3_725), "1 h 2 min");
        assert_eq!(duration_text(-3), "0 s");
    }

    #[test]
    fn devices_are_recognisable() {
        let chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Safari/537.36";
        assert_eq!(device_text(Some(chrome)), "Chrome on Linux");
        assert_eq!(device_text(Some("curl/8.0")), "Another client");
        assert_eq!(device_text(None), "Unknown device");
    }
}

/// The re-auth step, over whatever page asked for it: a sensitive change
/// needs a recent sign-in, so the person types the password or a code, and
/// the change that was refused goes through (`client::reauth`). Dismissed,
/// the change stays undone and its page says why.
#[component]
pub fn ReauthDialog() -> impl IntoView {
    let store = AuthStore::from_context();
    let secret = RwSignal::new(String::new());
    let with_code = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let pending = RwSignal::new(false);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        #[cfg(feature = "hydrate")]
        {
            if pending.get_untracked() {
                return;
            }
            let typed = secret.get_untracked();
            let is_code = with_code.get_untracked();
            pending.set(true);
            error.set(None);
            leptos::task::spawn_local(async move {
                match super::client::reauth::submit_typed(store, &typed, is_code).await {
                    Ok(()) => secret.set(String::new()),
                    Err(err) => error.set(Some(error_message(err.code()).to_string())),
                }
                pending.set(false);
            });
        }
    };
    let dismiss = move |_| {
        secret.set(String::new());
        error.set(None);
        #[cfg(feature = "hydrate")]
        super::client::reauth::finish(store, false);
    };
    let switch = move |_| {
        with_code.update(|c| *c = !*c);
        secret.set(String::new());
        error.set(None);
    };
    let with_passkey = move |_| {
        #[cfg(feature = "hydrate")]
        {
            if pending.get_untracked() {
                return;
            }
            pending.set(true);
            error.set(None);
            leptos::task::spawn_local(async move {
                if let Some(refused) = passkey_reauth(store).await {
                    error.set(Some(refused));
                }
                pending.set(false);
            });
        }
    };
    view! {
        <Show when=move || store.reauth_asked()>
            <div class="modal" role="dialog" aria-modal="true" aria-labelledby="reauth-title" data-testid="reauth-dialog">
                <form class="card" on:submit=submit>
                    <h2 id="reauth-title">"Confirm it is you"</h2>
                    <p class="hint">"This change needs a recent sign-in. Nothing you typed is lost: it goes through once you confirm."</p>
                    <label for="reauth-secret">{move || if with_code.get() { "Code from your authenticator app, or a recovery code" } else { "Password" }}</label>
                    <input id="reauth-secret" required autofocus
                        type=move || if with_code.get() { "text" } else { "password" }
                        autocomplete=move || if with_code.get() { "one-time-code" } else { "current-password" }
                        bind:value=secret/>
                    <Announce message=error/>
                    <button type="submit" disabled=move || pending.get() data-testid="reauth-submit">"Confirm"</button>
                    <button type="button" class="secondary" on:click=switch data-testid="reauth-switch">
                        {move || if with_code.get() { "Use the password instead" } else { "Use a code instead" }}
                    </button>
                    <button type="button" class="secondary" on:click=with_passkey disabled=move || pending.get()
                        data-testid="reauth-passkey">"Use a passkey"</button>
                    <button type="button" class="secondary" on:click=dismiss data-testid="reauth-cancel">"Cancel"</button>
                </form>
            </div>
        </Show>
    }
}

/// The re-auth step with a passkey, in a chunk of its own (the passkey code
/// stays out of the module every page loads): why it failed, if it did.
#[cfg(feature = "hydrate")]
#[lazy]
async fn passkey_reauth(store: AuthStore) -> Option<String> {
    use super::client::passkeys::{reauth, PasskeyError};
    match reauth(store).await {
        Ok(()) | Err(PasskeyError::Cancelled) => None,
        Err(PasskeyError::Unsupported) => Some("This browser has no passkeys.".to_string()),
        Err(PasskeyError::Refused(err)) => Some(error_message(err.code()).to_string()),
    }
}
