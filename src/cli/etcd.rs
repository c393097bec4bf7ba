//! `kimage etcd members|remove`: the running etcd cluster, through a client certificate from the state.

use super::*;

pub(super) fn cmd_etcd(cli: &Cli, args: &EtcdArgs, settings: &Settings) -> Result<(), Error> {
    let c = check_profile(&cli.profile)?;
    let state = state_dir(
        &c,
        &StateArgs {
            state: args.state.clone(),
        },
    );
    let pki = crate::pki::load(&c.cluster, &state, settings.now)?;
    let member = c
        .cluster
        .etcd
        .members
        .first()
        .ok_or_else(|| Error::Usage("the profile has no etcd member".into()))?;
    let client_id = crate::pki::spec::node_id(
        crate::pki::spec::CertKind::EtcdHealthcheckClient,
        member.name.as_str(),
    );
    let missing =
        |what: &str| Error::Usage(format!("the PKI state lacks {what}; run `kimage pki`"));
    let endpoints = if args.endpoints.is_empty() {
        c.cluster
            .etcd
            .members
            .iter()
            .map(|m| m.client_url.clone())
            .collect()
    } else {
        args.endpoints.clone()
    };
    let client = crate::etcd::Client::new(
        endpoints,
        pki.cert_pem(crate::pki::spec::ETCD_CA)
            .ok_or_else(|| missing("the etcd CA"))?,
        pki.cert_pem(&client_id)
            .ok_or_else(|| missing(&client_id))?,
        pki.key_pem(&client_id).ok_or_else(|| missing(&client_id))?,
    )?;
    match &args.command {
        EtcdCommand::Members => {
            let members = client.members()?;
            if cli.output == Output::Json {
                return print_json(&members);
            }
            println!("{:<18}  {:<20}  {:<8}  PEER URLS", "ID", "NAME", "ROLE");
            for m in &members {
                let name = if m.name.is_empty() {
                    "(not started)"
                } else {
                    m.name.as_str()
                };
                let role = if m.is_learner { "learner" } else { "voting" };
                println!(
                    "{:<18}  {name:<20}  {role:<8}  {}",
                    format!("{:x}", m.id),
                    m.peer_urls.join(",")
                );
            }
            Ok(())
        }
        EtcdCommand::Remove { name } => {
            let peer = crate::cluster_state::read(&state, &c.cluster.name)
                .ok()
                .flatten()
                .and_then(|s| {
                    s.etcd_formed_with
                        .into_iter()
                        .find(|(n, _)| n == name)
                        .map(|(_, u)| u)
                })
                .or_else(|| {
                    c.cluster
                        .etcd
                        .members
                        .iter()
                        .find(|m| m.name.as_str() == name)
                        .map(|m| m.peer_url.clone())
                });
            let removed = client.remove(name, peer.as_deref())?;
            println!("removed etcd member {name} ({:x})", removed.id);
            if c.cluster
                .etcd
                .members
                .iter()
                .any(|m| m.name.as_str() == name)
            {
                eprintln!(
                    "note: {name} is still in the profile; remove it there too, or its next boot tries to rejoin"
                );
            }
            Ok(())
        }
    }
}
