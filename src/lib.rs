//! rekey: rotate cloud credentials as code.
//!
//! The pipeline runs one way: a workflow file is loaded, validated and
//! compiled into a per-user step graph ([`workflow`]); the live state is
//! read into a plan ([`plan`]); the plan is carried out, journaled and
//! resumable ([`apply`]); and all of it is rendered for people and tools
//! ([`render`]). Target and hook kinds ([`targets`], [`hooks`]) are one
//! module each behind a registry; the outside world is behind the traits of
//! [`providers`]. The command line ([`cli`]) turns arguments into calls to
//! these and maps results to exit codes ([`cli::exit`]); the engine modules never
//! import clap. See ARCHITECTURE.md for the codemap.

pub mod apply;
pub mod audit;
pub mod cli;
pub mod hooks;
pub mod plan;
pub mod providers;
pub mod render;
pub mod schema;
pub mod secret;
pub mod targets;
pub mod text;
pub mod workflow;
