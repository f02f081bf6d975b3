//! `rekey graph`: one subject's step graph as Graphviz DOT, Mermaid or JSON.
//!
//! Steps are grouped by phase (a DOT cluster, a Mermaid subgraph), in phase
//! order; `needs` edges are labelled so a reviewer sees which ordering the
//! workflow asked for and which the phases impose.

use std::fmt::Write as _;

use serde::Serialize;

use crate::workflow::graph::{EdgeKind, Phase, Step, StepGraph};

/// The shape of `rekey graph --format json` (versioned: tools parse it).
#[derive(Debug, Serialize)]
pub struct GraphDocument<'a> {
    pub format_version: u32,
    pub workflow: &'a str,
    pub subject: &'a str,
    pub steps: Vec<StepEntry>,
    pub edges: Vec<EdgeEntry>,
}

#[derive(Debug, Serialize)]
pub struct StepEntry {
    pub id: String,
    pub phase: &'static str,
    pub item: Option<String>,
    pub kind: Option<&'static str>,
    pub conditional: bool,
}

#[derive(Debug, Serialize)]
pub struct EdgeEntry {
    pub from: String,
    pub to: String,
    pub reason: &'static str,
}

pub fn json(workflow: &str, graph: &StepGraph) -> String {
    let document = GraphDocument {
        format_version: 1,
        workflow,
        subject: &graph.subject,
        steps: graph
            .steps()
            .into_iter()
            .map(|s| StepEntry {
                id: s.to_string(),
                phase: s.phase.name(),
                item: s.item.clone(),
                kind: s.kind,
                conditional: s.conditional,
            })
            .collect(),
        edges: graph
            .edges()
            .map(|(from, to, kind)| EdgeEntry {
                from: from.to_string(),
                to: to.to_string(),
                reason: reason(kind),
            })
            .collect(),
    };
    let mut text = serde_json::to_string_pretty(&document).expect("plain data");
    text.push('\n');
    text
}

pub fn dot(workflow: &str, graph: &StepGraph) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "digraph {} {{", dot_quote(workflow));
    let _ = writeln!(
        out,
        "  label={};",
        dot_quote(&format!("{workflow}: rotation steps for {}", graph.subject))
    );
    out.push_str("  labelloc=t;\n  rankdir=TB;\n  node [shape=box, style=rounded, fontname=\"Helvetica\"];\n  edge [fontname=\"Helvetica\", fontsize=10];\n");
    for (i, (phase, steps)) in by_phase(graph).into_iter().enumerate() {
        let _ = writeln!(out, "  subgraph cluster_{i} {{");
        let _ = writeln!(out, "    label={};", dot_quote(phase.name()));
        out.push_str("    style=dashed;\n");
        for step in steps {
            let style = if step.conditional {
                ", style=\"rounded,dashed\""
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "    {} [label={}{style}];",
                dot_quote(&step.to_string()),
                dot_quote(&label(step, "\\n"))
            );
        }
        out.push_str("  }\n");
    }
    for (from, to, kind) in graph.edges() {
        let attributes = match kind {
            EdgeKind::Needs => " [label=\"needs\", style=bold]",
            EdgeKind::Phase => "",
        };
        let _ = writeln!(
            out,
            "  {} -> {}{attributes};",
            dot_quote(&from.to_string()),
            dot_quote(&to.to_string())
        );
    }
    out.push_str("}\n");
    out
}

pub fn mermaid(workflow: &str, graph: &StepGraph) -> String {
    let steps = graph.steps();
    let node_id = |step: &Step| format!("s{}", steps.iter().position(|s| *s == step).unwrap_or(0));
    let mut out = String::from("flowchart TD\n");
    let _ = writeln!(
        out,
        "  %% {workflow}: rotation steps for {}",
        graph.subject.replace('%', "")
    );
    for (phase, phase_steps) in by_phase(graph) {
        let _ = writeln!(
            out,
            "  subgraph {}[\"{}\"]",
            phase.name().replace('-', "_"),
            phase.name()
        );
        for step in phase_steps {
            let (open, close) = if step.conditional {
                ("{{", "}}")
            } else {
                ("[", "]")
            };
            let _ = writeln!(
                out,
                "    {}{open}\"{}\"{close}",
                node_id(step),
                mermaid_text(&label(step, "<br/>"))
            );
        }
        out.push_str("  end\n");
    }
    for (from, to, kind) in graph.edges() {
        let arrow = match kind {
            EdgeKind::Needs => "==>|needs|",
            EdgeKind::Phase => "-->",
        };
        let _ = writeln!(out, "  {} {arrow} {}", node_id(from), node_id(to));
    }
    out
}

fn reason(kind: EdgeKind) -> &'static str {
    match kind {
        EdgeKind::Phase => "phase",
        EdgeKind::Needs => "needs",
    }
}

/// Steps grouped by phase, phases in order.
fn by_phase(graph: &StepGraph) -> Vec<(Phase, Vec<&Step>)> {
    let steps = graph.steps();
    Phase::ALL
        .into_iter()
        .map(|phase| {
            (
                phase,
                steps
                    .iter()
                    .copied()
                    .filter(|s| s.phase == phase)
                    .collect::<Vec<_>>(),
            )
        })
        .filter(|(_, steps)| !steps.is_empty())
        .collect()
}

fn label(step: &Step, line_break: &str) -> String {
    let mut text = step.to_string();
    if let Some(kind) = step.kind {
        text.push_str(line_break);
        text.push_str(kind);
    }
    if step.conditional {
        text.push_str(line_break);
        text.push_str("(if needed)");
    }
    text
}

fn dot_quote(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\n' => quoted.push_str("\\n"),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// Mermaid has no backslash escapes; quotes and the characters that close a
/// label are written as entities.
fn mermaid_text(text: &str) -> String {
    text.replace('"', "#quot;")
        .replace('$', "#36;")
        .replace('{', "#123;")
        .replace('}', "#125;")
}
