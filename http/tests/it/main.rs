//! berkut-http's integration tests: the real gateway binary, run as the
//! application's user (`berkut-t-app`, which the daemon grants `app`),
//! against the real daemon and real PostgreSQL, driven over real HTTP with
//! reqwest (and curl for a Unix socket). Tests that need other uids skip
//! without root, like the daemon's access tests.

mod helpers;

mod bad_input;
mod endpoints;
mod faults;
mod listen;
mod openapi;
mod restore;
mod transfer;
