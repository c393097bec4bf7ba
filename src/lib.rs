//! kimage: one cluster profile in, everything a fleet of VMs needs to boot into a Kubernetes cluster out.
//!
//! The modules follow the pipeline: profile → model → plan → pki / release / render → layers / userdata →
//! output. Every stage returns values; only `output` writes to disk.

pub mod assemble;
pub mod cli;
pub mod cluster_state;
pub mod declared;
pub mod diag;
pub mod docs;
pub mod error;
pub mod etcd;
pub mod exit;
pub mod images;
pub mod layers;
pub mod model;
pub mod output;
pub mod pki;
pub mod plan;
pub mod profile;
pub mod release;
pub mod render;
pub mod seed;
pub mod settings;
pub mod userdata;
pub mod validate;
