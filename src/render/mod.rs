//! Rendering: turning engine results into text for people and tools.

pub mod apply;
pub mod graph;
pub mod plan;
pub mod report;
pub mod style;
