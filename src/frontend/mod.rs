//! Source-model frontends.
