//! Lowerings both frontends share: source ops whose MIL form is the same whichever format
//! they come from.

use super::emitter::Emit;
use crate::Error;

/// The statistics and affine parameters of an inference batch norm (constant variables).
pub struct BatchNormParams<'a> {
    /// Per-channel mean.
    pub mean: &'a str,
    /// Per-channel variance.
    pub variance: &'a str,
    /// Per-channel scale, if any.
    pub gamma: Option<&'a str>,
    /// Per-channel shift, if any.
    pub beta: Option<&'a str>,
    /// Added to the variance.
    pub epsilon: f32,
}

/// MIL `batch_norm` of `x` (`[N, C, …]`) named `out`. MIL's batch norm needs a spatial
/// dimension, so a rank-2 `[N, C]` input runs as `[N, C, 1]` and is squeezed back.
pub fn batch_norm(
    e: &mut impl Emit,
    out: &str,
    x: &str,
    p: &BatchNormParams,
) -> Result<String, Error> {
    let epsilon = e.float(&format!("{out}_epsilon"), p.epsilon);
    let flat = e.rank(x)? == 2;
    let (input, name) = if flat {
        let axes = e.ints(&format!("{out}_spatial_axis"), &[2]);
        let spatial = format!("{out}_spatial");
        let input = e.op1("expand_dims", &spatial, &[("x", x), ("axes", &axes)])?;
        (input, format!("{out}_normalized"))
    } else {
        (x.to_string(), out.to_string())
    };
    let mut params = vec![
        ("x", input.as_str()),
        ("mean", p.mean),
        ("variance", p.variance),
    ];
    params.extend(p.gamma.map(|g| ("gamma", g)));
    params.extend(p.beta.map(|b| ("beta", b)));
    params.push(("epsilon", &epsilon));
    let y = e.op1("batch_norm", &name, &params)?;
    if !flat {
        return Ok(y);
    }
    let axes = e.ints(&format!("{out}_squeeze_axis"), &[2]);
    e.op1("squeeze", out, &[("x", &y), ("axes", &axes)])
}

/// The `dilations` and `groups` parameters of a MIL `conv`/`conv_transpose` named `out`.
pub fn conv_dilations_groups(
    e: &mut impl Emit,
    out: &str,
    dilations: &[i64],
    groups: i64,
) -> [(&'static str, String); 2] {
    [
        ("dilations", e.ints(&format!("{out}_dilations"), dilations)),
        ("groups", e.int(&format!("{out}_groups"), groups)),
    ]
}
