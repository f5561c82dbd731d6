//! How each line of the page table (`pages/mod.rs`) becomes a page: the
//! `page_table!` macro, and `SyncHydrate`, which every page's view is wrapped in.

use leptos::tachys::html::attribute::any_attribute::AnyAttribute;
use leptos::tachys::html::attribute::Attribute;
use leptos::tachys::hydration::Cursor;
use leptos::tachys::ssr::StreamBuilder;
use leptos::tachys::view::add_attr::AddAnyAttr;
use leptos::tachys::view::{Position, PositionState, Render, RenderHtml};

/// Turns the page table into what the router and both guards read. Each line,
/// `NAME = "/path": Access => module::Component[, preload module::preload];`,
/// becomes:
/// - `paths::NAME`, the page's path;
/// - a line of `PAGES`, its path and access, read by `routes::access_for`
///   (the server's page guard and the browser's session client);
/// - a lazy route, a unit struct named `NAME`: its view is the component in
///   `SyncHydrate`, inside `Protected` with the same access where the page
///   needs a session, so it is a WASM chunk of its own with `--split`;
/// - a `<Route>` in `page_routes()`, rendered `SsrMode::Async` where the page
///   needs a session;
/// - with `preload`, a call in `preload()` (server only), which the page guard
///   makes before such a page renders.
///
/// A macro rather than a loop over a table: `<Routes>` takes its routes as a
/// tuple of types known when compiling, and each lazy route has to be a type
/// of its own (its chunk is named after it), so only code generated from the
/// list can give every page its route. It expands in `pages/mod.rs`, which
/// imports the names it uses.
macro_rules! page_table {
    ($( $name:ident = $path:literal : $access:ident => $($page:ident)::+ $(, preload $preload:path)? ; )*) => {
        /// Every page's path.
        pub mod paths {
            $( #[doc = concat!("`", $path, "`")] pub const $name: &str = $path; )*
        }

        /// Every page and who may see it.
        pub const PAGES: &[Page] = &[$( Page { path: $path, access: Access::$access } ),*];

        $( page_table!(@lazy_route $name, $access, $($page)::+); )*

        /// The router's routes: every page a lazy route, `fallback` for any
        /// other path.
        pub fn page_routes<F, V>(fallback: F) -> impl IntoView
        where
            F: FnOnce() -> V + Clone + Send + 'static,
            V: IntoView + 'static,
        {
            view! {
                <Routes fallback=fallback>
                    $( <Route path=segment($path) ssr=ssr_mode(Access::$access) view={Lazy::<$name>::new()}/> )*
                </Routes>
            }
        }

        /// Loads what the page at `path` shows, for the session of `claims`.
        #[cfg(feature = "ssr")]
        pub async fn preload(
            auth: &crate::auth::Auth,
            path: &str,
            claims: &crate::protocol::AccessClaims,
            extensions: &mut http::Extensions,
        ) {
            let page = crate::app::routes::page_of(path);
            $( $( if page == $path { $preload(auth, claims, extensions).await; } )? )*
        }
    };

    // A page for anyone, or only for visitors without a session: no guard.
    (@lazy_route $name:ident, Public, $($page:ident)::+) => {
        page_table!(@lazy_route_of $name, <$($page)::+/>);
    };
    (@lazy_route $name:ident, GuestOnly, $($page:ident)::+) => {
        page_table!(@lazy_route_of $name, <$($page)::+/>);
    };
    // A page that needs a session.
    (@lazy_route $name:ident, $access:ident, $($page:ident)::+) => {
        page_table!(@lazy_route_of $name, <Protected access=Access::$access><$($page)::+/></Protected>);
    };

    (@lazy_route_of $name:ident, $($view:tt)+) => {
        // Named like the path constant: nothing but this macro names it, and a
        // lazy route's name must be unique (it names the page's WASM chunk).
        #[allow(non_camel_case_types, clippy::upper_case_acronyms)]
        pub struct $name;

        #[lazy_route]
        impl LazyRoute for $name {
            fn data() -> Self {
                Self
            }

            fn view(_this: Self) -> AnyView {
                SyncHydrate(view! { $($view)+ }).into_any()
            }
        }
    };
}

pub(super) use page_table;

/// A page's view, hydrated in one synchronous pass.
///
/// A lazy route's view is erased into an `AnyView`, which keeps a pointer to
/// the view's async hydration, so the WASM would carry an async copy of each
/// page's whole view tree. The router never uses it: it loads the page's
/// chunk first and then hydrates synchronously. Here async hydration is the
/// trait's default, the synchronous one, so no async copy is compiled; the
/// rest passes through. This took 9 to 19 KB of compressed WASM off each
/// page's own chunks.
pub struct SyncHydrate<V>(pub V);

impl<V: Render> Render for SyncHydrate<V> {
    type State = V::State;

    fn build(self) -> Self::State {
        self.0.build()
    }

    fn rebuild(self, state: &mut Self::State) {
        self.0.rebuild(state);
    }
}

impl<V: AddAnyAttr> AddAnyAttr for SyncHydrate<V> {
    type Output<A: Attribute> = SyncHydrate<V::Output<A>>;

    fn add_any_attr<A: Attribute>(self, attr: A) -> Self::Output<A>
    where
        Self::Output<A>: RenderHtml,
    {
        SyncHydrate(self.0.add_any_attr(attr))
    }
}

impl<V: RenderHtml> RenderHtml for SyncHydrate<V> {
    type AsyncOutput = V::AsyncOutput;
    type Owned = SyncHydrate<V::Owned>;

    const MIN_LENGTH: usize = V::MIN_LENGTH;
    const EXISTS: bool = V::EXISTS;

    fn dry_resolve(&mut self) {
        self.0.dry_resolve();
    }

    async fn resolve(self) -> Self::AsyncOutput {
        self.0.resolve().await
    }

    fn html_len(&self) -> usize {
        self.0.html_len()
    }

    fn to_html_with_buf(
        self,
        buf: &mut String,
        position: &mut Position,
        escape: bool,
        mark_branches: bool,
        extra_attrs: Vec<AnyAttribute>,
    ) {
        self.0.to_html_with_buf(buf, position, escape, mark_branches, extra_attrs);
    }

    fn to_html_async_with_buf<const OUT_OF_ORDER: bool>(
        self,
        buf: &mut StreamBuilder,
        position: &mut Position,
        escape: bool,
        mark_branches: bool,
        extra_attrs: Vec<AnyAttribute>,
    ) {
        self.0.to_html_async_with_buf::<OUT_OF_ORDER>(buf, position, escape, mark_branches, extra_attrs);
    }

    fn hydrate<const FROM_SERVER: bool>(self, cursor: &Cursor, position: &PositionState) -> Self::State {
        self.0.hydrate::<FROM_SERVER>(cursor, position)
    }

    fn into_owned(self) -> Self::Owned {
        SyncHydrate(self.0.into_owned())
    }
}
