//! Kernels, one file per op family; each op's registry entry points at its kernel here.

pub mod elementwise;
