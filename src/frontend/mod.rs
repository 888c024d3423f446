//! Source-model frontends.

pub mod emitter;
pub mod input_shapes;
pub mod lowering;
pub mod onnx;
pub mod torch;

/// Node names shown per operator in [`unsupported_listing`]; the rest are counted.
const SHOWN_NODES: usize = 8;

/// `unsupported operators: Foo ×3 (a, b, c), …` for operator keys with the nodes using them,
/// in first-use order (the message of the one error listing everything a model needs).
pub fn unsupported_listing(groups: &[(String, Vec<String>)]) -> String {
    let parts: Vec<String> = groups
        .iter()
        .map(|(key, names)| {
            let mut shown = names
                .iter()
                .take(SHOWN_NODES)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ");
            if names.len() > SHOWN_NODES {
                shown.push_str(&format!(", … {} more", names.len() - SHOWN_NODES));
            }
            format!("{key} ×{} ({shown})", names.len())
        })
        .collect();
    format!("unsupported operators: {}", parts.join(", "))
}
