//! The loader never panics, whatever it is fed.
//!
//! A small mutational fuzzer: it starts from every workflow, library and
//! fixture in the repository and mutates them (flip, insert YAML tokens,
//! delete, duplicate and swap lines, splice two files), plus plain random
//! bytes, and runs the whole check on each. Seeded, so a failure replays.
//!
//! In the suite it runs a few thousand inputs; for a long run:
//! `REKEY_FUZZ_SECS=600 cargo test --release fuzz -- --nocapture`.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::{root, yaml_files};

const TOKENS: &[&str] = &[
    ":",
    ": ",
    "- ",
    "\n",
    "\n  ",
    "  ",
    "{",
    "}",
    "[",
    "]",
    ",",
    "\"",
    "'",
    "&a ",
    "*a",
    "!!str ",
    "!tag ",
    "? ",
    "|\n",
    ">\n",
    "---\n",
    "...\n",
    "#",
    "${",
    "}",
    "${user}",
    "${params.",
    "$$",
    "needs: [",
    "id: ",
    "uses:\n  - file: ",
    "with: {",
    "0d",
    "99999999999999999999",
    "-1",
    "1.5",
    "~",
    "null",
    "true",
    "\t",
    "\u{feff}",
    "\u{0}",
    "é",
    "targets:",
    "hooks:",
    "policy:",
    "<<: *a",
    "verify:",
    "override: true",
    "kind: library",
];

/// xorshift64*: tiny, seeded, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

fn corpus() -> Vec<(PathBuf, Vec<u8>)> {
    [
        "workflows",
        "workflows/lib",
        "tests/fixtures/invalid",
        "tests/fixtures/valid",
    ]
    .iter()
    .flat_map(|dir| yaml_files(dir))
    .map(|path| {
        let bytes = std::fs::read(root().join(&path)).expect("readable");
        (root().join(path), bytes)
    })
    .collect()
}

fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut bytes = input.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(7) {
            0 if !bytes.is_empty() => {
                let i = rng.below(bytes.len());
                bytes[i] ^= 1 << rng.below(8);
            }
            1 => {
                let token = TOKENS[rng.below(TOKENS.len())].as_bytes();
                bytes.splice(at..at, token.iter().copied());
            }
            2 if !bytes.is_empty() => {
                let end = (at + rng.below(40)).min(bytes.len());
                bytes.drain(at.min(end)..end);
            }
            3 => {
                let lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
                let (a, b) = (rng.below(lines.len()), rng.below(lines.len()));
                let mut shuffled: Vec<Vec<u8>> = lines.iter().map(|l| l.to_vec()).collect();
                shuffled.swap(a, b);
                if rng.below(2) == 0 {
                    let copy = shuffled[a].clone();
                    shuffled.insert(b, copy);
                }
                bytes = shuffled.join(&b'\n');
            }
            4 => {
                let from = rng.below(other.len() + 1);
                let end = (from + rng.below(200)).min(other.len());
                bytes.splice(at..at, other[from..end].iter().copied());
            }
            5 => bytes = (0..rng.below(300)).map(|_| rng.next() as u8).collect(),
            _ => {
                let depth = rng.below(300);
                let nest = "[".repeat(depth) + &"]".repeat(depth);
                bytes.splice(at..at, nest.into_bytes());
            }
        }
    }
    bytes
}

/// Runs the fuzzer for `iterations` inputs or until `deadline`; returns how
/// many inputs it checked.
fn fuzz(seed: u64, iterations: u64, deadline: Option<Instant>) -> u64 {
    let corpus = corpus();
    assert!(corpus.len() > 30, "the corpus has the fixtures");
    let mut rng = Rng(seed);
    let mut checked = 0;
    while checked < iterations && deadline.is_none_or(|d| Instant::now() < d) {
        let (path, input) = &corpus[rng.below(corpus.len())];
        let (_, other) = &corpus[rng.below(corpus.len())];
        let bytes = mutate(&mut rng, input, other);
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let result = catch_unwind(AssertUnwindSafe(|| {
            let _ = rekey::workflow::check_str(path, text.clone()).map_err(|e| e.to_string());
        }));
        if result.is_err() {
            let saved = Path::new(env!("CARGO_TARGET_TMPDIR"))
                .join(format!("fuzz-panic-{seed}-{checked}.yaml"));
            std::fs::write(&saved, &bytes).expect("saved");
            panic!(
                "the loader panicked on a mutation of {} (saved as {})",
                path.display(),
                saved.display()
            );
        }
        checked += 1;
    }
    checked
}

#[test]
fn the_loader_never_panics_on_mutated_workflows() {
    let seconds: u64 = std::env::var("REKEY_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let seed = std::env::var("REKEY_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_2026);
    let (iterations, deadline) = match seconds {
        0 => (3_000, None),
        s => (u64::MAX, Some(Instant::now() + Duration::from_secs(s))),
    };
    let started = Instant::now();
    let checked = fuzz(seed, iterations, deadline);
    eprintln!(
        "fuzz: seed {seed}, {checked} inputs in {:.1?}, no panic",
        started.elapsed()
    );
}
