//! The step graph: what rotating one user's key consists of, in order.
//!
//! Per subject (an IAM user) the phases run in this order, each a set of
//! steps: `make-room? -> create -> distribute:<target>... -> refresh:<hook>...
//! -> verify:<hook>... -> disable-old -> verify_after_disable:<hook>... ->
//! soak -> delete-old -> unstage`. Within a phase, steps are independent
//! unless `needs:` orders them. Users are independent subgraphs; the
//! executor runs several at once.
//!
//! Edges mean "must finish before": a phase's first steps (those with no
//! `needs` inside the phase) wait for the previous phase's last steps (those
//! nothing in their phase needs). A cycle can only come from `needs`, and is
//! returned with every step in it, so validation can point at each `needs`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fmt;

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;

use super::model::Workflow;
use super::vocabulary::HookPhase;

/// The phases of a rotation, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    MakeRoom,
    Create,
    Distribute,
    Refresh,
    Verify,
    DisableOld,
    VerifyAfterDisable,
    Soak,
    DeleteOld,
    Unstage,
}

impl Phase {
    pub const ALL: [Phase; 10] = [
        Phase::MakeRoom,
        Phase::Create,
        Phase::Distribute,
        Phase::Refresh,
        Phase::Verify,
        Phase::DisableOld,
        Phase::VerifyAfterDisable,
        Phase::Soak,
        Phase::DeleteOld,
        Phase::Unstage,
    ];

    /// The name used in step ids, `--until` and output.
    pub fn name(self) -> &'static str {
        match self {
            Phase::MakeRoom => "make-room",
            Phase::Create => "create",
            Phase::Distribute => "distribute",
            Phase::Refresh => "refresh",
            Phase::Verify => "verify",
            Phase::DisableOld => "disable-old",
            Phase::VerifyAfterDisable => "verify_after_disable",
            Phase::Soak => "soak",
            Phase::DeleteOld => "delete-old",
            Phase::Unstage => "unstage",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    fn of_hooks(phase: HookPhase) -> Self {
        match phase {
            HookPhase::Refresh => Phase::Refresh,
            HookPhase::Verify => Phase::Verify,
            HookPhase::VerifyAfterDisable => Phase::VerifyAfterDisable,
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One step of one subject's rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub phase: Phase,
    /// The target or hook this step runs, for per-item phases.
    pub item: Option<String>,
    /// The kind of that target or hook (`ssm_parameter`, `http`, ...).
    pub kind: Option<&'static str>,
    /// Runs only when the plan finds it needed (make-room).
    pub conditional: bool,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.id().fmt(f)
    }
}

impl Step {
    /// The step's name, as the journal and `--until` know it.
    pub fn id(&self) -> StepId {
        StepId {
            phase: self.phase,
            item: self.item.clone(),
        }
    }
}

/// A step's name: its phase, and the target or hook for per-item phases.
/// Written `distribute:app` (or `create`) in the journal and in output.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StepId {
    pub phase: Phase,
    pub item: Option<String>,
}

impl StepId {
    pub fn of(phase: Phase) -> Self {
        Self { phase, item: None }
    }
}

impl fmt::Display for StepId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.item {
            Some(item) => write!(f, "{}:{item}", self.phase),
            None => f.write_str(self.phase.name()),
        }
    }
}

impl std::str::FromStr for StepId {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (phase, item) = match text.split_once(':') {
            Some((phase, item)) => (phase, Some(item.to_string())),
            None => (text, None),
        };
        let phase = Phase::from_name(phase).ok_or_else(|| format!("`{text}` is not a step"))?;
        Ok(Self { phase, item })
    }
}

impl serde::Serialize for StepId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for StepId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Why one step waits for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EdgeKind {
    /// The phase order.
    Phase,
    /// A `needs:` written in the workflow.
    Needs,
}

/// Whether the subject's graph has a make-room step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MakeRoomStep {
    No,
    Yes,
    /// Shown as conditional: the template graph, before any user is known.
    Maybe,
}

/// `needs` that form cycles; each cycle lists its steps in `needs` order
/// (each step needs the next, the last needs the first).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`needs` form {} cycle(s)", cycles.len())]
pub struct CycleError {
    pub cycles: Vec<Vec<Step>>,
}

/// The steps of one subject's rotation and what each waits for.
#[derive(Debug, Clone)]
pub struct StepGraph {
    pub subject: String,
    graph: DiGraph<Step, EdgeKind>,
}

impl StepGraph {
    pub fn compile(
        workflow: &Workflow,
        subject: &str,
        make_room: MakeRoomStep,
    ) -> Result<Self, CycleError> {
        let mut builder = Builder::default();
        if make_room != MakeRoomStep::No {
            builder.phase(
                vec![Step::fixed(
                    Phase::MakeRoom,
                    make_room == MakeRoomStep::Maybe,
                )],
                &[],
            );
        }
        builder.phase(vec![Step::fixed(Phase::Create, false)], &[]);
        let targets: Vec<_> = workflow
            .targets
            .iter()
            .map(|t| {
                (
                    Step::item(Phase::Distribute, &t.id, t.kind.key()),
                    t.needs.as_slice(),
                )
            })
            .collect();
        builder.items(targets);
        for hook_phase in [HookPhase::Refresh, HookPhase::Verify] {
            builder.hooks(workflow, hook_phase);
        }
        builder.phase(vec![Step::fixed(Phase::DisableOld, false)], &[]);
        builder.hooks(workflow, HookPhase::VerifyAfterDisable);
        for phase in [Phase::Soak, Phase::DeleteOld, Phase::Unstage] {
            builder.phase(vec![Step::fixed(phase, false)], &[]);
        }
        let graph = builder.graph;
        let cycles = find_cycles(&graph);
        if !cycles.is_empty() {
            return Err(CycleError { cycles });
        }
        Ok(Self {
            subject: subject.to_string(),
            graph,
        })
    }

    /// Steps in an order that respects every edge: phase order, then the
    /// order the workflow declares them in.
    pub fn steps(&self) -> Vec<&Step> {
        let mut waiting: Vec<usize> = self
            .graph
            .node_indices()
            .map(|n| self.graph.neighbors_directed(n, petgraph::Incoming).count())
            .collect();
        let mut ready: BinaryHeap<Reverse<NodeIndex>> = self
            .graph
            .node_indices()
            .filter(|n| waiting[n.index()] == 0)
            .map(Reverse)
            .collect();
        let mut order = Vec::with_capacity(self.graph.node_count());
        while let Some(Reverse(node)) = ready.pop() {
            order.push(&self.graph[node]);
            for next in self.graph.neighbors(node) {
                waiting[next.index()] -= 1;
                if waiting[next.index()] == 0 {
                    ready.push(Reverse(next));
                }
            }
        }
        order
    }

    /// Every edge as (before, after, why).
    pub fn edges(&self) -> impl Iterator<Item = (&Step, &Step, EdgeKind)> {
        self.graph.edge_references().map(|e| {
            (
                &self.graph[e.source()],
                &self.graph[e.target()],
                *e.weight(),
            )
        })
    }

    pub fn len(&self) -> usize {
        self.graph.node_count()
    }

    pub fn is_empty(&self) -> bool {
        self.graph.node_count() == 0
    }
}

impl Step {
    fn fixed(phase: Phase, conditional: bool) -> Self {
        Self {
            phase,
            item: None,
            kind: None,
            conditional,
        }
    }

    fn item(phase: Phase, id: &str, kind: &'static str) -> Self {
        Self {
            phase,
            item: Some(id.to_string()),
            kind: Some(kind),
            conditional: false,
        }
    }
}

#[derive(Default)]
struct Builder {
    graph: DiGraph<Step, EdgeKind>,
    /// The previous non-empty phase's last steps.
    exits: Vec<NodeIndex>,
}

impl Builder {
    fn hooks(&mut self, workflow: &Workflow, phase: HookPhase) {
        let hooks = workflow
            .hooks
            .iter()
            .filter(|h| h.phase == phase)
            .map(|h| {
                (
                    Step::item(Phase::of_hooks(phase), &h.id, h.kind.key()),
                    h.needs.as_slice(),
                )
            })
            .collect();
        self.items(hooks);
    }

    fn items(&mut self, items: Vec<(Step, &[String])>) {
        let (steps, needs): (Vec<Step>, Vec<&[String]>) = items.into_iter().unzip();
        self.phase(steps, &needs);
    }

    /// Adds one phase's steps; `needs[i]` names the items step `i` waits for.
    fn phase(&mut self, steps: Vec<Step>, needs: &[&[String]]) {
        if steps.is_empty() {
            return;
        }
        let mut by_item: HashMap<String, NodeIndex> = HashMap::new();
        let nodes: Vec<NodeIndex> = steps
            .into_iter()
            .map(|step| {
                let item = step.item.clone();
                let node = self.graph.add_node(step);
                if let Some(item) = item {
                    by_item.insert(item, node);
                }
                node
            })
            .collect();
        let mut needed = vec![false; nodes.len()];
        let mut has_needs = vec![false; nodes.len()];
        for (i, names) in needs.iter().enumerate() {
            for name in names.iter() {
                // Validation reports a `needs` naming nothing in this phase.
                let Some(&before) = by_item.get(name) else {
                    continue;
                };
                self.graph.add_edge(before, nodes[i], EdgeKind::Needs);
                has_needs[i] = true;
                needed[before.index() - nodes[0].index()] = true;
            }
        }
        for (i, &node) in nodes.iter().enumerate() {
            if !has_needs[i] {
                for &exit in &self.exits {
                    self.graph.add_edge(exit, node, EdgeKind::Phase);
                }
            }
        }
        self.exits = nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| !needed[*i])
            .map(|(_, n)| *n)
            .collect();
        if self.exits.is_empty() {
            // Every step is needed by another: only a cycle does that. Keep
            // the order going; the cycle itself is reported.
            self.exits = nodes;
        }
    }
}

/// The cycles of the graph, each as the steps in `needs` order.
fn find_cycles(graph: &DiGraph<Step, EdgeKind>) -> Vec<Vec<Step>> {
    let mut cycles = Vec::new();
    for component in tarjan_scc(graph) {
        let self_loop = component.len() == 1 && graph.contains_edge(component[0], component[0]);
        if component.len() < 2 && !self_loop {
            continue;
        }
        let mut start = component[0];
        for &node in &component {
            start = start.min(node);
        }
        let path = cycle_through(graph, start, &component);
        // Edges run from the needed step to the one that needs it; `needs`
        // order is the reverse.
        let mut order: Vec<Step> = path.into_iter().rev().map(|n| graph[n].clone()).collect();
        order.rotate_right(1);
        cycles.push(order);
    }
    cycles.sort_by_key(|c: &Vec<Step>| c.iter().map(ToString::to_string).collect::<Vec<_>>());
    cycles
}

/// A shortest path from `start` back to itself inside `component`, rotated so
/// that the cycle reads from `start`.
fn cycle_through(
    graph: &DiGraph<Step, EdgeKind>,
    start: NodeIndex,
    component: &[NodeIndex],
) -> Vec<NodeIndex> {
    let mut came_from: HashMap<NodeIndex, NodeIndex> = HashMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        for next in graph.neighbors(node) {
            if !component.contains(&next) || came_from.contains_key(&next) {
                continue;
            }
            came_from.insert(next, node);
            if next == start {
                let mut path = vec![start];
                let mut at = node;
                while at != start {
                    path.push(at);
                    at = came_from[&at];
                }
                path.reverse();
                // path: start, ..., node (each has an edge to the next; node -> start).
                let mut cycle = vec![start];
                cycle.extend(path.into_iter().filter(|n| *n != start));
                return cycle;
            }
            queue.push_back(next);
        }
    }
    vec![start]
}
