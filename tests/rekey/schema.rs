//! The committed JSON Schema is the one the code generates, and every
//! example points editors at it.

use crate::support::{Rekey, root, yaml_files};

const SCHEMA: &str = "schemas/workflow.schema.json";

#[test]
fn committed_schema_is_current() {
    let run = Rekey::new().args(["schema"]).run();
    run.exits(0);
    let path = root().join(SCHEMA);
    if std::env::var_os("REKEY_BLESS").is_some() {
        std::fs::write(&path, &run.stdout).expect("schema written");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == run.stdout,
        "{SCHEMA} is out of date: run `REKEY_BLESS=1 cargo test committed_schema_is_current` and commit it"
    );
}

#[test]
fn every_example_names_the_schema_for_editors() {
    let mut files = yaml_files("workflows");
    files.extend(yaml_files("workflows/lib"));
    for file in files {
        let text = std::fs::read_to_string(root().join(&file)).expect("readable");
        let first = text.lines().next().unwrap_or_default();
        let schema = first
            .strip_prefix("# yaml-language-server: $schema=")
            .unwrap_or_else(|| panic!("{} does not start with the schema comment", file.display()));
        let target = root().join(&file).parent().unwrap().join(schema);
        assert_eq!(
            target.canonicalize().ok(),
            root().join(SCHEMA).canonicalize().ok(),
            "{}: {schema} is not the schema",
            file.display()
        );
    }
}
