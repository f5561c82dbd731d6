//! The page guard and the form posts of issue 4, over HTTP: real redirects
//! before anything renders, user data in the server's HTML, a minted access
//! token in the hydration data, and forms that work without JavaScript.

use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE, COOKIE, LOCATION, ORIGIN, SET_COOKIE};
use reqwest::{Method, Response, StatusCode};

use crate::both_backends;
use crate::support::*;

both_backends!(
    protected_pages_redirect_visitors_without_a_session,
    protected_pages_render_for_the_session_with_a_minted_token,
    page_loads_of_a_session_share_a_token_while_half_its_lifetime_is_left,
    a_page_token_never_outlives_its_session,
    a_page_load_right_after_another_sees_revocations_and_rotations,
    guest_pages_send_a_session_on_to_a_safe_next,
    admin_page_is_forbidden_to_users,
    forms_log_in_and_out_without_javascript,
    forms_act_for_the_cookie_session_only,
    lists_on_pages_page_without_javascript,
    pages_allow_only_their_own_scripts,
    a_landing_from_another_site_loads_itself_again_with_the_cookie,
);

pub async fn get_page(server: &TestServer, path: &str, cookie: Option<&str>) -> Response {
    server
        .request(Method::GET, path, |r| {
            let r = r.header("accept", "text/html");
            match cookie {
                Some(cookie) => r.header(COOKIE, format!("{COOKIE_NAME}={cookie}")),
                None => r,
            }
        })
        .await
}

pub async fn post_form(server: &TestServer, path: &str, form: &[(&str, &str)], cookie: Option<&str>) -> Response {
    server
        .request(Method::POST, path, |r| {
            let r = r.form(form).header(ORIGIN, server.url(""));
            match cookie {
                Some(cookie) => r.header(COOKIE, format!("{COOKIE_NAME}={cookie}")),
                None => r,
            }
        })
        .await
}

/// Logs the cookie's session out, and checks that a protected page now redirects it.
async fn log_out(server: &TestServer, cookie: &str) {
    let logout = server
        .request(Method::POST, "/auth/logout", |r| r.header(COOKIE, format!("{COOKIE_NAME}={cookie}")))
        .await;
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    assert_eq!(get_page(server, "/", Some(cookie)).await.status(), StatusCode::FOUND);
}

pub fn location(response: &Response) -> String {
    response.headers()[LOCATION].to_str().expect("ascii location").to_string()
}

async fn protected_pages_redirect_visitors_without_a_session(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.register("alice").await;
    for (path, expected) in [
        ("/", "/login"),
        ("/sessions", "/login?next=%2Fsessions"),
        ("/account?tab=password", "/login?next=%2Faccount%3Ftab%3Dpassword"),
        ("/admin", "/login?next=%2Fadmin"),
    ] {
        for cookie in [None, Some("garbage"), Some("a".repeat(43).as_str())] {
            let response = get_page(&server, path, cookie).await;
            assert_eq!(response.status(), StatusCode::FOUND, "{path} with {cookie:?}");
            assert_eq!(location(&response), expected);
            assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
            let body = response.text().await.expect("body");
            assert!(!body.contains("Your sessions") && !body.contains("Log out"), "{path}: {body}");
        }
    }
    // An ended session is no session.
    log_out(&server, &alice.cookie).await;
    server.finish().await;
}

async fn protected_pages_render_for_the_session_with_a_minted_token(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.register("alice").await;
    let response = get_page(&server, "/sessions", Some(&alice.cookie)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
    assert!(response.headers().get(SET_COOKIE).is_none(), "a page load does not rotate the cookie");
    let body = response.text().await.expect("body");
    assert!(body.contains("alice"), "the user's name is in the HTML");
    assert!(body.contains("This device"), "the sessions list is rendered on the server");

    // The hydration data carries an access token for the same session, newly minted.
    let (token, _) = page_token(&body);
    assert_ne!(token, alice.access);
    assert_eq!(claims(token)["sid"], alice.sid());
    let me = server.get_bearer("/api/me", token).await;
    assert_eq!(me.status(), StatusCode::OK);

    // The cookie still refreshes: the page did not use it up.
    assert_eq!(server.refresh(&alice.cookie).await.status(), StatusCode::OK);
    // Right after that refresh (inside the grace window) a page load still knows the user.
    assert_eq!(get_page(&server, "/", Some(&alice.cookie)).await.status(), StatusCode::OK);
    server.finish().await;
}

/// The access token in a page's hydration data, and its `expires_in`.
pub fn page_token(body: &str) -> (&str, i64) {
    let token = body
        .split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .find(|s| s.starts_with("eyJ") && s.matches('.').count() == 2)
        .expect("an access token in the hydration data");
    let expires_in = body
        .split("expires_in")
        .nth(1)
        .and_then(|rest| rest.trim_start_matches(['\\', '"', ':']).split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|digits| digits.parse().ok())
        .expect("expires_in in the hydration data");
    (token, expires_in)
}

/// A page load that does not renew the session (more than half of its idle
/// life is left) does not extend it, so its token ends where the session would
/// end if nothing else happened (here: its idle time).
async fn a_page_token_never_outlives_its_session(backend: Backend) {
    let server = TestServer::start_with(backend, |s| {
        s.access_ttl = 600;
        s.refresh_idle_ttl = 900;
    })
    .await;
    let alice = server.register("alice").await;
    let idle_until = claims(&alice.access)["iat"].as_i64().unwrap() + 900;
    server.clock.advance(400);
    let response = get_page(&server, "/", Some(&alice.cookie)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(refresh_set_cookie(response.headers()).is_none(), "not renewed");
    let body = response.text().await.unwrap();
    let (token, expires_in) = page_token(&body);
    assert_eq!(expires_in, 500, "cut at the session's idle end, not a full 600");
    assert_eq!(claims(token)["exp"].as_i64().unwrap(), idle_until);
    assert_eq!(server.get_bearer("/api/me", token).await.status(), StatusCode::OK);
    server.finish().await;
}

async fn page_loads_of_a_session_share_a_token_while_half_its_lifetime_is_left(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.register("alice").await;
    let ttl = server.settings.access_ttl;
    let load = |cookie: String| {
        let server = &server;
        async move {
            let response = get_page(server, "/", Some(&cookie)).await;
            assert_eq!(response.status(), StatusCode::OK);
            let body = response.text().await.expect("body");
            let (token, expires_in) = page_token(&body);
            (token.to_string(), expires_in)
        }
    };
    let (first, expires_in) = load(alice.cookie.clone()).await;
    assert_eq!(expires_in, ttl);

    // A page load a while later hands over the same token, with what is left of it.
    server.clock.advance(ttl / 2 - 1);
    let (second, expires_in) = load(alice.cookie.clone()).await;
    assert_eq!(second, first);
    assert_eq!(expires_in, ttl - (ttl / 2 - 1));
    assert_eq!(server.get_bearer("/api/me", &second).await.status(), StatusCode::OK);

    // Another session of the same user has a token of its own.
    let phone = server.login_ok("alice").await;
    let (phones, _) = load(phone.cookie.clone()).await;
    assert_ne!(phones, first);
    assert_eq!(claims(&phones)["sid"], phone.sid());

    // With less than half its lifetime left, the next page load mints a new one.
    server.clock.advance(2);
    let (third, expires_in) = load(alice.cookie.clone()).await;
    assert_ne!(third, first);
    assert_eq!(expires_in, ttl);
    assert_eq!(claims(&third)["sid"], alice.sid());

    // A signed-out session gets no token at all, reused or new.
    log_out(&server, &alice.cookie).await;
    server.finish().await;
}

/// Page loads in the same second share one lookup of the session; what
/// happened to it in between still shows on the next load.
async fn a_page_load_right_after_another_sees_revocations_and_rotations(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.register("alice").await;
    let phone = server.login_ok("alice").await;
    assert_eq!(get_page(&server, "/", Some(&alice.cookie)).await.status(), StatusCode::OK);
    let out = server.post_bearer("/auth/logout-all", &phone.access, None).await;
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    let after = get_page(&server, "/", Some(&alice.cookie)).await;
    assert_eq!(after.status(), StatusCode::FOUND, "revoked a moment after a page load");
    assert_eq!(location(&after), "/login");

    // A token rotated after a page load counts for pages for the grace window
    // only; after it, it is theft (see `refresh_cookie.rs`).
    let bob = server.register("bob").await;
    assert_eq!(get_page(&server, "/", Some(&bob.cookie)).await.status(), StatusCode::OK);
    let refreshed = server.refresh(&bob.cookie).await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    let rotated = Session::from_response(refreshed).await;
    assert_eq!(get_page(&server, "/", Some(&rotated.cookie)).await.status(), StatusCode::OK);
    assert_eq!(get_page(&server, "/", Some(&bob.cookie)).await.status(), StatusCode::OK);
    server.clock.advance(server.settings.refresh_grace + 1);
    assert_eq!(get_page(&server, "/", Some(&bob.cookie)).await.status(), StatusCode::FOUND);
    assert_eq!(get_page(&server, "/", Some(&rotated.cookie)).await.status(), StatusCode::FOUND);

    // A form posted to another instance that showed the page a moment ago
    // cannot act for a session revoked since, even before that instance hears of it.
    let carol = server.register("carol").await;
    let other = server.sibling(|_| {}).await;
    assert_eq!(get_page(&other, "/sessions", Some(&carol.cookie)).await.status(), StatusCode::OK);
    let out = server.post_bearer("/auth/logout-all", &carol.access, None).await;
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    let acted = post_form(&other, "/sessions/revoke", &[("session_id", &carol.sid())], Some(&carol.cookie)).await;
    assert_eq!(location(&acted), "/login?next=%2Fsessions");
    other.stop();
    server.finish().await;
}

async fn guest_pages_send_a_session_on_to_a_safe_next(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.register("alice").await;
    for (path, expected) in [
        ("/login", "/"),
        ("/register", "/"),
        ("/login?next=%2Fsessions", "/sessions"),
        ("/login?next=https%3A%2F%2Fevil.example", "/"),
        ("/login?next=%2F%2Fevil.example", "/"),
        ("/login?next=%2F%5Cevil.example", "/"),
        ("/login?next=%2Flogin", "/"),
        ("/login?next=%ZZ%FF", "/"),
    ] {
        let response = get_page(&server, path, Some(&alice.cookie)).await;
        assert_eq!(response.status(), StatusCode::FOUND, "{path}");
        assert_eq!(location(&response), expected, "{path}");
    }
    let anonymous = get_page(&server, "/login?next=%2Fsessions", None).await;
    assert_eq!(anonymous.status(), StatusCode::OK);
    assert_eq!(anonymous.headers()[CACHE_CONTROL], "no-cache");
    let body = anonymous.text().await.expect("body");
    assert!(body.contains(r#"name="next""#) && body.contains(r#"value="/sessions""#), "next is kept in the form");
    server.finish().await;
}

async fn admin_page_is_forbidden_to_users(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.register("alice").await;
    let response = get_page(&server, "/admin", Some(&alice.cookie)).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let body = response.text().await.expect("body");
    assert!(body.contains("administrators only"));
    assert!(!body.contains("Recent security events"));

    let root = server.create_admin("root").await;
    let response = get_page(&server, "/admin", Some(&root.cookie)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.text().await.expect("body");
    assert!(body.contains("Recent security events") && body.contains("alice"));
    server.finish().await;
}

async fn forms_log_in_and_out_without_javascript(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.register("alice").await;

    let wrong = post_form(&server, "/login", &[("username", "alice"), ("password", "nope"), ("next", "/sessions")], None).await;
    assert_eq!(wrong.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&wrong), "/login?error=invalid_credentials&next=%2Fsessions");
    assert!(wrong.headers().get(SET_COOKIE).is_none());

    let evil = post_form(&server, "/login", &[("username", "alice"), ("password", PASSWORD), ("next", "//evil.example")], None).await;
    assert_eq!(location(&evil), "/");

    let ok = post_form(&server, "/login", &[("username", "alice"), ("password", PASSWORD), ("next", "/sessions")], None).await;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&ok), "/sessions");
    let set_cookie = refresh_set_cookie(ok.headers()).expect("a refresh cookie");
    assert!(cookie_attributes(&set_cookie).iter().any(|a| a == "HttpOnly"));
    let cookie = cookie_value(&set_cookie);
    assert_eq!(get_page(&server, "/sessions", Some(&cookie)).await.status(), StatusCode::OK);

    let weak = post_form(&server, "/register", &[("username", "bob"), ("password", "password")], None).await;
    assert_eq!(location(&weak), "/register?error=weak_password&next=%2F");
    let garbage = server
        .request(Method::POST, "/login", |r| r.header(CONTENT_TYPE, "application/x-www-form-urlencoded").body("%%%"))
        .await;
    assert_eq!(location(&garbage), "/login?error=bad_request");

    // A form posted from another site is refused before it is read.
    let cross = server
        .request(Method::POST, "/login", |r| {
            r.form(&[("username", "alice"), ("password", PASSWORD)]).header(ORIGIN, "https://evil.example")
        })
        .await;
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);

    let out = post_form(&server, "/logout", &[], Some(&cookie)).await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&out), "/login");
    let cleared = refresh_set_cookie(out.headers()).expect("the cookie is cleared");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    assert_eq!(server.refresh(&cookie).await.status(), StatusCode::UNAUTHORIZED);
    server.finish().await;
}

async fn forms_act_for_the_cookie_session_only(backend: Backend) {
    let server = TestServer::start(backend).await;
    let laptop = server.register("alice").await;
    let phone = server.login_ok("alice").await;
    let mallory = server.register("mallory").await;

    // Another user's session is not found, and stays alive.
    let refused = post_form(&server, "/sessions/revoke", &[("session_id", &laptop.sid())], Some(&mallory.cookie)).await;
    assert_eq!(location(&refused), "/sessions?error=not_found");
    assert_eq!(server.get_bearer("/api/me", &laptop.access).await.status(), StatusCode::OK);

    let revoked = post_form(&server, "/sessions/revoke", &[("session_id", &phone.sid())], Some(&laptop.cookie)).await;
    assert_eq!(location(&revoked), "/sessions?notice=session_revoked");
    assert_eq!(server.refresh(&phone.cookie).await.status(), StatusCode::UNAUTHORIZED);

    let anonymous = post_form(&server, "/account/password", &[("current_password", PASSWORD), ("new_password", "x")], None).await;
    assert_eq!(location(&anonymous), "/login?next=%2Faccount");
    let wrong = post_form(
        &server,
        "/account/password",
        &[("current_password", "nope"), ("new_password", "tangerine-lighthouse-orbit-31")],
        Some(&laptop.cookie),
    )
    .await;
    assert_eq!(location(&wrong), "/account?error=wrong_password");
    let changed = post_form(
        &server,
        "/account/password",
        &[("current_password", PASSWORD), ("new_password", "tangerine-lighthouse-orbit-31")],
        Some(&laptop.cookie),
    )
    .await;
    assert_eq!(location(&changed), "/account?notice=password_changed");
    assert_eq!(server.login("alice", "tangerine-lighthouse-orbit-31").await.status(), StatusCode::OK);

    let everywhere = post_form(&server, "/logout-all", &[], Some(&laptop.cookie)).await;
    assert_eq!(location(&everywhere), "/login");
    assert_eq!(server.refresh(&laptop.cookie).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(server.get_bearer("/api/me", &laptop.access).await.status(), StatusCode::UNAUTHORIZED);
    server.finish().await;
}

/// The `href` of the link marked `data-testid="{testid}"` in a page.
fn link_href(body: &str, testid: &str) -> Option<String> {
    let at = body.find(&format!(r#"data-testid="{testid}""#))?;
    let tag_start = body[..at].rfind('<')?;
    let tag = &body[tag_start..at + body[at..].find('>')?];
    let href = tag.split(r#"href=""#).nth(1)?.split('"').next()?;
    Some(href.replace("&amp;", "&"))
}

/// The sessions page and the admin page show a page of their lists and a
/// plain link to the next, rendered on the server: paging needs no JavaScript,
/// and signing a session out comes back to the page it was on.
async fn lists_on_pages_page_without_javascript(backend: Backend) {
    let server = TestServer::start_with(backend, |s| s.max_sessions_per_user = 1000).await;
    let alice = server.register("alice").await;
    const OLDER: &str = "00000000-0000-4000-8000-";
    insert_sessions(&server, "alice", OLDER, 100, 60).await;
    let shown = |body: &str| body.matches(r#"data-testid="session" data-current"#).count();

    let first = get_page(&server, "/sessions", Some(&alice.cookie)).await;
    assert_eq!(first.status(), StatusCode::OK);
    let body = first.text().await.unwrap();
    assert_eq!(shown(&body), 100, "a page of the default size");
    assert!(body.contains("This device"), "the newest, this one, comes first");
    assert!(link_href(&body, "first-page").is_none());
    let next = link_href(&body, "next-page").expect("a link to the next page");
    assert!(next.starts_with("/sessions?cursor="), "{next}");

    let second = get_page(&server, &next, Some(&alice.cookie)).await;
    assert_eq!(second.status(), StatusCode::OK);
    let body = second.text().await.unwrap();
    assert_eq!(shown(&body), 1);
    assert!(link_href(&body, "next-page").is_none(), "the last page");
    assert_eq!(link_href(&body, "first-page").as_deref(), Some("/sessions"));
    let cursor = next.trim_start_matches("/sessions?cursor=");
    assert!(
        body.contains(&format!(r#"name="cursor" value="{cursor}""#)),
        "the revoke form keeps the page"
    );

    // The last by id of those made in the same second.
    let last = format!("{OLDER}100000000001");
    assert!(body.contains(&last));
    let revoked = post_form(
        &server,
        "/sessions/revoke",
        &[("session_id", &last), ("cursor", cursor)],
        Some(&alice.cookie),
    )
    .await;
    assert_eq!(location(&revoked), format!("{next}&notice=session_revoked"));
    let body = get_page(&server, &next, Some(&alice.cookie))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(shown(&body), 0, "the only session of that page was signed out");

    let bad = get_page(&server, "/sessions?cursor=not-a-cursor", Some(&alice.cookie)).await;
    assert_eq!(bad.status(), StatusCode::OK);
    assert!(bad
        .text()
        .await
        .unwrap()
        .contains("That page of the list does not exist"));

    // The admin's lists page each on their own.
    let root = server.create_admin("root").await;
    for name in (0..100).map(|i| format!("user{i:03}")) {
        server
            .auth
            .create_user(&name, gatehouse::auth::password::Password::new(PASSWORD.into()), "user")
            .await
            .unwrap();
    }
    let body = get_page(&server, "/admin", Some(&root.cookie))
        .await
        .text()
        .await
        .unwrap();
    // By name: alice, root, user000 to user097 on the first page.
    assert!(
        body.contains("user097") && !body.contains("user098"),
        "the first 100 users by name"
    );
    let next = link_href(&body, "next-users_cursor").expect("a link to the next page of users");
    assert!(next.starts_with("/admin?users_cursor="), "{next}");
    let body = get_page(&server, &next, Some(&root.cookie)).await.text().await.unwrap();
    assert!(
        body.contains("user098") && body.contains("user099") && !body.contains("user097"),
        "the rest"
    );
    assert!(link_href(&body, "next-users_cursor").is_none());
    server.finish().await;
}

/// Every page names the scripts it may run: this site's, and inline ones
/// only with the nonce of this response, which every inline script of the
/// page carries. HSTS only where the site is known to be HTTPS.
async fn pages_allow_only_their_own_scripts(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.register("alice").await;
    let mut nonces = Vec::new();
    for (path, cookie) in [("/login", None), ("/sessions", Some(alice.cookie.as_str())), ("/nowhere", None)] {
        let page = get_page(&server, path, cookie).await;
        assert!(page.headers().get("strict-transport-security").is_none(), "not known to be HTTPS");
        let policy = page.headers()["content-security-policy"].to_str().unwrap().to_string();
        let directive = |name: &str| {
            policy
                .split(';')
                .map(str::trim)
                .find(|d| d.split(' ').next() == Some(name))
                .unwrap_or_else(|| panic!("{name} in {policy}"))
                .to_string()
        };
        let scripts = directive("script-src");
        assert!(!scripts.contains("unsafe-inline") && !scripts.contains("'unsafe-eval'"), "{scripts}");
        assert!(scripts.contains("'wasm-unsafe-eval'"), "{scripts}");
        for (name, value) in [("object-src", "'none'"), ("base-uri", "'none'"), ("frame-ancestors", "'none'")] {
            assert_eq!(directive(name), format!("{name} {value}"));
        }
        assert!(directive("connect-src").contains("'self'"));
        let nonce = scripts
            .split(' ')
            .find_map(|s| s.strip_prefix("'nonce-").and_then(|n| n.strip_suffix('\'')))
            .expect("a nonce")
            .to_string();
        let body = page.text().await.unwrap();
        let tags: Vec<&str> = body.split("<script").skip(1).map(|t| &t[..t.find('>').unwrap()]).collect();
        assert!(!tags.is_empty(), "{path} has scripts");
        for tag in tags {
            assert!(tag.contains(&format!("nonce=\"{nonce}\"")), "{path}: <script{tag}>");
        }
        nonces.push(nonce);
    }
    nonces.dedup();
    assert_eq!(nonces.len(), 3, "a fresh nonce per response");

    let https = server.sibling(|s| s.public_url = "https://login.example".into()).await;
    let page = get_page(&https, "/login", None).await;
    assert_eq!(page.headers()["strict-transport-security"], "max-age=31536000");
    https.stop();
    server.finish().await;
}

/// A link from another site arrives without the `SameSite=Strict` cookie: the
/// guard answers with an empty page that loads the same address again (from
/// this site, so with the cookie), instead of a redirect to the login form.
async fn a_landing_from_another_site_loads_itself_again_with_the_cookie(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.register("alice").await;
    let navigate = |site: &'static str, cookie: Option<String>| {
        let server = &server;
        async move {
            server
                .request(Method::GET, "/sessions", |r| {
                    let r = r
                        .header("accept", "text/html")
                        .header("sec-fetch-site", site)
                        .header("sec-fetch-mode", "navigate")
                        .header("sec-fetch-dest", "document");
                    match &cookie {
                        Some(cookie) => r.header(COOKIE, format!("{COOKIE_NAME}={cookie}")),
                        None => r,
                    }
                })
                .await
        }
    };
    let landing = navigate("cross-site", None).await;
    assert_eq!(landing.status(), StatusCode::OK);
    assert_eq!(landing.headers()[CACHE_CONTROL], "no-store");
    assert!(landing.headers().get(SET_COOKIE).is_none());
    let policy = landing.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(policy.contains("default-src 'none'"), "{policy}");
    let body = landing.text().await.unwrap();
    assert!(body.contains(r#"<meta http-equiv="refresh" content="0">"#), "{body}");
    assert!(!body.contains("password") && !body.contains("<script"), "nothing to flash: {body}");

    // The same navigation started by the page itself: no cookie means the login form, as before...
    let again = navigate("same-origin", None).await;
    assert_eq!(again.status(), StatusCode::FOUND);
    assert_eq!(location(&again), "/login?next=%2Fsessions");
    // ...and with the cookie, the page.
    let page = navigate("same-origin", Some(alice.cookie.clone())).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("this-device"));
    // A cross-site request that is not a navigation, and public pages, are answered as always.
    let fetched = server
        .request(Method::GET, "/sessions", |r| r.header("sec-fetch-site", "cross-site").header("sec-fetch-mode", "cors"))
        .await;
    assert_eq!(fetched.status(), StatusCode::FOUND);
    server.finish().await;
}
