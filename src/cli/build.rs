//! `kimage build`: plan everything in memory, then write the state, the lock and out/.

use super::*;

pub(super) fn cmd_build(cli: &Cli, args: &BuildArgs, settings: &Settings) -> Result<(), Error> {
    let c = check_profile(&cli.profile)?;
    print_warnings(&c);
    let state = state_dir(&c, &args.state);
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| c.loaded.dir().join("out"));
    if !args.new_cluster {
        crate::cluster_state::check_history(&state, &out, &c.cluster.name)?;
    }
    let (cluster, first) = stateful_cluster(&c, &state)?;
    let selected = select_nodes(&cluster, &args.nodes, args.all)?;
    // Worker pools are built with --all (a partial build keeps their earlier artifacts).
    let pools = if args.all {
        cluster.pools.iter().collect()
    } else {
        Vec::new()
    };
    let prepared = crate::assemble::prepare(&inputs(
        cli,
        settings,
        &cluster,
        state.clone(),
        selected,
        pools,
        crate::assemble::Detail::Compact,
        crate::assemble::StateUse::Issue,
    ))?;
    // Everything is computed; from here on the output stage writes, one build per out/ at a time:
    // the state first (what every artifact is made from), what the cluster formed with, the lock,
    // then out/.
    let out_lock = crate::output::guard::lock(&out, |holder| {
        eprintln!(
            "waiting for another kimage build (pid {}) writing {}",
            if holder.is_empty() { "unknown" } else { holder },
            out.display()
        )
    })?;
    let pki = prepared.pki.expect("a build issues what it needs").commit(
        crate::pki::LockMode::WaitSaying(|path| {
            eprintln!(
                "waiting for another kimage run to release {}",
                path.display()
            )
        }),
    )?;
    if let Some(first) = first {
        let p = crate::cluster_state::path(&state);
        crate::output::write_atomic(&p, first.to_json().as_bytes(), 0o600)?;
    }
    if let Some((path, lock)) = &prepared.new_lock {
        lock.write(path)
            .map_err(crate::release::command::CommandError::from)?;
    }
    let (manifest, report) = crate::output::write_build(
        &cluster,
        &prepared.assembly,
        &out,
        args.all,
        args.seed,
        &out_lock,
    )?;
    if !cluster.etcd.joining.is_empty() {
        let names: Vec<&str> = cluster.etcd.joining.iter().map(|n| n.as_str()).collect();
        println!(
            "etcd: {} join the running cluster (as learners, then promoted) when they boot",
            names.join(", ")
        );
    }
    if let Some((lock, _)) = &prepared.new_lock {
        eprintln!(
            "wrote {} (no lock existed; `kimage lock` refreshes it)",
            lock.display()
        );
    }
    if cli.output == Output::Json {
        return print_json(
            &serde_json::json!({"manifest": manifest, "report": report, "pki": pki}),
        );
    }
    let p = &pki;
    let count = |a| p.changes.iter().filter(|x| x.action == a).count();
    use crate::pki::Action;
    println!(
        "pki: {} issued, {} reissued, {} kept ({})",
        count(Action::Issued) + count(Action::Imported),
        count(Action::Reissued),
        count(Action::Kept),
        p.state_file.display()
    );
    for w in &p.warnings {
        eprintln!("warning: {w}");
    }
    println!(
        "layers: {} ({}) in {}",
        report.layers_built,
        human_bytes(report.layer_bytes),
        out.join("layers").display()
    );
    let w = report
        .nodes
        .iter()
        .map(|n| n.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    println!(
        "{:<w$}  {:<13}  {:>10}  {:>6}  {:>10}",
        "NODE", "ROLE", "USER-DATA", "LAYERS", "SEED"
    );
    for n in &report.nodes {
        println!(
            "{:<w$}  {:<13}  {:>10}  {:>6}  {:>10}",
            n.name,
            n.role,
            human_bytes(n.user_data_bytes),
            n.layers,
            n.seed_bytes
                .map(human_bytes)
                .unwrap_or_else(|| "-".to_string())
        );
    }
    for (name, pool) in &manifest.pools {
        if args.all {
            println!(
                "pool {name}: {} ({}), token {} expires {}, CA {}",
                pool.user_data.path,
                human_bytes(pool.user_data.bytes),
                pool.bootstrap_token_id,
                pool.bootstrap_token_expires,
                pool.ca_cert_hash
            );
        }
        let id = crate::pki::token::token_id(name);
        if p.changes
            .iter()
            .any(|ch| ch.id == id && matches!(ch.action, Action::Issued | Action::Reissued))
            // A CA kept from an earlier run: the cluster may already be running with the old token.
            && p.changes
                .iter()
                .any(|ch| ch.id == crate::pki::spec::CA && ch.action == Action::Kept)
        {
            eprintln!(
                "note: pool {name} has a new bootstrap token; the cluster learns it when the bootstrap node applies its manifests (re-provisioned with its new user-data) or when you apply it now: kubectl apply --server-side -f {}",
                out.join(&pool.bootstrap_token_secret.path).display()
            );
        }
    }
    for n in &report.nodes {
        if let Some(limit) = &n.user_data_over {
            eprintln!(
                "warning: {}: user-data is {}, over the {limit} limit; deliver it gzip-compressed (cloud-init accepts gzip) or through a seed",
                n.name,
                human_bytes(n.user_data_bytes)
            );
        }
    }
    for (name, node) in &manifest.nodes {
        if !node.excluded_binaries.is_empty() && report.nodes.iter().any(|n| &n.name == name) {
            println!(
                "{name}: not delivered (binaries.exclude, the image must have them): {}",
                node.excluded_binaries.join(", ")
            );
        }
    }
    println!("wrote {}", out.join(crate::output::MANIFEST).display());
    Ok(())
}
