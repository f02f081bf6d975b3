//! serde's and serde_yaml_ng's error texts, rewritten for people who write
//! workflow files rather than Rust: "expected a whole number, found text"
//! instead of "invalid type: string, expected u32".

/// What a deserialization error was about.
pub enum Shape {
    UnknownKey {
        key: String,
        expected: Vec<String>,
    },
    Other {
        message: String,
        hint: Option<String>,
        on_key: bool,
    },
}

/// Reads serde's message for one value.
pub fn shape(message: &str) -> Shape {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (key, rest) = rest.split_once('`').unwrap_or((rest, ""));
        return Shape::UnknownKey {
            key: key.to_string(),
            expected: backticked(rest),
        };
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or(rest);
        return Shape::Other {
            message: format!("missing `{field}`"),
            hint: Some(format!("add `{field}:` here")),
            on_key: true,
        };
    }
    if let Some(rest) = message.strip_prefix("unknown variant `") {
        let (value, rest) = rest.split_once('`').unwrap_or((rest, ""));
        let choices = backticked(rest);
        let choice_refs: Vec<&str> = choices.iter().map(String::as_str).collect();
        let hint = match super::diagnostic::did_you_mean(value, choice_refs.iter().copied()) {
            Some(close) => format!("did you mean `{close}`?"),
            None => format!(
                "choose {}",
                super::diagnostic::one_of(choice_refs.iter().copied())
            ),
        };
        return Shape::Other {
            message: format!("`{value}` is not a valid choice here"),
            hint: Some(hint),
            on_key: false,
        };
    }
    if let Some(rest) = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "))
    {
        let (found, expected) = rest
            .split_once(", expected ")
            .unwrap_or((rest, "something else"));
        return Shape::Other {
            message: format!(
                "expected {}, found {}",
                expected_text(expected),
                found_text(found)
            ),
            hint: None,
            on_key: false,
        };
    }
    if let Some(rest) = message.strip_prefix("invalid length ") {
        return Shape::Other {
            message: format!("wrong number of entries: {rest}"),
            hint: None,
            on_key: false,
        };
    }
    Shape::Other {
        message: message.to_string(),
        hint: None,
        on_key: false,
    }
}

/// Reads serde_yaml_ng's message for a document it could not parse; the
/// position is printed separately, so " at line L column C" is dropped.
pub fn syntax(message: &str) -> (String, Option<String>) {
    let message = match message.find(" at line ") {
        Some(at) => &message[..at],
        None => message,
    };
    if message.contains("more than one document") {
        return (
            "a workflow file holds one YAML document".into(),
            Some("remove the `---` separator and split the documents into files".into()),
        );
    }
    if let Some(rest) = message.strip_prefix("duplicate entry with key ") {
        return (
            format!("the key {rest} is written twice in the same mapping"),
            Some("remove one of them; YAML would keep only the last".into()),
        );
    }
    let hint = if message.contains("mapping values are not allowed") {
        Some("a value that contains `: ` must be quoted".into())
    } else if message.contains("did not find expected")
        || message.contains("found character that cannot start")
    {
        Some("check the indentation and quoting on this line and the one before".into())
    } else {
        None
    };
    (format!("invalid YAML: {message}"), hint)
}

fn backticked(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

fn expected_text(expected: &str) -> String {
    let expected = expected.trim();
    match expected {
        "u8" | "u16" | "u32" | "u64" | "usize" | "i8" | "i16" | "i32" | "i64" => {
            "a whole number".into()
        }
        "a string" => "text".into(),
        "a boolean" => "`true` or `false`".into(),
        "a sequence" => "a list".into(),
        "a map" => "a mapping of keys to values".into(),
        _ if expected.starts_with("struct ") => "a mapping of keys to values".into(),
        _ if expected.starts_with("unit variant") || expected.starts_with("enum ") => {
            "one of the names listed in the schema".into()
        }
        _ => expected.to_string(),
    }
}

fn found_text(found: &str) -> String {
    let found = found.trim();
    if let Some(text) = found.strip_prefix("string ") {
        return format!("the text {text}");
    }
    match found {
        "sequence" => "a list".into(),
        "map" => "a mapping".into(),
        "unit value" => "nothing (null)".into(),
        _ if found.starts_with("integer") || found.starts_with("floating point") => format!(
            "the number{}",
            found
                .split_once(' ')
                .map_or(String::new(), |(_, n)| format!(" {n}"))
        ),
        _ if found.starts_with("boolean") => format!(
            "the boolean{}",
            found.strip_prefix("boolean").unwrap_or_default()
        ),
        _ => found.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn other(message: &str) -> String {
        match shape(message) {
            Shape::Other { message, .. } => message,
            Shape::UnknownKey { key, .. } => format!("unknown {key}"),
        }
    }

    #[test]
    fn rewrites_type_errors_in_plain_words() {
        assert_eq!(
            other("invalid type: string \"many\", expected u32"),
            "expected a whole number, found the text \"many\""
        );
        assert_eq!(
            other("invalid type: map, expected a sequence"),
            "expected a list, found a mapping"
        );
        assert_eq!(
            other("invalid type: integer `3`, expected a string"),
            "expected text, found the number `3`"
        );
    }

    #[test]
    fn reads_unknown_keys_with_their_choices() {
        let Shape::UnknownKey { key, expected } =
            shape("unknown field `tagets`, expected one of `version`, `targets`")
        else {
            panic!("not an unknown key");
        };
        assert_eq!(key, "tagets");
        assert_eq!(expected, ["version", "targets"]);
    }
}
