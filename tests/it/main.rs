//! foldline's integration tests: one binary, one module per concern.

mod commands;
mod memory_conformance;
mod upcasting;
