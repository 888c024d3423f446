//! Finding the weights a compression pass may replace, and the channel axes their consumers
//! imply (coremltools' `select_input_output_channel_axis`, docs/format.md §5).

pub use crate::ir::ops::ChannelAxes;
use crate::ir::ops::{self, output_then_input, WeightAxesFn};
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
        let axes = agree(
            users
                .iter()
                .map(|c| axes_for(c, rank, by_name.get(c.name.as_str()), &consts)),
        );
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

/// Channel axes for a weight of `rank` bound to `consumer` (`op`), as the consumer's op
/// definition lays them out.
fn axes_for(
    consumer: &Consumer,
    rank: usize,
    op: Option<&&Operation>,
    consts: &HashMap<&str, &Tensor>,
) -> ChannelAxes {
    let flag = |param: &str| scalar_param(op, param, consts).is_some_and(|v| v != 0);
    let axes: WeightAxesFn =
        ops::lookup(&consumer.op_type).map_or(output_then_input, |def| def.weight_axes);
    axes(&consumer.param, rank, &flag)
}

/// The common value of all items, or `None` if they differ or there are none.
fn agree(mut items: impl Iterator<Item = ChannelAxes>) -> Option<ChannelAxes> {
    let first = items.next()?;
    items.all(|a| a == first).then_some(first)
}
