//! The cluster PKI: what it must contain (`spec`), generating it, and keeping it in the state directory.

pub mod spec;
