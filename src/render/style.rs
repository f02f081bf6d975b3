//! Colour for terminals: only when standard output is a terminal, and never
//! with `--no-color` or `NO_COLOR` set (https://no-color.org).

use std::io::IsTerminal;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    color: bool,
}

impl Style {
    pub fn plain() -> Self {
        Self { color: false }
    }

    /// Colour when stdout is a terminal, `no_color` is false and `NO_COLOR`
    /// is unset or empty.
    pub fn detect(no_color: bool) -> Self {
        let env_says_no = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Self {
            color: !no_color && !env_says_no && std::io::stdout().is_terminal(),
        }
    }

    fn paint(self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    pub fn added(self, text: &str) -> String {
        self.paint("32", text)
    }

    pub fn removed(self, text: &str) -> String {
        self.paint("31", text)
    }

    pub fn changed(self, text: &str) -> String {
        self.paint("33", text)
    }

    pub fn blocked(self, text: &str) -> String {
        self.paint("1;31", text)
    }

    pub fn bold(self, text: &str) -> String {
        self.paint("1", text)
    }

    pub fn dim(self, text: &str) -> String {
        self.paint("2", text)
    }
}
