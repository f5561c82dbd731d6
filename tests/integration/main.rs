//! The integration suite: one binary, a real server over HTTP, every storage
//! case against SQLite and PostgreSQL.

mod auth_api;
mod cli;
mod support;
