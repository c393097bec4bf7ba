//! Golden snapshots of every file each fixture node gets, with its mode, owner, layer and scope, and
//! the node's start plan. Review changes with `cargo insta review` (or INSTA_UPDATE=always).

mod render_support;

use std::fmt::Write;

use kimage::render;
use render_support::*;

#[test]
fn rendered_files_match_snapshots() {
    for fx in FIXTURES {
        let c = cluster(fx);
        for n in &c.nodes {
            let mut out = String::new();
            writeln!(out, "# start plan").unwrap();
            for s in render::start_plan(&c, n).unwrap() {
                writeln!(out, "{:?} {}", s.action, s.unit).unwrap();
            }
            for f in render(&c, n) {
                writeln!(
                    out,
                    "\n# {} {:04o} {}:{} layer={} scope={:?} from={}",
                    f.path, f.mode, f.owner, f.group, f.layer, f.scope, f.source
                )
                .unwrap();
                out.push_str(std::str::from_utf8(&f.content).unwrap());
            }
            insta::assert_snapshot!(format!("{fx}__{}", n.name), out);
        }
    }
}
