//! The torch.export frontend: reads a `.pt2` archive (any container torch 2.5 and later
//! writes) without torch, and converts its exported program into an fp32 IR program.

pub mod archive;
mod pickle;
mod storage;
mod torch_save;
mod zip_view;
