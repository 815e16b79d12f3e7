//! Config errors that say exactly where: `file:line:column: key.path: message`.
//! The builder reports problems by key path; `locate` turns a path into a
//! line and column of the YAML text.

use std::fmt;

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// Dotted key path such as `farms[0].servers[1].weight`; empty for the document.
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in one file, in document order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl ConfigErrors {
    /// A single error not tied to a place in the file (unreadable file, ...).
    pub fn whole_file(file: &str, message: impl Into<String>) -> Self {
        ConfigErrors(vec![ConfigError {
            file: file.to_string(),
            line: 1,
            column: 1,
            path: String::new(),
            message: message.into(),
        }])
    }
}

/// Problems gathered while building the runtime snapshot, by key path.
#[derive(Default, Debug)]
pub struct Problems(pub Vec<(String, String)>);

impl Problems {
    pub fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push((path.into(), message.into()));
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Rewords serde's type names into what an operator reads in a YAML file.
pub fn friendly(message: &str) -> String {
    let mut m = message.to_string();
    for (from, to) in [
        ("expected u8", "expected a whole number"),
        ("expected u16", "expected a whole number"),
        ("expected u32", "expected a whole number"),
        ("expected u64", "expected a whole number"),
        ("expected usize", "expected a whole number"),
        ("expected a boolean", "expected true or false"),
        ("expected a sequence", "expected a list"),
        ("expected struct ", "expected a mapping of "),
    ] {
        m = m.replace(from, to);
    }
    if let Some(rest) = m.strip_prefix("invalid type: ") {
        // "invalid type: string \"heavy\", expected a whole number"
        // -> "expected a whole number, found string \"heavy\""
        if let Some((found, expected)) = rest.split_once(", ") {
            return format!("{expected}, found {found}");
        }
    }
    m
}
