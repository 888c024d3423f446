//! The op registry: one [`OpDef`] per MIL op, holding its parameters (with their defaults),
//! the first target that has it, its type-inference rule, its interpreter kernel and the
//! per-op facts the passes read (`facts.rs`). One folder per op family, named after
//! coremltools' MIL opset files: `mod.rs` defines the family's ops, `kernels.rs` holds their
//! kernels. The validator, the frontends, the interpreter, the passes and the coverage docs all
//! read this one table.

mod activation;
mod args;
pub mod axis;
pub mod broadcast;
mod classify;
mod constexpr_ops;
mod control_flow;
pub mod conv;
pub mod elementwise_binary;
pub mod elementwise_unary;
mod facts;
pub(crate) mod gemm;
pub mod image_resizing;
pub mod linear;
mod normalization;
pub mod pool;
mod quantization_ops;
mod recurrent;
pub mod reduction;
mod scatter_gather;
mod states;
mod tensor_operation;
pub mod tensor_transformation;
#[cfg(test)]
pub(crate) mod testing;
mod transformers;
pub mod window;

pub use args::{InferArgs, OpArgs, StrEnum};
pub use constexpr_ops::check_form;

pub use facts::{output_then_input, ChannelAxes, NormRole, Precision, Square, WeightAxesFn};

use super::{Target, TensorType};
use crate::interp::KernelFn;
use std::collections::HashMap;
use std::sync::OnceLock;

/// Which element types a parameter accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamType {
    /// The op's floating-point type variable `T` (fp16 or fp32); every `T` parameter of one op
    /// has the same dtype.
    T,
    /// Any integer type.
    Int,
    /// `T`, or an integer type (used by ops that also run on indices, e.g. `add`, `concat`);
    /// still shared across the op's `T` parameters.
    TOrInt,
    /// bool.
    Bool,
    /// A string (e.g. `pad_type`, `dtype`).
    Str,
    /// Anything; a float argument follows the op's compute precision (e.g. `gather.x`,
    /// `concat.values`, `select.a`).
    Any,
    /// Any type, kept as given whatever the op's compute precision: a setting rather than
    /// data (e.g. the fp32 scale factors of `upsample_bilinear`).
    Setting,
    /// A state (a function input of `StateType`, see `Function::states`); the type rule sees
    /// the tensor type it wraps. Only state ops read states.
    State,
}

/// One parameter of an op.
#[derive(Clone, Copy, Debug)]
pub struct Param {
    /// Parameter name as written in the package.
    pub name: &'static str,
    /// Accepted element types.
    pub ty: ParamType,
    /// False when the parameter may be omitted.
    pub required: bool,
    /// True when the parameter takes a list of arguments (e.g. `concat.values`).
    pub variadic: bool,
    /// True when the argument must be a compile-time constant.
    pub constant: bool,
    /// First target whose opset has this parameter (later than the op's own for parameters
    /// added by a newer opset, e.g. `gather.batch_dims`).
    pub since: Target,
    /// The value an absent optional parameter reads as (MIL's default), when it has one that
    /// does not depend on other arguments.
    pub default: Option<ParamDefault>,
}

/// The default value of an optional parameter.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ParamDefault {
    /// An integer scalar.
    Int(i64),
    /// An integer list.
    Ints(&'static [i64]),
    /// A float scalar.
    Float(f64),
    /// A bool scalar.
    Bool(bool),
    /// A string scalar.
    Str(&'static str),
}

impl Param {
    /// A required, non-constant, single-argument parameter.
    pub const fn new(name: &'static str, ty: ParamType) -> Param {
        Param {
            name,
            ty,
            required: true,
            variadic: false,
            constant: false,
            since: Target::IOS15,
            default: None,
        }
    }

    /// The same parameter, available only from target `since`.
    pub const fn since(self, since: Target) -> Param {
        Param { since, ..self }
    }

    /// The same parameter, optional.
    pub const fn optional(self) -> Param {
        Param {
            required: false,
            ..self
        }
    }

    /// The same parameter, constant.
    pub const fn constant(self) -> Param {
        Param {
            constant: true,
            ..self
        }
    }

    /// The same parameter, optional, reading as `default` when absent.
    pub const fn default(self, default: ParamDefault) -> Param {
        Param {
            required: false,
            default: Some(default),
            ..self
        }
    }

    /// The same parameter, optional, defaulting to integer `v`.
    pub const fn default_int(self, v: i64) -> Param {
        self.default(ParamDefault::Int(v))
    }

    /// The same parameter, optional, defaulting to float `v`.
    pub const fn default_float(self, v: f64) -> Param {
        self.default(ParamDefault::Float(v))
    }

    /// The same parameter, optional, defaulting to bool `v`.
    pub const fn default_bool(self, v: bool) -> Param {
        self.default(ParamDefault::Bool(v))
    }

    /// The same parameter, optional, defaulting to string `v`.
    pub const fn default_str(self, v: &'static str) -> Param {
        self.default(ParamDefault::Str(v))
    }

    /// The same parameter, variadic.
    pub const fn variadic(self) -> Param {
        Param {
            variadic: true,
            ..self
        }
    }
}

/// Type inference: from the argument types (and constant values) to the output types, or a
/// message saying what is wrong.
pub type InferFn = fn(&InferArgs) -> Result<Vec<TensorType>, String>;

/// The definition of one MIL op.
#[derive(Clone, Copy)]
pub struct OpDef {
    /// MIL op type.
    pub name: &'static str,
    /// First deployment target whose opset has this op.
    pub since: Target,
    /// Parameters in canonical order.
    pub params: &'static [Param],
    /// Output type rule.
    pub infer: InferFn,
    /// Reference interpreter kernel.
    pub kernel: KernelFn,
    /// Channel axes of a weight bound to one of its parameters (weight compression).
    pub weight_axes: WeightAxesFn,
    /// How the fp16 pass treats it.
    pub precision: Precision,
    /// The part it can play in a LayerNorm/RMSNorm (mixed precision's `layer-norm` pattern).
    pub norm: NormRole,
}

impl OpDef {
    /// The parameter called `name`.
    pub fn param(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|p| p.name == name)
    }

    /// The same op, first available at target `since`.
    pub const fn since(self, since: Target) -> OpDef {
        OpDef { since, ..self }
    }

    /// The same op, laying out the channels of its weights as `weight_axes` says.
    pub const fn weight_axes(self, weight_axes: WeightAxesFn) -> OpDef {
        OpDef {
            weight_axes,
            ..self
        }
    }

    /// The same op, treated by the fp16 pass as `precision` says.
    pub const fn precision(self, precision: Precision) -> OpDef {
        OpDef { precision, ..self }
    }

    /// The same op, playing part `norm` in a LayerNorm/RMSNorm.
    pub const fn norm(self, norm: NormRole) -> OpDef {
        OpDef { norm, ..self }
    }
}

/// An iOS15 op definition with the usual facts: weights with output channels on axis 0 and
/// input channels on axis 1, precision chosen by the fp16 pass, no part in a norm. The
/// builder methods of [`OpDef`] change these.
pub(crate) const fn op(
    name: &'static str,
    params: &'static [Param],
    infer: InferFn,
    kernel: KernelFn,
) -> OpDef {
    OpDef {
        name,
        since: Target::IOS15,
        params,
        infer,
        kernel,
        weight_axes: output_then_input,
        precision: Precision::Chosen,
        norm: NormRole::NONE,
    }
}

/// Every op family's definitions.
const FAMILIES: &[&[OpDef]] = &[
    elementwise_binary::DEFS,
    elementwise_unary::DEFS,
    control_flow::DEFS,
    activation::DEFS,
    linear::DEFS,
    conv::DEFS,
    pool::DEFS,
    normalization::DEFS,
    reduction::DEFS,
    tensor_transformation::DEFS,
    image_resizing::DEFS,
    scatter_gather::DEFS,
    tensor_operation::DEFS,
    constexpr_ops::DEFS,
    transformers::DEFS,
    states::DEFS,
    classify::DEFS,
    quantization_ops::DEFS,
    recurrent::DEFS,
];

/// The definition of MIL op `op_type`, if mlpack knows it.
pub fn lookup(op_type: &str) -> Option<&'static OpDef> {
    static BY_NAME: OnceLock<HashMap<&'static str, &'static OpDef>> = OnceLock::new();
    BY_NAME
        .get_or_init(|| all().map(|def| (def.name, def)).collect())
        .get(op_type)
        .copied()
}

/// Every registered op, in family order.
pub fn all() -> impl Iterator<Item = &'static OpDef> {
    FAMILIES.iter().flat_map(|family| family.iter())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn op_names_are_unique() {
        let mut seen = HashSet::new();
        for def in all() {
            assert!(
                seen.insert(def.name),
                "op '{}' is registered twice",
                def.name
            );
        }
        assert!(seen.len() > 100, "only {} ops registered", seen.len());
    }

    /// With an end computed at run time, `slice_by_index` keeps the size of every dimension
    /// taken whole (both masks set), stride included, and only the others are unknown.
    #[test]
    fn slice_by_index_with_a_run_time_end_keeps_masked_dims() {
        use crate::ir::{Builder, DType, Dim, Tensor, Var};
        let seq = Dim::Symbol("seq".into());
        let x = TensorType {
            dtype: DType::F32,
            shape: vec![Dim::Fixed(5), seq.clone(), Dim::Fixed(6)],
        };
        let end = TensorType::fixed(DType::I32, &[3]);
        let mut b = Builder::new("main", vec![Var::new("x", x), Var::new("end", end)]);
        let begin = b.constant("begin", Tensor::vec_i32(&[0, 0, 0]));
        let stride = b.constant("stride", Tensor::vec_i32(&[2, 1, 1]));
        let mask = b.constant("mask", Tensor::from_bool(&[3], &[true, true, false]));
        let y = b
            .op1(
                "slice_by_index",
                "y",
                &[
                    ("x", &["x"]),
                    ("begin", &[&begin]),
                    ("end", &["end"]),
                    ("stride", &[&stride]),
                    ("begin_mask", &[&mask]),
                    ("end_mask", &[&mask]),
                ],
            )
            .unwrap();
        assert_eq!(
            b.ty(&y).unwrap().shape,
            vec![Dim::Fixed(3), seq, Dim::Symbol("y_d2".into())]
        );
    }

    /// A small CNN with a symbolic batch dim: built (type rules), validated, then run (kernels);
    /// every output value must match its declared type.
    #[test]
    fn small_network_types_and_runs_with_symbolic_batch() {
        use crate::interp::{run, RunOptions, Value};
        use crate::ir::{validate_program, Builder, DType, Dim, Program, Tensor, Var};
        use std::collections::BTreeMap;

        let batch = Dim::Symbol("batch".into());
        let input_ty = TensorType {
            dtype: DType::F32,
            shape: vec![batch.clone(), Dim::Fixed(1), Dim::Fixed(4), Dim::Fixed(4)],
        };
        let mut b = Builder::new("main", vec![Var::new("image", input_ty)]);
        let w = b.constant("w", Tensor::from_f32(&[2, 1, 3, 3], &[1.0 / 9.0; 18]));
        let strides = b.constant("strides", Tensor::vec_i32(&[1, 1]));
        let same = b.constant("same", Tensor::scalar_string("same"));
        let conv = b
            .op1(
                "conv",
                "conv",
                &[
                    ("x", &["image"]),
                    ("weight", &[&w]),
                    ("strides", &[&strides]),
                    ("pad_type", &[&same]),
                ],
            )
            .unwrap();
        let relu = b.op1("relu", "relu", &[("x", &[&conv])]).unwrap();
        let k = b.constant("k", Tensor::vec_i32(&[2, 2]));
        let s2 = b.constant("s2", Tensor::vec_i32(&[2, 2]));
        let valid = b.constant("valid", Tensor::scalar_string("valid"));
        let pool = b
            .op1(
                "max_pool",
                "pool",
                &[
                    ("x", &[&relu]),
                    ("kernel_sizes", &[&k]),
                    ("strides", &[&s2]),
                    ("pad_type", &[&valid]),
                ],
            )
            .unwrap();
        let shape = b.constant("shape", Tensor::vec_i32(&[-1, 8]));
        let flat = b
            .op1("reshape", "flat", &[("x", &[&pool]), ("shape", &[&shape])])
            .unwrap();
        let fc = b.constant(
            "fc",
            Tensor::from_f32(
                &[3, 8],
                &(0..24).map(|v| (v % 5) as f32 * 0.1).collect::<Vec<_>>(),
            ),
        );
        let logits = b
            .op1("linear", "logits", &[("x", &[&flat]), ("weight", &[&fc])])
            .unwrap();
        let probs = b.op1("softmax", "probs", &[("x", &[&logits])]).unwrap();
        assert_eq!(
            b.ty(&pool).unwrap().shape,
            vec![batch.clone(), Dim::Fixed(2), Dim::Fixed(2), Dim::Fixed(2)]
        );
        assert_eq!(b.ty(&probs).unwrap().shape[1], Dim::Fixed(3));
        let function = b.finish(vec![probs.clone()]);
        let program = Program::new(Target::IOS15, vec![function]);
        validate_program(&program).unwrap();

        let image = ndarray::ArrayD::from_shape_vec(
            ndarray::IxDyn(&[2, 1, 4, 4]),
            (0..32).map(|v| v as f32).collect(),
        )
        .unwrap();
        let inputs = BTreeMap::from([("image".to_string(), Value::Float(image))]);
        let out = run(program.main(), &inputs, RunOptions::default()).unwrap();
        let probs = out[0].1.float().unwrap();
        assert_eq!(probs.shape(), &[2, 3]);
        for row in probs.outer_iter() {
            assert!((row.sum() - 1.0).abs() < 1e-5);
        }
    }

    #[test]
    fn newer_parameters_need_newer_targets() {
        use crate::ir::{validate_program, Builder, DType, Program, Tensor, Var};
        let x = Var::new("x", TensorType::fixed(DType::F32, &[2, 3]));
        let mut b = Builder::new("main", vec![x]);
        let idx = b.constant("idx", Tensor::from_i32(&[2, 1], &[0, 2]));
        let axis = b.constant("axis", Tensor::scalar_i32(1));
        let batch = b.constant("batch", Tensor::scalar_i32(1));
        let g = b
            .op1(
                "gather",
                "g",
                &[
                    ("x", &["x"]),
                    ("indices", &[&idx]),
                    ("axis", &[&axis]),
                    ("batch_dims", &[&batch]),
                ],
            )
            .unwrap();
        let mut program = Program::new(Target::IOS15, vec![b.finish(vec![g])]);
        let e = validate_program(&program).unwrap_err();
        assert!(e.message.contains("batch_dims"), "{e}");
        program.target = Target::IOS16;
        validate_program(&program).unwrap();
    }

    /// A declared default must be a value the parameter accepts: a string for a `Str`
    /// parameter, an integer for an `Int` one, and so on (a mismatch would only show when
    /// the parameter is absent).
    #[test]
    fn parameter_defaults_fit_their_types() {
        for def in all() {
            for p in def.params {
                let Some(d) = p.default else { continue };
                let fits = matches!(
                    (p.ty, d),
                    (ParamType::Str, ParamDefault::Str(_))
                        | (ParamType::Int, ParamDefault::Int(_) | ParamDefault::Ints(_))
                        | (ParamType::Bool, ParamDefault::Bool(_))
                        | (ParamType::T | ParamType::Setting, ParamDefault::Float(_))
                );
                assert!(
                    fits,
                    "{}.{}: default {d:?} for a {:?} parameter",
                    def.name, p.name, p.ty
                );
                assert!(
                    !p.required,
                    "{}.{} has a default but is required",
                    def.name, p.name
                );
            }
        }
    }

    /// The facts the passes used to keep in their own tables: fp16 leaves `cast`, `shape` and
    /// the state ops alone and keeps `classify` in fp32; a `conv_transpose` weight has its
    /// output channels on axis 1; a constant `matmul` operand's channels follow its transpose
    /// flag; the norm pattern's squaring, reduce, step and root ops.
    #[test]
    fn per_op_facts_are_on_the_definitions() {
        let def = |name: &str| lookup(name).unwrap_or_else(|| panic!("{name} is registered"));
        for name in ["cast", "shape", "read_state", "write_state"] {
            assert_eq!(def(name).precision, Precision::Kept, "{name}");
        }
        assert!(matches!(def("classify").precision, Precision::Fp32(_)));
        assert_eq!(def("relu").precision, Precision::Chosen);
        let no = |_: &str| false;
        let yes = |_: &str| true;
        let axes = |output, input| ChannelAxes { output, input };
        assert_eq!((def("conv").weight_axes)("weight", 4, &no), axes(0, 1));
        assert_eq!(
            (def("conv_transpose").weight_axes)("weight", 4, &no),
            axes(1, 0)
        );
        assert_eq!((def("matmul").weight_axes)("y", 3, &no), axes(2, 1));
        assert_eq!((def("matmul").weight_axes)("y", 3, &yes), axes(1, 2));
        assert_eq!((def("matmul").weight_axes)("x", 2, &no), axes(0, 1));
        assert_eq!((def("matmul").weight_axes)("x", 2, &yes), axes(1, 0));
        assert!(def("layer_norm").norm.fused);
        assert_eq!(def("pow").norm.square, Some(Square::ByTwo));
        assert_eq!(def("mul").norm.square, Some(Square::BySelf));
        assert!(def("mul").norm.step && def("add").norm.step && !def("pow").norm.step);
        assert!(def("reduce_mean").norm.reduce && !def("reduce_max").norm.reduce);
        assert!(def("rsqrt").norm.root && def("sqrt").norm.root && !def("exp").norm.root);
        assert!(lookup("no_such_op").is_none());
    }

    #[test]
    fn parameter_names_are_unique_per_op() {
        for def in all() {
            let names: HashSet<_> = def.params.iter().map(|p| p.name).collect();
            assert_eq!(
                names.len(),
                def.params.len(),
                "op '{}' repeats a parameter",
                def.name
            );
        }
    }
}
