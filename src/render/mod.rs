//! Rendering: turning engine results into text for people and tools.

pub mod graph;
