//! `kimage unpack`: one node's filesystem from the stored state; writes nothing but `--into`.

use super::*;

pub(super) fn cmd_unpack(cli: &Cli, args: &UnpackArgs, settings: &Settings) -> Result<(), Error> {
    let c = check_profile(&cli.profile)?;
    print_warnings(&c);
    let state = state_dir(&c, &args.state);
    let (cluster, _) = stateful_cluster(&c, &state)?;
    let selected = select_nodes(&cluster, std::slice::from_ref(&args.node), false)?;
    // What a build made: the stored state as it is (unpack writes nothing but --into).
    let prepared = crate::assemble::prepare(&inputs(
        cli,
        settings,
        &cluster,
        state,
        selected,
        Vec::new(),
        crate::assemble::Detail::Full,
        crate::assemble::StateUse::Existing,
    ))?;
    let a = &prepared.assembly;
    let n = &a.nodes[0];
    let boot = crate::assemble::boot_files(&cluster, a, n)?;
    let count = crate::output::unpack::unpack_node(a, n, &boot, &args.into)?;
    eprintln!(
        "{}: {count} entries written for node {}",
        args.into.display(),
        n.name
    );
    if cluster.binaries.source == crate::profile::BinarySource::FetchAtBoot {
        eprintln!(
            "note: binaries.source is fetch-at-boot: the node downloads its binaries at boot; they are not in {}",
            args.into.display()
        );
    }
    if !n.excluded.is_empty() {
        eprintln!(
            "note: not delivered (binaries.exclude): {}",
            n.excluded.join(", ")
        );
    }
    Ok(())
}
