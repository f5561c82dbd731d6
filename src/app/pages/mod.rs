//! One module per page. Protected pages are wrapped in `guard::Protected` by
//! the router in `app`.

mod account;
mod admin;
mod credentials;
mod dashboard;
mod sessions;

pub use account::AccountPage;
pub use admin::AdminPage;
pub use credentials::{LoginPage, RegisterPage};
pub use dashboard::DashboardPage;
pub use sessions::SessionsPage;
