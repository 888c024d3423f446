//! `Einsum` without ellipses or repeated labels within an operand: each operand is transposed
//! into a shared label order and reshaped with unit dimensions for the labels it lacks, the
//! operands are multiplied with broadcasting, and the contracted labels are summed away.

use super::{ConvertFn, Ctx, Emit, Node};
use crate::Error;

/// A parsed equation: the labels of each operand and of the output.
#[derive(Debug, PartialEq)]
struct Equation {
    inputs: Vec<Vec<char>>,
    output: Vec<char>,
}

/// Parses `equation`; the implicit output holds the labels used once, alphabetically.
fn parse(equation: &str) -> Result<Equation, String> {
    let eq: String = equation.chars().filter(|c| !c.is_whitespace()).collect();
    if eq.contains('.') {
        return Err("ellipses ('...') are not supported".into());
    }
    let (lhs, rhs) = match eq.split_once("->") {
        Some((l, r)) => (l, Some(r)),
        None => (eq.as_str(), None),
    };
    let term = |t: &str| -> Result<Vec<char>, String> {
        let labels: Vec<char> = t.chars().collect();
        if let Some(c) = labels.iter().find(|c| !c.is_ascii_alphabetic()) {
            return Err(format!("'{c}' is not a label"));
        }
        for (i, c) in labels.iter().enumerate() {
            if labels[..i].contains(c) {
                return Err(format!(
                    "label '{c}' repeats within '{t}' (diagonals are not supported)"
                ));
            }
        }
        Ok(labels)
    };
    let inputs = lhs.split(',').map(term).collect::<Result<Vec<_>, _>>()?;
    let all: Vec<char> = inputs.iter().flatten().copied().collect();
    let output = match rhs {
        Some(r) => term(r)?,
        None => {
            let mut once: Vec<char> = all
                .iter()
                .copied()
                .filter(|c| all.iter().filter(|d| *d == c).count() == 1)
                .collect();
            once.sort_unstable();
            once
        }
    };
    if let Some(c) = output.iter().find(|c| !all.contains(c)) {
        return Err(format!("output label '{c}' appears in no operand"));
    }
    Ok(Equation { inputs, output })
}

impl Equation {
    /// Output labels, then the contracted ones in order of first appearance.
    fn label_order(&self) -> Vec<char> {
        let mut order = self.output.clone();
        for c in self.inputs.iter().flatten() {
            if !order.contains(c) {
                order.push(*c);
            }
        }
        order
    }
}

fn einsum(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let equation = ctx.attr(node.string("equation"))?;
    let equation = equation.ok_or_else(|| ctx.invalid("attribute 'equation' is missing"))?;
    let eq =
        parse(&equation).map_err(|m| ctx.unsupported(format!("equation '{equation}': {m}")))?;
    if eq.inputs.len() != node.num_inputs() {
        return Err(ctx.invalid(format!(
            "equation '{equation}' has {} operands but the node has {} inputs",
            eq.inputs.len(),
            node.num_inputs()
        )));
    }
    let out = ctx.out_name(node, 0);
    let order = eq.label_order();
    let mut sizes: Vec<Option<usize>> = vec![None; order.len()];
    let mut product: Option<String> = None;
    for (i, labels) in eq.inputs.iter().enumerate() {
        let x = ctx.input(node, i)?;
        let shape = ctx.shape(&x)?;
        if shape.len() != labels.len() {
            return Err(ctx.invalid(format!(
                "operand {i} has rank {} but its term has {} labels",
                shape.len(),
                labels.len()
            )));
        }
        // Axes of `x` in shared label order, and the full-rank shape with unit dims.
        let mut perm = Vec::new();
        let mut full = Vec::new();
        for (slot, c) in order.iter().enumerate() {
            match labels.iter().position(|l| l == c) {
                Some(axis) => {
                    let d = shape[axis];
                    if let Some(s) = sizes[slot].filter(|&s| s != d) {
                        return Err(ctx.invalid(format!("label '{c}' has sizes {s} and {d}")));
                    }
                    sizes[slot] = Some(d);
                    perm.push(axis as i64);
                    full.push(d as i64);
                }
                None => full.push(1),
            }
        }
        let mut operand = x;
        if perm.iter().enumerate().any(|(k, &p)| k as i64 != p) {
            let perm_c = ctx.ints(&format!("{out}_perm{i}"), &perm);
            operand = ctx.op1(
                "transpose",
                &format!("{out}_transposed{i}"),
                &[("x", &operand), ("perm", &perm_c)],
            )?;
        }
        if full.len() != labels.len() {
            let shape_c = ctx.ints(&format!("{out}_shape{i}"), &full);
            operand = ctx.op1(
                "reshape",
                &format!("{out}_aligned{i}"),
                &[("x", &operand), ("shape", &shape_c)],
            )?;
        }
        product = Some(match product {
            None => operand,
            Some(acc) => ctx.op1(
                "mul",
                &format!("{out}_product{i}"),
                &[("x", &acc), ("y", &operand)],
            )?,
        });
    }
    let product = product.ok_or_else(|| ctx.invalid("needs at least one input"))?;
    let contracted: Vec<i64> = (eq.output.len()..order.len()).map(|a| a as i64).collect();
    let y = if contracted.is_empty() {
        ctx.op1("identity", &out, &[("x", &product)])?
    } else {
        let axes = ctx.ints(&format!("{out}_axes"), &contracted);
        let keep = ctx.boolean(&format!("{out}_keep_dims"), false);
        ctx.op1(
            "reduce_sum",
            &out,
            &[("x", &product), ("axes", &axes), ("keep_dims", &keep)],
        )?
    };
    ctx.set_output(node, 0, y);
    Ok(())
}

/// This family's converters.
pub const CONVERTERS: &[(&str, ConvertFn)] = &[("Einsum", einsum)];

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn parses_explicit_and_implicit_outputs() {
        let eq = parse("bij, bjk -> bik").unwrap();
        assert_eq!(eq.inputs, vec![vec!['b', 'i', 'j'], vec!['b', 'j', 'k']]);
        assert_eq!(eq.output, vec!['b', 'i', 'k']);
        assert_eq!(eq.label_order(), vec!['b', 'i', 'k', 'j']);
        // Implicit: labels used once, sorted ("ji" → "ij" is a transpose of the input).
        assert_eq!(parse("kj,ji").unwrap().output, vec!['i', 'k']);
        assert_eq!(parse("i,i").unwrap().output, Vec::<char>::new());
        assert!(parse("ii->i").is_err());
        assert!(parse("...ij->...i").is_err());
        assert!(parse("ij->k").is_err());
    }
}
