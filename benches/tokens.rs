//! Access-token signing and verification, per operation, against raw Ed25519
//! on the same key material: what the JWT layer (header, claims, base64, checks)
//! costs on top of the signature itself. `make bench` puts the figures in
//! BENCHMARKS.md.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use ed25519_dalek::{Signer as _, Verifier as _};
use gatehouse::auth::access_token::{AccessTokens, TokenSubject};
use gatehouse::auth::clock::{Clock as _, SystemClock};
use gatehouse::auth::keys::KeyRing;
use gatehouse::store::Store;

fn access_tokens(c: &mut Criterion) {
    let Ok(runtime) = tokio::runtime::Runtime::new() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("gatehouse-bench-tokens-{}", std::process::id()));
    let url = format!("sqlite://{}/bench.db", dir.display());
    let now = SystemClock.now();
    let Ok(store) = runtime.block_on(Store::open(&url)) else {
        return;
    };
    let Ok(keys) = runtime.block_on(KeyRing::load(store, 900, None, now)) else {
        return;
    };
    let tokens = AccessTokens::new(Arc::new(keys), "gatehouse".into(), "gatehouse".into(), 900);
    let subject = TokenSubject {
        user_id: "user-id",
        username: "bench",
        role: "user",
        email: None,
        email_verified: false,
        amr: "pwd",
        auth_time: now,
        session_id: "session-id",
        session_ends_at: i64::MAX,
    };
    let Ok(issued) = tokens.issue(subject, now) else {
        return;
    };
    let signing_input = issued.token.rsplit_once('.').map_or("", |(input, _)| input).as_bytes().to_vec();
    let raw_key = ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng);
    let raw_signature = raw_key.sign(&signing_input);
    let raw_public = raw_key.verifying_key();

    let mut group = c.benchmark_group("access_token");
    group.bench_function("sign", |b| b.iter(|| tokens.issue(black_box(subject), now)));
    // A token seen for the first time: signature, header and claims checked.
    group.bench_function("verify", |b| {
        b.iter_batched(
            || tokens.issue(subject, now).map(|t| t.token).unwrap_or_default(),
            |token| tokens.verify(black_box(&token), now),
            BatchSize::SmallInput,
        )
    });
    // The same token again: answered from the cache of verified tokens.
    group.bench_function("verify_cached", |b| b.iter(|| tokens.verify(black_box(&issued.token), now)));
    group.bench_function("raw_ed25519_sign", |b| b.iter(|| raw_key.sign(black_box(&signing_input))));
    group.bench_function("raw_ed25519_verify", |b| {
        b.iter(|| raw_public.verify(black_box(&signing_input), &raw_signature))
    });
    group.finish();
    let _ = std::fs::remove_dir_all(dir);
}

criterion_group!(benches, access_tokens);
criterion_main!(benches);
