use leptos::prelude::*;

/// The public start page. Its "client status" line is rendered by the server as
/// "server-rendered" and only changes once the WASM client has hydrated, which is
/// what the end-to-end smoke test relies on.
#[component]
pub fn HomePage() -> impl IntoView {
    let hydrated = RwSignal::new(false);
    // Effects never run during server rendering: this flips only in the browser.
    Effect::new(move |_| hydrated.set(true));
    let checks = RwSignal::new(0u32);

    view! {
        <section class="card">
            <h1>"Gatehouse"</h1>
            <p>
                "Short-lived access tokens kept in memory, rotating refresh cookies, "
                "guards that run on the server before anything renders."
            </p>
            <p class="client-status" data-testid="client-status">
                "Client: "
                {move || if hydrated.get() { "interactive" } else { "server-rendered" }}
            </p>
            <button
                type="button"
                data-testid="client-check"
                on:click=move |_| checks.update(|n| *n += 1)
            >
                "Check the client"
            </button>
            <p aria-live="polite" data-testid="client-check-count">
                {move || match checks.get() {
                    0 => String::new(),
                    1 => "The client answered once.".to_string(),
                    n => format!("The client answered {n} times."),
                }}
            </p>
        </section>
    }
}
