//! URL rewrite rules: which farm serves a request and what path it sees.
//! Rules are compiled when the config is built; evaluating compiles nothing.

/// The compiled rule list of a snapshot.
#[derive(Debug, Default)]
pub struct RuleSet {
    rules: Vec<()>,
}

impl RuleSet {
    pub fn len(&self) -> usize {
        self.rules.len()
    }
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}
