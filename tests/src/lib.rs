//! Shared pieces of foldline's integration tests.
