//! `rekey graph`: phases in order, `needs` as labelled edges, and output
//! that Graphviz and Mermaid accept.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::support::Rekey;

const PHASES: [&str; 10] = [
    "make-room",
    "create",
    "distribute",
    "refresh",
    "verify",
    "disable-old",
    "verify_after_disable",
    "soak",
    "delete-old",
    "unstage",
];

fn graph(workflow: &str, format: &str) -> String {
    let run = Rekey::new()
        .args(["graph", workflow, "--format", format])
        .run();
    run.exits(0);
    run.stdout
}

#[test]
fn json_lists_steps_in_phase_order_with_needs_edges() {
    let json: serde_json::Value =
        serde_json::from_str(&graph("workflows/ci-runner-profile.yaml", "json"))
            .expect("valid JSON");
    assert_eq!(json["format_version"], 1);
    assert_eq!(json["subject"], "${user}");
    let steps: Vec<&str> = json["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        [
            "make-room",
            "create",
            "distribute:credentials-profile",
            "distribute:notify",
            "verify:new-key-works",
            "disable-old",
            "soak",
            "delete-old",
            "unstage"
        ]
    );
    assert_eq!(
        json["steps"][0]["conditional"], true,
        "make-room happens only when a slot is needed"
    );
    let needs: Vec<(&str, &str)> = json["edges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["reason"] == "needs")
        .map(|e| (e["from"].as_str().unwrap(), e["to"].as_str().unwrap()))
        .collect();
    assert_eq!(
        needs,
        [("distribute:credentials-profile", "distribute:notify")]
    );
}

#[test]
fn every_example_graph_keeps_phases_in_order() {
    for workflow in [
        "workflows/ci-deployers.yaml",
        "workflows/ci-runner-profile.yaml",
        "tests/fixtures/valid/overrides.yaml",
    ] {
        let json: serde_json::Value = serde_json::from_str(&graph(workflow, "json")).unwrap();
        let phases: Vec<usize> = json["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                PHASES
                    .iter()
                    .position(|p| *p == s["phase"])
                    .expect("a known phase")
            })
            .collect();
        assert!(
            phases.windows(2).all(|w| w[0] <= w[1]),
            "{workflow}: phases out of order: {phases:?}"
        );
        for edge in json["edges"].as_array().unwrap() {
            let index = |id: &serde_json::Value| {
                json["steps"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .position(|s| s["id"] == *id)
                    .unwrap()
            };
            assert!(
                index(&edge["from"]) < index(&edge["to"]),
                "{workflow}: edge against the order: {edge}"
            );
        }
    }
}

#[test]
fn dot_and_mermaid_output_is_pinned() {
    insta::assert_snapshot!(
        "ci_runner_profile_dot",
        graph("workflows/ci-runner-profile.yaml", "dot")
    );
    insta::assert_snapshot!(
        "ci_runner_profile_mermaid",
        graph("workflows/ci-runner-profile.yaml", "mermaid")
    );
}

#[test]
fn mermaid_declares_every_node_it_links() {
    let text = graph("workflows/ci-deployers.yaml", "mermaid");
    assert!(text.starts_with("flowchart TD\n"));
    assert_eq!(
        text.matches("subgraph ").count(),
        text.lines().filter(|l| l.trim() == "end").count()
    );
    let declared: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().split(['[', '{']).next())
        .filter(|id| id.starts_with('s') && id[1..].chars().all(|c| c.is_ascii_digit()))
        .collect();
    for line in text
        .lines()
        .filter(|l| l.contains("-->") || l.contains("==>"))
    {
        for id in line
            .split_whitespace()
            .filter(|w| w.starts_with('s') && w[1..].chars().all(|c| c.is_ascii_digit()))
        {
            assert!(
                declared.contains(&id),
                "{id} is linked but not declared:\n{text}"
            );
        }
    }
}

/// Graphviz renders the DOT output. CI installs Graphviz and sets
/// REKEY_REQUIRE_GRAPHVIZ, so there the check cannot be skipped.
#[test]
fn graphviz_renders_the_dot_output() {
    let Ok(mut dot) = Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        assert!(
            std::env::var_os("REKEY_REQUIRE_GRAPHVIZ").is_none(),
            "Graphviz (`dot`) is required here but not installed"
        );
        eprintln!("skipped: Graphviz is not installed");
        return;
    };
    let text = graph("workflows/ci-deployers.yaml", "dot");
    dot.stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = dot.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "dot failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let svg = String::from_utf8_lossy(&output.stdout);
    assert!(
        svg.contains("<svg") && svg.contains("disable&#45;old"),
        "no SVG with the steps"
    );
}
