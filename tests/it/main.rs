//! foldline's integration tests: one binary, one module per concern. The `pg_*` modules run
//! against PostgreSQL (`FOLDLINE_POSTGRES_URL`), each test in a schema of its own.

mod commands;
mod memory_conformance;
mod pg_bad_input;
mod pg_commands;
mod pg_conformance;
mod upcasting;
