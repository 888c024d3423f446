//! MIL identifiers: sanitising source names and keeping them unique.

use std::collections::HashSet;

/// Turns any source name into a MIL identifier `[A-Za-z_][A-Za-z0-9_]*`: other characters
/// become `_`, and a leading digit gets a `_` prefix. Deterministic, so callers can map a
/// user-supplied source name to the identifier it became.
pub fn sanitize_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// The set of identifiers taken in one function; hands out fresh ones.
#[derive(Clone, Debug, Default)]
pub struct NameTable {
    taken: HashSet<String>,
}

impl NameTable {
    /// The names `function` already uses: its inputs, its ops and their outputs.
    pub fn of_function(function: &super::Function) -> NameTable {
        let mut names = NameTable::default();
        for v in function.inputs.iter().chain(&function.states) {
            names.reserve(&v.name);
        }
        for op in &function.block.operations {
            names.reserve(&op.name);
            for o in &op.outputs {
                names.reserve(&o.name);
            }
        }
        names
    }

    /// Marks `name` as taken.
    pub fn reserve(&mut self, name: &str) {
        self.taken.insert(name.to_string());
    }

    /// True when `name` is taken.
    pub fn contains(&self, name: &str) -> bool {
        self.taken.contains(name)
    }

    /// A fresh identifier derived from `hint`: the sanitised hint itself when free, otherwise
    /// the hint with the smallest free numeric suffix.
    pub fn fresh(&mut self, hint: &str) -> String {
        let base = sanitize_name(hint);
        if self.taken.insert(base.clone()) {
            return base;
        }
        (1..)
            .map(|i| format!("{base}_{i}"))
            .find(|candidate| !self.taken.contains(candidate))
            .inspect(|name| {
                self.taken.insert(name.clone());
            })
            .expect("an unbounded range always yields a free name")
    }
}

/// Shell-style glob: `*` matches any run of characters, `?` any one character.
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            backtrack = Some((pi, ti));
            pi += 1;
        } else if let Some((star, matched)) = backtrack {
            pi = star + 1;
            ti = matched + 1;
            backtrack = Some((star, matched + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("*attn*", "layer1_attn_q"));
        assert!(glob("conv?", "conv1"));
        assert!(!glob("conv?", "conv12"));
        assert!(glob("*", ""));
        assert!(!glob("a*b", "acbd"));
        assert!(glob("a*b*c", "aXbYbZc"));
    }

    #[test]
    fn sanitises_onnx_style_names() {
        assert_eq!(
            sanitize_name("/layer1/layer1.0/conv1/Conv_output_0"),
            "_layer1_layer1_0_conv1_Conv_output_0"
        );
        assert_eq!(sanitize_name("input.1"), "input_1");
        assert_eq!(sanitize_name("0"), "_0");
    }

    #[test]
    fn fresh_names_never_repeat() {
        let mut t = NameTable::default();
        assert_eq!(t.fresh("a.b"), "a_b");
        assert_eq!(t.fresh("a_b"), "a_b_1");
        assert_eq!(t.fresh("a.b"), "a_b_2");
    }
}
