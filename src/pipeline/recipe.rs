//! Compression recipes: which spec each weight gets, from a global setting, per-op-type and
//! per-op-name (glob) overrides, with `null` meaning "leave uncompressed".
//!
//! ```json
//! {
//!   "weight_threshold": 2048,
//!   "global": {"palettize": {"nbits": 4}},
//!   "op_types": {"conv": {"quantize": {"dtype": "int8"}}},
//!   "op_names": {"*classifier*": null, "*attn*": {"prune": {"n_m": "2:4"}, "palettize": {"nbits": 4}}},
//!   "fp32": {"ops": ["pow"], "nodes": ["*norm*"], "patterns": ["layer-norm"]}
//! }
//! ```
//!
//! A weight's spec comes from its consumer op: an `op_names` pattern matching the op's name,
//! its source node name or the weight's own name; else `op_types` for the op's type; else
//! `global`. All consumers of a shared weight must agree.

use crate::ir::{glob, Program};
use crate::passes::compress::{
    candidate_weights, CompressionSpec, WeightSite, DEFAULT_WEIGHT_THRESHOLD,
};
use crate::passes::mixed_precision::Fp32Rules;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// A parsed recipe file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// Weights with at most this many elements stay uncompressed.
    #[serde(default = "default_threshold")]
    pub weight_threshold: usize,
    /// Spec for every weight not matched below (`null` or absent: none).
    #[serde(default)]
    pub global: Option<CompressionSpec>,
    /// Spec by consumer op type (MIL type, e.g. `conv`, `linear`, `matmul`); `null` skips.
    #[serde(default)]
    pub op_types: BTreeMap<String, Option<CompressionSpec>>,
    /// Spec by op-name glob (`*`, `?`), matched against op names, source node names and
    /// weight names; `null` skips.
    #[serde(default)]
    pub op_names: BTreeMap<String, Option<CompressionSpec>>,
    /// Ops kept in fp32 when converting ONNX, added to the `--fp32-*` flags.
    #[serde(default)]
    pub fp32: Option<Fp32Rules>,
}

fn default_threshold() -> usize {
    DEFAULT_WEIGHT_THRESHOLD
}

impl Recipe {
    /// A recipe applying `spec` to every weight above `weight_threshold`.
    pub fn global(spec: CompressionSpec, weight_threshold: usize) -> Recipe {
        Recipe {
            weight_threshold,
            global: Some(spec),
            op_types: BTreeMap::new(),
            op_names: BTreeMap::new(),
            fp32: None,
        }
    }

    /// Reads a JSON recipe; unknown keys and malformed values are errors naming the file.
    pub fn load(path: &Path) -> Result<Recipe, crate::Error> {
        let bytes = crate::input_file::read(path).map_err(|e| crate::input_file::error(path, e))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| crate::Error::Usage(format!("{}: {e}", path.display())))
    }

    /// Chooses a spec for every candidate weight of `program`, checking everything before any
    /// work: each spec against the target, each selector matches some weight, shared weights'
    /// consumers agree. Returns the spec by weight name (weights to skip are absent).
    pub fn resolve(&self, program: &Program) -> Result<HashMap<String, CompressionSpec>, String> {
        let target = program.target;
        let mut problems = Vec::new();
        let mut check = |label: String, spec: &Option<CompressionSpec>| {
            if let Some(s) = spec {
                if let Err(e) = s.check(target) {
                    problems.push(format!("{label}: {e}"));
                }
            }
        };
        check("global".into(), &self.global);
        for (k, v) in &self.op_types {
            check(format!("op_types.{k}"), v);
        }
        for (k, v) in &self.op_names {
            check(format!("op_names.{k}"), v);
        }
        let sites = candidate_weights(program, self.weight_threshold);
        for op_type in self.op_types.keys() {
            if !sites
                .iter()
                .any(|s| s.consumers.iter().any(|c| &c.op_type == op_type))
            {
                problems.push(format!(
                    "op_types.{op_type}: no weight above the threshold is read by a '{op_type}' op"
                ));
            }
        }
        for pattern in self.op_names.keys() {
            if !sites.iter().any(|s| site_matches(s, pattern, None)) {
                problems.push(format!(
                    "op_names.{pattern}: matches no op or weight with a weight above the threshold"
                ));
            }
        }
        let mut chosen = HashMap::new();
        for site in &sites {
            match self.spec_for(site) {
                Ok(Some(spec)) => {
                    chosen.insert(site.name.clone(), spec);
                }
                Ok(None) => {}
                Err(e) => problems.push(e),
            }
        }
        if problems.is_empty() {
            Ok(chosen)
        } else {
            Err(problems.join("; "))
        }
    }

    /// The spec of one weight, or an error when its consumers or patterns disagree.
    fn spec_for(&self, site: &WeightSite) -> Result<Option<CompressionSpec>, String> {
        let mut per_consumer = Vec::new();
        for (i, consumer) in site.consumers.iter().enumerate() {
            let named: Vec<(&String, &Option<CompressionSpec>)> = self
                .op_names
                .iter()
                .filter(|(p, _)| site_matches(site, p, Some(i)))
                .collect();
            let spec = match named.split_first() {
                Some(((first_pattern, first), rest)) => {
                    if let Some((other, _)) = rest.iter().find(|(_, s)| s != first) {
                        return Err(format!(
                            "weight '{}': op_names patterns '{first_pattern}' and '{other}' both match op '{}' with different settings",
                            site.name, consumer.name
                        ));
                    }
                    (*first).clone()
                }
                None => match self.op_types.get(&consumer.op_type) {
                    Some(spec) => spec.clone(),
                    None => self.global.clone(),
                },
            };
            per_consumer.push(spec);
        }
        let Some((first, rest)) = per_consumer.split_first() else {
            return Ok(None);
        };
        if rest.iter().any(|s| s != first) {
            return Err(format!(
                "weight '{}' is read by ops {} whose settings differ; give it one setting with op_names",
                site.name,
                site.consumers
                    .iter()
                    .map(|c| format!("'{}'", c.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        Ok(first.clone())
    }
}

/// True when `pattern` matches the weight's name, or the name or source node of its consumer
/// `consumer` (any consumer when `None`).
fn site_matches(site: &WeightSite, pattern: &str, consumer: Option<usize>) -> bool {
    if glob(pattern, &site.name) {
        return true;
    }
    site.consumers
        .iter()
        .enumerate()
        .filter(|(i, _)| consumer.is_none_or(|c| c == *i))
        .any(|(_, c)| {
            glob(pattern, &c.name) || c.origin.as_deref().is_some_and(|o| glob(pattern, o))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_rejected() {
        let bad = r#"{"global": {"palettize": {"nbits": 4, "bits": 2}}}"#;
        assert!(serde_json::from_str::<Recipe>(bad).is_err());
        let bad = r#"{"globl": null}"#;
        assert!(serde_json::from_str::<Recipe>(bad).is_err());
        let bad = r#"{"fp32": {"patterns": ["group-norm"]}}"#;
        assert!(serde_json::from_str::<Recipe>(bad).is_err());
        let good = r#"{"global": {"prune": {"n_m": "2:4"}, "palettize": {"nbits": 4}}, "op_types": {"conv": null}, "fp32": {"patterns": ["layer-norm"]}}"#;
        let r: Recipe = serde_json::from_str(good).unwrap();
        assert_eq!(r.weight_threshold, 2048);
        assert_eq!(r.op_types.get("conv"), Some(&None));
        let fp32 = r.fp32.unwrap();
        assert_eq!(
            fp32.patterns,
            [crate::passes::mixed_precision::Fp32Pattern::LayerNorm]
        );
        assert!(fp32.ops.is_empty() && fp32.nodes.is_empty());
        let spec = r.global.unwrap();
        assert_eq!(spec.prune.unwrap().n_m.map(|r| (r.n, r.m)), Some((2, 4)));
    }
}
