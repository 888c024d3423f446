//! Library entry points for each command.
