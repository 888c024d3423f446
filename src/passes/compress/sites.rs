//! Finding the weights a compression pass may replace, and the channel axes their consumers
//! imply (coremltools' `select_input_output_channel_axis`, docs/format.md §5).

use crate::ir::{Argument, DType, Function, Operation, Tensor};
use std::collections::HashMap;

/// An op reading a weight.
#[derive(Clone, Debug, PartialEq)]
pub struct Consumer {
    /// The op's name.
    pub name: String,
    /// The op's MIL type.
    pub op_type: String,
    /// The parameter the weight is bound to.
    pub param: String,
    /// The source-model node the op came from.
    pub origin: Option<String>,
}

/// Output- and input-channel axes of a weight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelAxes {
    /// Output-channel axis.
    pub output: usize,
    /// Input-channel axis.
    pub input: usize,
}

/// A float constant of rank ≥ 2 whose consumers are all ordinary (non-constexpr) ops.
#[derive(Clone, Debug)]
pub struct WeightSite {
    /// Position of its `const` op in the block.
    pub index: usize,
    /// The constant's variable name.
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// fp16 or fp32.
    pub dtype: DType,
    /// The ops reading it, in block order.
    pub consumers: Vec<Consumer>,
    /// Channel axes implied by the consumers (`None` when they disagree or there are none).
    pub axes: Option<ChannelAxes>,
    /// Convolution groups of the consuming conv (1 for other ops).
    pub conv_groups: usize,
}

impl WeightSite {
    /// Element count.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// True for a weight without elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Every candidate weight of `function`, in block order.
pub fn find_sites(function: &Function) -> Vec<WeightSite> {
    let ops = &function.block.operations;
    let consts: HashMap<&str, &Tensor> = ops
        .iter()
        .filter_map(|op| op.const_value().map(|v| (op.outputs[0].name.as_str(), v)))
        .collect();
    let mut consumers: HashMap<&str, Vec<Consumer>> = HashMap::new();
    let mut feeds_constexpr: HashMap<&str, bool> = HashMap::new();
    for op in ops {
        for (param, args) in &op.inputs {
            for name in args.iter().filter_map(Argument::var) {
                if !consts.contains_key(name) {
                    continue;
                }
                if op.op_type.starts_with("constexpr_") {
                    feeds_constexpr.insert(name, true);
                }
                consumers.entry(name).or_default().push(Consumer {
                    name: op.name.clone(),
                    op_type: op.op_type.clone(),
                    param: param.clone(),
                    origin: op.origin.clone(),
                });
            }
        }
    }
    let by_name: HashMap<&str, &Operation> = ops.iter().map(|op| (op.name.as_str(), op)).collect();
    let block_outputs: Vec<&str> = function.block.outputs.iter().map(String::as_str).collect();
    let mut sites = Vec::new();
    for (index, op) in ops.iter().enumerate() {
        let Some(value) = op.const_value() else {
            continue;
        };
        let name = op.outputs[0].name.as_str();
        let dtype = value.dtype();
        if !matches!(dtype, DType::F16 | DType::F32)
            || value.shape().len() < 2
            || feeds_constexpr.contains_key(name)
            || block_outputs.contains(&name)
        {
            continue;
        }
        let Some(users) = consumers.remove(name) else {
            continue;
        };
        let rank = value.shape().len();
        let axes = agree(users.iter().map(|c| {
            axes_for(
                c,
                rank,
                transpose_flags(by_name.get(c.name.as_str()), &consts),
            )
        }));
        let conv_groups = users
            .iter()
            .filter_map(|c| scalar_param(by_name.get(c.name.as_str()), "groups", &consts))
            .map(|g| g.max(1) as usize)
            .max()
            .unwrap_or(1);
        sites.push(WeightSite {
            index,
            name: name.to_string(),
            shape: value.shape().to_vec(),
            dtype,
            consumers: users,
            axes,
            conv_groups,
        });
    }
    sites
}

/// The constant scalar bound to `param` of a consumer op, if any.
fn scalar_param(
    op: Option<&&Operation>,
    param: &str,
    consts: &HashMap<&str, &Tensor>,
) -> Option<i64> {
    match op?.input(param)?.first()? {
        Argument::Value(t) => t.scalar_i64(),
        Argument::Var(name) => consts.get(name.as_str())?.scalar_i64(),
    }
}

/// The `transpose_x` and `transpose_y` flags of a consumer op, read from constants.
fn transpose_flags(op: Option<&&Operation>, consts: &HashMap<&str, &Tensor>) -> (bool, bool) {
    let flag = |param: &str| scalar_param(op, param, consts).is_some_and(|v| v != 0);
    (flag("transpose_x"), flag("transpose_y"))
}

/// Channel axes for a weight of `rank` bound to `consumer`.
fn axes_for(
    consumer: &Consumer,
    rank: usize,
    (transpose_x, transpose_y): (bool, bool),
) -> ChannelAxes {
    let from_end = |k: usize| rank - k;
    match (consumer.op_type.as_str(), consumer.param.as_str()) {
        ("conv_transpose", _) => ChannelAxes {
            output: 1,
            input: 0,
        },
        ("matmul", "y") if transpose_y => ChannelAxes {
            output: from_end(2),
            input: from_end(1),
        },
        ("matmul", "y") => ChannelAxes {
            output: from_end(1),
            input: from_end(2),
        },
        ("matmul", "x") if transpose_x => ChannelAxes {
            output: from_end(1),
            input: from_end(2),
        },
        ("matmul", "x") => ChannelAxes {
            output: from_end(2),
            input: from_end(1),
        },
        _ => ChannelAxes {
            output: 0,
            input: 1,
        },
    }
}

/// The common value of all items, or `None` if they differ or there are none.
fn agree(mut items: impl Iterator<Item = ChannelAxes>) -> Option<ChannelAxes> {
    let first = items.next()?;
    items.all(|a| a == first).then_some(first)
}
