//! rekey: rotate cloud credentials as code.
//!
//! The pipeline runs one way: a workflow file is loaded and validated
//! ([`workflow`]), compiled into a per-user step graph ([`graph`]), and
//! rendered for people and tools ([`render`]). The command line ([`cli`])
//! turns arguments into calls to these and maps results to exit codes; the
//! engine modules never import clap. See ARCHITECTURE.md for the codemap.

pub mod apply;
pub mod cli;
pub mod graph;
pub mod plan;
pub mod providers;
pub mod render;
pub mod schema;
pub mod secret;
pub mod workflow;
