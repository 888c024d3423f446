//! Small helpers shared across the pipeline.

pub mod rng;
