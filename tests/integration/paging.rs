//! Lists that page: `GET /auth/sessions`, `/api/admin/users` and
//! `/api/admin/events` with `?limit=&cursor=`, the next page in `Link`.

use std::collections::HashSet;

use reqwest::header::LINK;
use reqwest::StatusCode;
use serde_json::Value;

use crate::both_backends;
use crate::support::*;

both_backends!(lists_page_with_a_cursor_in_link, bad_limits_and_cursors_are_refused);

/// Every item of the list at `path`, following `Link` from page to page of
/// `limit`; the pages seen and the items, in order.
async fn walk(server: &TestServer, token: &str, path: &str, limit: u32) -> (usize, Vec<Value>) {
    let mut next = Some(format!("{path}?limit={limit}"));
    let (mut pages, mut items) = (0, Vec::new());
    while let Some(url) = next.take() {
        let response = server.get_bearer(&url, token).await;
        assert_eq!(response.status(), StatusCode::OK, "{url}");
        let link = response.headers().get(LINK).map(|l| l.to_str().unwrap().to_string());
        let page: Vec<Value> = response.json().await.unwrap();
        assert!(page.len() <= limit as usize);
        pages += 1;
        items.extend(page);
        next = link.map(|link| {
            assert!(link.ends_with(r#">; rel="next""#), "{link}");
            let target = link.trim_start_matches('<').split('>').next().unwrap().to_string();
            assert!(target.starts_with(&format!("{path}?limit={limit}&cursor=")), "{target}");
            target
        });
    }
    (pages, items)
}

fn ids(items: &[Value]) -> Vec<String> {
    items.iter().map(|i| i["id"].as_str().unwrap().to_string()).collect()
}

async fn lists_page_with_a_cursor_in_link(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.create_admin("root").await;
    let alice = server.register("alice").await;
    // Sessions made in the same second are told apart by their ids.
    insert_sessions(&server, "alice", "11111111-1111-4111-8111-", 5, 30).await;
    server.clock.advance(1);
    let newest = server.login_ok("alice").await;
    for name in ["bob", "carol", "dave", "erin"] {
        server.register(name).await;
    }

    // Without parameters: the whole list, as before, with no `Link`.
    let all = server.get_bearer("/auth/sessions", &alice.access).await;
    assert!(all.headers().get(LINK).is_none());
    let all: Vec<Value> = all.json().await.unwrap();
    assert_eq!(all.len(), 7);
    assert_eq!(all[0]["id"], newest.sid(), "newest first");
    let (pages, walked) = walk(&server, &alice.access, "/auth/sessions", 2).await;
    assert_eq!(pages, 4);
    assert_eq!(
        ids(&walked),
        ids(&all),
        "the pages are the list, in order, nothing twice"
    );

    // A session that ends between two pages moves nothing from one to the other.
    let first = server.get_bearer("/auth/sessions?limit=3", &alice.access).await;
    let link = first.headers()[LINK].to_str().unwrap().to_string();
    let first: Vec<Value> = first.json().await.unwrap();
    let path = format!("/auth/sessions/{}", newest.sid());
    let revoked = server
        .request(reqwest::Method::DELETE, &path, |r| r.bearer_auth(&alice.access))
        .await;
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    let next_url = link.trim_start_matches('<').split('>').next().unwrap().to_string();
    let second: Vec<Value> = server.get_bearer(&next_url, &alice.access).await.json().await.unwrap();
    assert_eq!(ids(&second), ids(&all[3..6]));
    assert_eq!(ids(&first), ids(&all[..3]));

    let users: Vec<Value> = server
        .get_bearer("/api/admin/users", &admin.access)
        .await
        .json()
        .await
        .unwrap();
    let (pages, walked) = walk(&server, &admin.access, "/api/admin/users", 2).await;
    assert_eq!((users.len(), pages), (6, 3));
    assert_eq!(ids(&walked), ids(&users));
    let names: Vec<_> = users.iter().map(|u| u["username"].as_str().unwrap()).collect();
    assert_eq!(names, ["alice", "bob", "carol", "dave", "erin", "root"]);

    let events: Vec<Value> = server
        .get_bearer("/api/admin/events", &admin.access)
        .await
        .json()
        .await
        .unwrap();
    let (_, walked) = walk(&server, &admin.access, "/api/admin/events", 3).await;
    assert!(events.len() >= 7, "{events:?}");
    assert_eq!(ids(&walked), ids(&events));
    assert_eq!(ids(&walked).into_iter().collect::<HashSet<_>>().len(), events.len());
    server.finish().await;
}

async fn bad_limits_and_cursors_are_refused(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.create_admin("root").await;
    server.login_ok("root").await;
    let page = server.get_bearer("/auth/sessions?limit=1", &admin.access).await;
    let link = page.headers()[LINK].to_str().unwrap().to_string();
    let sessions_cursor = link
        .split("cursor=")
        .nth(1)
        .unwrap()
        .split('>')
        .next()
        .unwrap()
        .to_string();
    for path in [
        "/auth/sessions?limit=0".to_string(),
        "/auth/sessions?limit=501".to_string(),
        "/auth/sessions?limit=ten".to_string(),
        "/auth/sessions?limit=-1".to_string(),
        "/auth/sessions?cursor=%%%".to_string(),
        "/auth/sessions?cursor=bm90IG91cnM".to_string(),
        "/api/admin/users?limit=100000000000".to_string(),
        format!("/api/admin/events?cursor={sessions_cursor}"),
        format!("/api/admin/users?cursor={sessions_cursor}"),
    ] {
        let response = server.get_bearer(&path, &admin.access).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(error_code(response).await, "bad_request", "{path}");
    }
    assert_eq!(
        server
            .get_bearer("/auth/sessions?limit=500&cursor=", &admin.access)
            .await
            .status(),
        StatusCode::OK
    );
    // Without a token the answer is still 401, whatever the parameters.
    let anonymous = server
        .request(reqwest::Method::GET, "/auth/sessions?limit=0", |r| r)
        .await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    server.finish().await;
}
