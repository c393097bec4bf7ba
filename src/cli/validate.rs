//! `kimage validate`: the whole-cluster lint; writes nothing.

use super::*;

pub(super) fn cmd_validate(cli: &Cli) -> Result<(), Error> {
    let c = check_profile(&cli.profile)?;
    match cli.output {
        Output::Json => print_json(&serde_json::json!({
            "valid": true,
            "file": c.loaded.source.file,
            "diagnostics": c.diagnostics,
        })),
        Output::Text => {
            print!("{}", c.diagnostics.render(&c.loaded.source.file));
            let cl = &c.cluster;
            let count = |r| cl.nodes.iter().filter(|n| n.role == r).count();
            use crate::profile::Role::*;
            println!(
                "{}: cluster `{}` is valid: {} nodes ({} control-plane, {} worker, {} etcd, {} load-balancer), \
                 {} etcd member{} ({}), endpoint {}",
                c.loaded.source.file,
                cl.name,
                cl.nodes.len(),
                count(ControlPlane),
                count(Worker),
                count(Etcd),
                count(LoadBalancer),
                cl.etcd.members.len(),
                if cl.etcd.members.len() == 1 { "" } else { "s" },
                cl.etcd.topology.as_str(),
                cl.endpoint_url,
            );
            Ok(())
        }
    }
}
