//! The workflow JSON Schema, generated from the document types.
//!
//! `schemas/workflow.schema.json` is this output, committed so editors can
//! use it (`# yaml-language-server: $schema=...`); a test fails when the two
//! differ. Draft 7, which every YAML language server reads.

use schemars::generate::SchemaSettings;

use crate::workflow::document::WorkflowDoc;

/// The schema as pretty JSON, ending with a newline.
pub fn workflow_schema() -> String {
    let generator = SchemaSettings::draft07().into_generator();
    let schema = generator.into_root_schema_for::<WorkflowDoc>();
    let mut text = serde_json::to_string_pretty(&schema).expect("a schema is plain JSON");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loader_knows_exactly_the_schema_top_level_keys() {
        let schema: serde_json::Value = serde_json::from_str(&workflow_schema()).unwrap();
        let mut keys: Vec<&str> = schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut known = crate::workflow::loader::TOP_KEYS.to_vec();
        keys.sort();
        known.sort();
        assert_eq!(keys, known);
        assert_eq!(schema["additionalProperties"], false);
    }
}
