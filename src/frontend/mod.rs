//! Source-model frontends.

pub mod emitter;
pub mod input_shapes;
pub mod lowering;
pub mod onnx;
pub mod torch;

/// The feature type of a bool model input or output. Core ML has no bool features, so, as
/// coremltools does for types Core ML lacks, such an input is an int32 feature (0 or 1; any
/// non-zero value reads as true) cast to bool right after the input, and a bool output is cast
/// to int32 (0 or 1) before it. See docs/io-types.md.
pub const BOOL_FEATURE: crate::ir::DType = crate::ir::DType::I32;

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
