//! Helpers shared by integration tests: `mod support;` in a test file. Not every test file uses every
//! helper, hence the allow.
#![allow(dead_code)]

pub mod artifacts;
pub mod fixtures;
pub mod http;
pub mod kubectl;
pub mod nodes;
pub mod openssl;
pub mod profiles;
pub mod real;
pub mod releases;
pub mod tools;
