//! rekey's integration tests, in one binary: each test binary links the
//! whole crate again, which is slow on small machines.

mod account;
mod accountability;
mod accounts;
mod apply;
mod demo;
mod emulator;
mod faults;
mod fuzz;
mod graph;
mod hooks;
mod http_server;
mod merge;
mod plan;
mod progress;
mod report;
mod schema;
mod shared;
mod shared_state;
mod support;
mod targets;
mod validate;
