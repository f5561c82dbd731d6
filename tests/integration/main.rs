//! The integration suite: one binary, a real server over HTTP, every storage
//! case against SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod accounts;
mod adversarial;
mod auth_api;
mod cli;
mod limits;
mod live;
mod mail;
mod migrations;
mod operations;
mod pages;
mod paging;
mod passkeys;
mod process;
mod refresh;
mod refresh_cookie;
mod second_factor;
mod sessions;
mod support;
