//! foldline's integration tests: one binary, one module per concern. The `pg_*` modules run
//! against PostgreSQL (`FOLDLINE_POSTGRES_URL`), each test in a schema of its own;
//! the `redis_*` modules against Redis (`FOLDLINE_REDIS_URL`), each test under a key prefix of its own.

mod admin_processes;
mod commands;
mod kafka_admin;
mod kafka_bad_input;
mod kafka_conformance;
mod kafka_ownership;
mod kafka_reads;
mod kafka_store;
mod memory_conformance;
mod memory_target;
mod pg_bad_input;
mod pg_commands;
mod pg_conformance;
mod pg_payloads;
mod pg_process;
mod pg_unreadable;
mod process_runner;
mod projector;
mod projector_targets;
mod redis_target;
mod store_identity;
mod tantivy_target;
mod upcasting;
