//! Cooperation between tabs of one browser: a Web Lock serializes refreshes so
//! tabs rarely race for the refresh cookie, and a BroadcastChannel shares each
//! new token and each logout. Both are same-origin and in memory only.

use std::cell::RefCell;
use std::future::Future;

use futures::channel::oneshot;
use gloo_timers::future::TimeoutFuture;
use js_sys::{Function, Promise, Reflect};
use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::Closure;
use wasm_bindgen::{JsCast as _, JsValue};
use web_sys::{BroadcastChannel, MessageEvent};

use crate::protocol::live::required;

const CHANNEL_NAME: &str = "gatehouse-auth";
const LOCK_NAME: &str = "gatehouse-refresh";
/// How long a tab waits for another tab's refresh before refreshing anyway: an
/// orphaned lock (a frozen tab, a hot reload) must never freeze auth.
const LOCK_WAIT_MS: u32 = 3_000;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", try_from = "TabFields")]
pub enum TabMessage {
    /// A tab logged in or refreshed: the others may use its token.
    Token { access_token: String, username: Option<String> },
    /// A tab logged out, or its session was refused: every tab leaves.
    LoggedOut,
}

/// The message's fields read flat, `type` among them: serde reads a
/// `type`-tagged enum by first copying it into a tree of generic values, and
/// that reader would add kilobytes of compressed WASM to every page. The socket's
/// messages are read the same way.
#[derive(Deserialize)]
struct TabFields {
    #[serde(rename = "type")]
    kind: String,
    access_token: Option<String>,
    username: Option<String>,
}

impl TryFrom<TabFields> for TabMessage {
    type Error = String;

    fn try_from(fields: TabFields) -> Result<Self, String> {
        match fields.kind.as_str() {
            "token" => Ok(Self::Token {
                access_token: required(fields.access_token, &fields.kind, "access_token")?,
                username: fields.username,
            }),
            "logged_out" => Ok(Self::LoggedOut),
            other => Err(format!("unknown message type `{other}`")),
        }
    }
}

thread_local! {
    static CHANNEL: RefCell<Option<BroadcastChannel>> = const { RefCell::new(None) };
}

/// Hands every message from the other tabs to `on_message`, for the life of
/// the page. A message this version cannot read is ignored.
pub fn listen(on_message: impl Fn(TabMessage) + 'static) {
    let Ok(channel) = BroadcastChannel::new(CHANNEL_NAME) else {
        return;
    };
    let on_event = Closure::<dyn Fn(MessageEvent)>::new(move |event: MessageEvent| {
        let message = event.data().as_string().and_then(|text| serde_json::from_str::<TabMessage>(&text).ok());
        if let Some(message) = message {
            on_message(message);
        }
    });
    channel.set_onmessage(Some(on_event.as_ref().unchecked_ref()));
    on_event.forget();
    CHANNEL.with(|slot| *slot.borrow_mut() = Some(channel));
}

/// Tells every other tab.
pub fn announce(message: &TabMessage) {
    let Ok(text) = serde_json::to_string(message) else {
        return;
    };
    CHANNEL.with(|slot| {
        if let Some(channel) = slot.borrow().as_ref() {
            let _ = channel.post_message(&JsValue::from_str(&text));
        }
    });
}

/// `navigator.locks.request`, where the browser has it. Reached through
/// `Reflect` because web-sys only exposes the Web Locks API behind an unstable cfg.
fn lock_request() -> Option<(JsValue, Function)> {
    let locks = Reflect::get(&window().navigator(), &JsValue::from_str("locks")).ok()?;
    if locks.is_undefined() || locks.is_null() {
        return None;
    }
    let request = Reflect::get(&locks, &JsValue::from_str("request")).ok()?.dyn_into().ok()?;
    Some((locks, request))
}

/// Runs `work` holding the tabs' refresh lock, or without it once
/// [`LOCK_WAIT_MS`] have passed.
pub async fn with_refresh_lock<T>(work: impl Future<Output = T>) -> T {
    let Some((locks, request)) = lock_request() else {
        return work.await;
    };
    let (granted_tx, granted_rx) = oneshot::channel::<()>();
    let mut release: Option<Function> = None;
    // The lock is held until this promise settles.
    let held = Promise::new(&mut |resolve, _reject| release = Some(resolve));
    let on_granted = Closure::once_into_js(move |_lock: JsValue| -> JsValue {
        let _ = granted_tx.send(());
        held.into()
    });
    if request.call2(&locks, &JsValue::from_str(LOCK_NAME), &on_granted).is_ok() {
        futures::future::select(granted_rx, TimeoutFuture::new(LOCK_WAIT_MS)).await;
    }
    let result = work.await;
    // Releases the lock now, or at once when it is granted after the wait ended.
    if let Some(release) = release {
        let _ = release.call0(&JsValue::NULL);
    }
    result
}
