//! Package backends.
