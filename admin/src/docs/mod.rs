//! One page per subcommand group, with real output from `examples/example-bank`.

#[doc = include_str!("status.md")]
pub mod status {}

#[doc = include_str!("projections.md")]
pub mod projections {}

#[doc = include_str!("inspection.md")]
pub mod inspection {}

#[doc = include_str!("dead_letters.md")]
pub mod dead_letters {}

#[doc = include_str!("processes.md")]
pub mod processes {}
