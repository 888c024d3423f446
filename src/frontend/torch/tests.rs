//! Tests of the torch.export frontend.
