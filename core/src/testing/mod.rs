//! Test support (feature `testing`): the store conformance suite and the given/when/then kit.

pub mod conformance;
