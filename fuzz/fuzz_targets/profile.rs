//! Any text: loading, resolving and validating it must never panic or hang, and a valid profile must
//! plan (render every node's files) without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(loaded) = kimage::profile::load_str(text, "fuzz.yaml") else {
        return;
    };
    let cluster = kimage::model::Cluster::resolve(&loaded.profile);
    if !kimage::validate::check(&loaded, &cluster).has_errors() {
        let _ = kimage::plan::plan(&cluster);
    }
});
