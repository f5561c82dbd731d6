//! A database written under an earlier schema reads the same after the
//! migrations that followed.

use gatehouse::auth::rotation::{decide, RotationRules, Verdict};
use gatehouse::store::{Store, Successor};

use crate::both_backends;
use crate::support::*;

both_backends!(sessions_written_before_idle_expiry_moved_to_tokens_keep_their_times);

/// Migration 0002 moved a session's last use and idle expiry from its row to
/// its tokens: what the old columns held must still come back, and the
/// session must go on rotating from where it was.
async fn sessions_written_before_idle_expiry_moved_to_tokens_keep_their_times(backend: Backend) {
    let (url, postgres_db) = create_database(backend).await;
    if let Some(path) = url.strip_prefix("sqlite://") {
        let path = std::path::Path::new(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::File::create(path).unwrap();
    }
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    let dir = std::env::temp_dir().join(format!("gatehouse-migrations-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/src/store/migrations/0001_schema.sql"),
        dir.join("0001_schema.sql"),
    )
    .unwrap();
    sqlx::migrate::Migrator::new(dir.as_path()).await.unwrap().run(&pool).await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();

    let statements = [
        "INSERT INTO users (id, username, username_key, password_hash, role, created_at, password_changed_at)
         VALUES ('u1', 'alice', 'alice', 'x', 'user', 1000, 1000)",
        "INSERT INTO sessions (id, user_id, created_at, last_used_at, idle_expires_at, expires_at, user_agent, ip)
         VALUES ('s1', 'u1', 1000, 5000, 9000, 100000, 'agent', '127.0.0.1')",
        "INSERT INTO refresh_tokens (hash, session_id, issued_at, rotated_at, successor_hash, successor_sealed)
         VALUES ('old', 's1', 1000, 5000, 'current', 'sealed')",
        "INSERT INTO refresh_tokens (hash, session_id, issued_at) VALUES ('current', 's1', 5000)",
    ];
    for statement in statements {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    pool.close().await;

    let store = Store::open(&url).await.unwrap();
    let session = store.session("s1").await.unwrap().unwrap();
    assert_eq!((session.last_used_at, session.idle_expires_at, session.expires_at), (5000, 9000, 100000));
    let current = store.presented_token("current").await.unwrap().map(|p| p.into_parts().0);
    assert_eq!(current, Some(session.clone()));
    assert_eq!(
        store.live_sessions("u1", 8999, None, 10).await.unwrap(),
        vec![session.clone()]
    );
    assert_eq!(
        store.live_sessions("u1", 9000, None, 10).await.unwrap(),
        vec![],
        "idle past the old column's expiry"
    );

    let next = Successor {
        hash: "next".into(),
        sealed: "sealed-next".into(),
    };
    let rules = RotationRules { now: 8000, grace: 10 };
    let found = store.presented_token("current").await.unwrap().unwrap();
    assert_eq!(decide(&found.token, &found.session, rules), Verdict::Rotate);
    let rotated = store.claim(found, &next, 8000, 11000).await.unwrap();
    let Some(rotated) = rotated else {
        panic!("the migrated current token rotates");
    };
    assert_eq!((rotated.last_used_at, rotated.idle_expires_at), (8000, 11000));
    assert_eq!(store.session("s1").await.unwrap(), Some(rotated));
    let (session, old) = store.presented_token("old").await.unwrap().unwrap().into_parts();
    let reused = decide(&old, &session, rules);
    assert_eq!(reused, Verdict::Reuse, "the migrated old token is still recognised");
    store.close().await;
    drop_database(&url, postgres_db.as_deref()).await;
}
