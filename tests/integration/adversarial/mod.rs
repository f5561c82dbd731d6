//! The adversarial suite: attacks on a running server, which must answer each
//! with the documented status and JSON error, never a 5xx, a panic or a hang,
//! and lose nothing. `make test` runs it with short fuzzing and a one-minute
//! load; `make soak` runs the long versions.

mod faults;
mod fuzz;
mod input;
mod load;
mod tokens;
