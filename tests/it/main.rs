//! foldline's integration tests: one binary, one module per concern.

mod memory_conformance;
