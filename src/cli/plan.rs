//! `kimage plan`: what every node gets and what the next build writes; reads the state, writes nothing.

use super::*;

/// `kimage plan`: what each node gets, and, against an existing state, which certificates the next build
/// (re-)issues and so which running nodes must be replaced. Reads the state, writes nothing.
pub(super) fn cmd_plan(cli: &Cli, state: &StateArgs, settings: &Settings) -> Result<(), Error> {
    let c = check_profile(&cli.profile)?;
    print_warnings(&c);
    let dir = state_dir(&c, state);
    let (cluster, first) = stateful_cluster(&c, &dir)?;
    let mut p = crate::plan::plan(&cluster).map_err(crate::assemble::BuildError::from)?;
    let state_file = crate::pki::StateDir::new(&dir).state_file();
    if state_file.exists() {
        p.pending = match crate::pki::load(&cluster, &dir, settings.now) {
            Ok(_) => Vec::new(),
            Err(crate::pki::PkiError::Stale { problems, .. }) => {
                problems.iter().map(|s| s.trim().to_string()).collect()
            }
            Err(e) => return Err(e.into()),
        };
        p.state = Some(dir.display().to_string());
        if !p.pending.is_empty() {
            p.writes.push(format!(
                "{}: {} certificate(s) or key(s) (re-)issued, see above",
                state_file.display(),
                p.pending.len()
            ));
        }
    } else {
        p.writes.push(format!(
            "{}: the cluster's PKI, every CA and certificate new",
            state_file.display()
        ));
    }
    if first.is_some() {
        p.writes.push(format!(
            "{}: the etcd members the cluster forms with (later members join it) and its bootstrap node",
            crate::cluster_state::path(&dir).display()
        ));
    }
    let lock = crate::release::command::lock_path(&cli.profile);
    let needs_binaries = cluster
        .nodes
        .iter()
        .chain(cluster.pools.iter().map(|p| &p.node))
        .any(|n| !n.binaries.is_empty());
    if (needs_binaries || cluster.images.is_some()) && !lock.exists() {
        p.writes.push(format!(
            "{}: every release artifact's URL and digest, resolved from the built-in catalog (online for versions it lacks)",
            lock.display()
        ));
    }
    match cli.output {
        Output::Json => print_json(&p),
        Output::Text => {
            print!("{}", p.render_text());
            Ok(())
        }
    }
}
