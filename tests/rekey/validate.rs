//! `rekey validate`: shipped examples pass, and every broken workflow in
//! `tests/fixtures/invalid/` fails at the place its `# expect:` lines name,
//! with the whole diagnostic pinned by a snapshot.

use std::path::Path;

use crate::support::{Rekey, root, yaml_files};

#[test]
fn every_shipped_workflow_and_library_is_valid() {
    let mut files = yaml_files("workflows");
    files.extend(yaml_files("workflows/lib"));
    assert!(
        files.len() >= 5,
        "examples and at least three library pieces ship"
    );
    let run = Rekey::new().args(["validate"]).args(&files).run();
    run.exits(0);
    assert_eq!(
        run.stdout
            .lines()
            .filter(|l| l.contains(": valid ("))
            .count(),
        files.len(),
        "{}",
        run.stdout
    );
    assert_eq!(run.stderr, "");
}

/// One `# expect: [FILE:]LINE:COL: MESSAGE` line of a fixture.
struct Expectation {
    file: String,
    line_col: String,
    message: String,
}

fn expectations(fixture: &Path) -> Vec<Expectation> {
    let text = std::fs::read_to_string(root().join(fixture)).expect("fixture is readable");
    let dir = fixture.parent().expect("fixture has a directory");
    text.lines()
        .filter_map(|line| line.strip_prefix("# expect: "))
        .map(|expect| {
            let parts: Vec<&str> = expect.splitn(4, ':').collect();
            let (file, line_col, message) = if parts[0].chars().all(|c| c.is_ascii_digit()) {
                let rest = expect.splitn(3, ':').collect::<Vec<_>>();
                (
                    fixture.display().to_string(),
                    format!("{}:{}", rest[0], rest[1]),
                    rest[2].trim().to_string(),
                )
            } else {
                let file = normalize(&dir.join(parts[0]));
                (
                    file.display().to_string(),
                    format!("{}:{}", parts[1], parts[2]),
                    parts[3].trim().to_string(),
                )
            };
            Expectation {
                file,
                line_col,
                message,
            }
        })
        .collect()
}

/// `a/b/../c` as `a/c`, as rekey prints library paths.
fn normalize(path: &Path) -> std::path::PathBuf {
    let mut out = std::path::PathBuf::new();
    for component in path.components() {
        match component {
            std::path::Component::ParentDir if out.file_name().is_some() => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[test]
fn every_invalid_fixture_fails_where_it_says() {
    let fixtures = yaml_files("tests/fixtures/invalid");
    assert!(
        fixtures.len() >= 30,
        "the corpus has {} broken workflows",
        fixtures.len()
    );
    for fixture in &fixtures {
        let expected = expectations(fixture);
        assert!(
            !expected.is_empty(),
            "{} has no `# expect:` line",
            fixture.display()
        );
        let run = Rekey::new()
            .args(["validate".as_ref(), fixture.as_os_str()])
            .run();
        run.exits(1);
        assert_eq!(
            run.stdout,
            "",
            "{}: nothing on stdout for an invalid file",
            fixture.display()
        );
        let errors: Vec<&str> = run
            .stderr
            .lines()
            .filter(|l| l.contains(": error: "))
            .collect();
        for expectation in &expected {
            let prefix = format!(
                "{}:{}: error: {}",
                expectation.file, expectation.line_col, expectation.message
            );
            assert!(
                errors.iter().any(|e| e.starts_with(&prefix)),
                "{}: no error `{prefix}` in\n{}",
                fixture.display(),
                run.stderr
            );
        }
        assert_eq!(
            errors.len(),
            expected.len(),
            "{}: unexpected extra errors:\n{}",
            fixture.display(),
            run.stderr
        );
        let name = fixture
            .file_stem()
            .expect("a name")
            .to_string_lossy()
            .into_owned();
        insta::with_settings!({ snapshot_path => "snapshots/invalid", prepend_module_to_snapshot => false, description => fixture.display().to_string() }, {
            insta::assert_snapshot!(name, run.stderr);
        });
    }
}

#[test]
fn an_unreadable_file_is_an_error_that_names_it() {
    let run = Rekey::new()
        .args(["validate", "tests/fixtures/no-such-file.yaml"])
        .run();
    run.exits(1);
    assert_eq!(
        run.stderr,
        "error: cannot read tests/fixtures/no-such-file.yaml: No such file or directory (os error 2)\n"
    );
}

#[test]
fn several_files_are_each_reported_and_any_failure_fails() {
    let run = Rekey::new()
        .args([
            "validate",
            "workflows/ci-deployers.yaml",
            "tests/fixtures/invalid/unknown-needs.yaml",
        ])
        .run();
    run.exits(1);
    assert!(
        run.stdout.contains("workflows/ci-deployers.yaml: valid"),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr
            .contains("tests/fixtures/invalid/unknown-needs.yaml: 1 problem"),
        "{}",
        run.stderr
    );
}

#[test]
fn help_teaches_and_usage_errors_exit_1() {
    let help = Rekey::new().args(["--help"]).run();
    help.exits(0);
    for word in [
        "validate",
        "graph",
        "schema",
        "plan",
        "apply",
        "status",
        "Exit codes",
    ] {
        assert!(
            help.stdout.contains(word),
            "--help lacks {word}:\n{}",
            help.stdout
        );
    }
    Rekey::new().args(["validate"]).run().exits(1);
    Rekey::new().args(["frobnicate"]).run().exits(1);
}

#[test]
fn the_readme_example_is_a_valid_workflow() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let example = readme
        .split("## A workflow, by example")
        .nth(1)
        .and_then(|s| s.split("```yaml\n").nth(1))
        .and_then(|s| s.split("```").next())
        .expect("the README has its example");
    // Beside workflows/lib, where its `uses:` point.
    let checked = rekey::workflow::check_str(
        &root().join("workflows/readme-example.yaml"),
        example.to_string(),
    );
    assert!(
        checked.is_ok(),
        "the README's example is not valid:\n{}",
        checked.err().map(|e| e.to_string()).unwrap_or_default()
    );
}
