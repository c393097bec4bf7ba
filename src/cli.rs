//! The command line: argument parsing and one function per command. Commands load and check the
//! profile the same way, and write nothing when it has errors.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::diag::Diagnostics;
use crate::error::Error;
use crate::model::Cluster;
use crate::profile::{self, LoadedProfile};
use crate::{plan, validate};

#[derive(Debug, Parser)]
#[command(name = "kimage", version, about = "Turn one cluster profile into per-node cloud-init user-data, layers and PKI for a Kubernetes cluster that forms by itself", long_about = None)]
pub struct Cli {
    /// The cluster profile.
    #[arg(
        long,
        short = 'p',
        global = true,
        default_value = "cluster.yaml",
        env = "KIMAGE_PROFILE"
    )]
    pub profile: PathBuf,
    /// Output format of reports.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Whole-cluster lint of the profile; nothing is written.
    Validate,
    /// What each node will get: role, certificates, files, binaries; nothing is written.
    Plan(StateArgs),
    /// Write a starting profile from one of the shipped templates.
    Init(InitArgs),
    /// Create or refresh the PKI state (idempotent); see also its subcommands.
    Pki(crate::pki::command::PkiArgs),
    /// Write kimage.lock beside the profile: every release artifact with its digest.
    Lock(crate::release::command::LockArgs),
    /// Fill the download cache, verifying every digest.
    Fetch(crate::release::command::FetchArgs),
    /// Build the per-node artifacts into the output directory.
    Build(BuildArgs),
    /// Write one node's filesystem as it will be once cloud-init has run.
    Unpack(UnpackArgs),
    /// Per node, which artifacts changed between two output directories and which files in them: what an
    /// immutable rollout must replace.
    Diff {
        /// The output directory of the build the nodes run now.
        old: PathBuf,
        /// The output directory of the new build.
        new: PathBuf,
    },
    /// The running etcd cluster's members (`members`), or remove one (`remove NAME`), with a client
    /// certificate from the PKI state. Members added to the profile join by themselves when they boot.
    Etcd(EtcdArgs),
    /// Write the reference docs, man pages and shell completions generated from the code.
    Docs(crate::docs::DocsArgs),
    /// Print the shell completion script for bash, zsh or fish.
    Completions(crate::docs::CompletionsArgs),
    /// Print the man page (roff) of kimage or of one of its commands.
    Man(crate::docs::ManArgs),
}

#[derive(Debug, Args)]
pub struct EtcdArgs {
    #[command(flatten)]
    pub state: StateArgs,
    /// Client URLs to ask (default: every member's in the profile).
    #[arg(long, value_delimiter = ',')]
    pub endpoints: Vec<String>,
    #[command(subcommand)]
    pub command: EtcdCommand,
}

#[derive(Debug, Subcommand)]
pub enum EtcdCommand {
    /// List the members: id, name, role (voting or learner), peer URLs.
    Members,
    /// Remove a member (after its node is gone, or before you retire it).
    Remove {
        /// The member's name (its node name).
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct StateArgs {
    /// PKI state directory (default: kimage-state beside the profile).
    #[arg(long, short = 's')]
    pub state: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["role", "all"])))]
pub struct BuildArgs {
    #[command(flatten)]
    pub state: StateArgs,
    /// Output directory (default: out beside the profile).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Build these nodes (node names from the profile; repeat or comma-separate).
    #[arg(long, value_delimiter = ',')]
    pub role: Vec<String>,
    /// Build every node.
    #[arg(long)]
    pub all: bool,
    /// Also write out/nodes/<name>/seed.img when layers do not come from the seed (`layers.from: url`
    /// or `image`); with `seed` it is always written.
    #[arg(long)]
    pub seed: bool,
}

#[derive(Debug, Args)]
pub struct UnpackArgs {
    #[command(flatten)]
    pub state: StateArgs,
    /// The node to materialize.
    #[arg(long)]
    pub role: String,
    /// Directory to write the node's filesystem into.
    #[arg(long)]
    pub into: PathBuf,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Template to start from.
    #[arg(long, short = 't', default_value = "quickstart")]
    pub template: String,
    /// List the templates and exit.
    #[arg(long)]
    pub list: bool,
    /// Overwrite PATH if it exists.
    #[arg(long)]
    pub force: bool,
    /// Where to write the profile (default: the --profile path, cluster.yaml).
    pub path: Option<PathBuf>,
}

/// The shipped profiles, embedded so `kimage init` works anywhere.
pub const TEMPLATES: &[(&str, &str)] = &[
    ("quickstart", include_str!("../profiles/quickstart.yaml")),
    (
        "000-single-master",
        include_str!("../profiles/000-single-master.yaml"),
    ),
    (
        "000-ha-nginx-keepalived",
        include_str!("../profiles/000-ha-nginx-keepalived.yaml"),
    ),
    ("001-minimal", include_str!("../profiles/001-minimal.yaml")),
    (
        "002-external-etcd-nginx",
        include_str!("../profiles/002-external-etcd-nginx.yaml"),
    ),
    (
        "003-stacked-ha-ipvs",
        include_str!("../profiles/003-stacked-ha-ipvs.yaml"),
    ),
    (
        "004-ha-haproxy",
        include_str!("../profiles/004-ha-haproxy.yaml"),
    ),
];

/// A profile that loaded and passed whole-cluster validation (warnings allowed).
pub struct Checked {
    pub loaded: LoadedProfile,
    pub cluster: Cluster,
    pub diagnostics: Diagnostics,
}

/// Loads, resolves and validates the profile. Errors end the command with status 2.
pub fn check_profile(path: &Path) -> Result<Checked, Error> {
    let loaded = profile::load_file(path)?;
    let cluster = Cluster::resolve(&loaded.profile);
    let diagnostics = validate::check(&loaded, &cluster);
    if diagnostics.has_errors() {
        return Err(Error::Invalid {
            file: loaded.source.file.clone(),
            diagnostics,
        });
    }
    Ok(Checked {
        loaded,
        cluster,
        diagnostics,
    })
}

fn print_warnings(c: &Checked) {
    if c.diagnostics.warnings().next().is_some() {
        eprint!("{}", c.diagnostics.render(&c.loaded.source.file));
    }
}

fn print_json(value: &impl serde::Serialize) -> Result<(), Error> {
    let mut s = serde_json::to_string_pretty(value).expect("report serializes");
    s.push('\n');
    std::io::stdout()
        .write_all(s.as_bytes())
        .map_err(Error::io("stdout"))
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<(), Error> {
    match &cli.command {
        Command::Validate => cmd_validate(&cli),
        Command::Plan(state) => cmd_plan(&cli, state),
        Command::Init(args) => cmd_init(&cli, args),
        // Every command that works from the profile checks it first, so bad input never writes anything.
        Command::Pki(args) => {
            let c = check_profile(&cli.profile)?;
            print_warnings(&c);
            let dir = c.loaded.dir();
            let ctx = crate::pki::command::Context {
                cluster: &c.cluster,
                profile_dir: &dir,
                json: cli.output == Output::Json,
                now: time::OffsetDateTime::now_utc(),
            };
            crate::pki::command::run(args, &ctx, &mut std::io::stdout(), &mut std::io::stderr())?;
            Ok(())
        }
        Command::Lock(args) => {
            let c = check_profile(&cli.profile)?;
            print_warnings(&c);
            let out = crate::release::command::run_lock(&cli.profile, &c.cluster, args)?;
            if cli.output == Output::Json {
                print_json(
                    &serde_json::json!({"path": out.path, "written": out.written, "lock": out.lock}),
                )?;
            }
            Ok(())
        }
        Command::Fetch(args) => {
            if args.lock.is_some() {
                crate::release::command::run_fetch(None, args)?;
            } else {
                let c = check_profile(&cli.profile)?;
                print_warnings(&c);
                crate::release::command::run_fetch(Some((&cli.profile, &c.cluster)), args)?;
            }
            Ok(())
        }
        Command::Build(args) => cmd_build(&cli, args),
        Command::Etcd(args) => cmd_etcd(&cli, args),
        Command::Diff { old, new } => {
            let d = crate::output::diff::diff(old, new)?;
            match cli.output {
                Output::Json => print_json(&d),
                Output::Text => {
                    print!("{}", crate::output::diff::render_text(&d));
                    Ok(())
                }
            }
        }
        Command::Unpack(args) => cmd_unpack(&cli, args),
        // Generated from the code alone; the profile is not read.
        Command::Docs(args) => crate::docs::cmd_docs(args),
        Command::Completions(args) => crate::docs::cmd_completions(args),
        Command::Man(args) => crate::docs::cmd_man(args),
    }
}

fn cmd_validate(cli: &Cli) -> Result<(), Error> {
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

fn cmd_init(cli: &Cli, args: &InitArgs) -> Result<(), Error> {
    if args.list {
        for (name, text) in TEMPLATES {
            let about = text
                .lines()
                .next()
                .unwrap_or("")
                .trim_start_matches('#')
                .trim();
            println!("{name:<26} {about}");
        }
        return Ok(());
    }
    let Some((_, text)) = TEMPLATES.iter().find(|(n, _)| *n == args.template) else {
        let names: Vec<&str> = TEMPLATES.iter().map(|(n, _)| *n).collect();
        let hint = crate::profile::suggest(&args.template, names.iter().copied())
            .map(|s| format!("did you mean `{s}`? "))
            .unwrap_or_default();
        return Err(Error::Usage(format!(
            "unknown template `{}`; {hint}templates: {}",
            args.template,
            names.join(", ")
        )));
    };
    let path = args.path.clone().unwrap_or_else(|| cli.profile.clone());
    if path.exists() && !args.force {
        return Err(Error::Usage(format!(
            "{} exists; pass --force to overwrite it, or give another path",
            path.display()
        )));
    }
    crate::output::write_atomic(&path, text.as_bytes(), 0o644)?;
    eprintln!(
        "wrote {} from template `{}`; next: kimage validate --profile {}",
        path.display(),
        args.template,
        path.display()
    );
    Ok(())
}

/// Prints an error the way every command does: diagnostics in full, other errors as one line.
pub fn report(e: &Error) {
    match e {
        Error::Invalid { file, diagnostics } => eprint!("{}", diagnostics.render(file)),
        other => eprintln!("error: {other}"),
    }
}

/// The nodes `--role` names (in profile order), or every node. Unknown names are invalid input.
fn select_nodes<'a>(
    c: &'a Cluster,
    names: &[String],
    all: bool,
) -> Result<Vec<&'a crate::model::NodeModel>, Error> {
    if all {
        return Ok(c.nodes.iter().collect());
    }
    for name in names {
        if c.node(name).is_none() {
            let known: Vec<&str> = c.nodes.iter().map(|n| n.name.as_str()).collect();
            let hint = crate::profile::suggest(name, known.iter().copied())
                .map(|s| format!("did you mean `{s}`? "))
                .unwrap_or_default();
            return Err(Error::Usage(format!(
                "--role {name}: no node of that name in the profile; {hint}nodes: {}",
                known.join(", ")
            )));
        }
    }
    Ok(c.nodes
        .iter()
        .filter(|n| names.iter().any(|r| r == n.name.as_str()))
        .collect())
}

fn state_dir(c: &Checked, state: &StateArgs) -> PathBuf {
    state
        .state
        .clone()
        .unwrap_or_else(|| crate::pki::default_state_dir(&c.loaded.dir()))
}

/// The model with what the state remembers (the etcd members the cluster formed with), and the record
/// to write when this is the cluster's first build.
fn stateful_cluster(
    c: &Checked,
    state_dir: &Path,
) -> Result<(Cluster, Option<crate::cluster_state::ClusterState>), Error> {
    let recorded = crate::cluster_state::read(state_dir, &c.cluster.name)
        .map_err(|e| Error::Usage(e.to_string()))?;
    Ok(match recorded {
        Some(s) => (
            c.cluster.clone().with_formed_etcd(&s.etcd_formed_with),
            None,
        ),
        None => (
            c.cluster.clone(),
            Some(crate::cluster_state::initial(&c.cluster)),
        ),
    })
}

fn inputs<'a>(
    cli: &'a Cli,
    cluster: &'a Cluster,
    state_dir: PathBuf,
    selected: Vec<&'a crate::model::NodeModel>,
    pools: Vec<&'a crate::model::PoolModel>,
    detail: crate::output::build::Detail,
    state: crate::output::build::StateUse,
) -> crate::output::build::Inputs<'a> {
    crate::output::build::Inputs {
        cluster,
        profile: &cli.profile,
        state_dir,
        selected,
        pools,
        cache: None,
        now: time::OffsetDateTime::now_utc(),
        detail,
        state,
    }
}

fn human_bytes(n: u64) -> String {
    if n < 1024 {
        format!("{n} B")
    } else if n < 1024 * 1024 {
        format!("{:.1} KiB", n as f64 / 1024.0)
    } else {
        format!("{:.1} MiB", n as f64 / (1024.0 * 1024.0))
    }
}

fn cmd_build(cli: &Cli, args: &BuildArgs) -> Result<(), Error> {
    let c = check_profile(&cli.profile)?;
    print_warnings(&c);
    let state = state_dir(&c, &args.state);
    let (cluster, first) = stateful_cluster(&c, &state)?;
    let selected = select_nodes(&cluster, &args.role, args.all)?;
    // Worker pools are built with --all (a partial build keeps their earlier artifacts).
    let pools = if args.all {
        cluster.pools.iter().collect()
    } else {
        Vec::new()
    };
    let prepared = crate::output::build::prepare(&inputs(
        cli,
        &cluster,
        state.clone(),
        selected,
        pools,
        crate::output::build::Detail::Compact,
        crate::output::build::StateUse::Issue,
    ))?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| c.loaded.dir().join("out"));
    // Everything is computed; from here on the output stage writes: the state first (what every
    // artifact is made from), what the cluster formed with, the lock, then out/.
    let pki = prepared
        .pki
        .expect("a build issues what it needs")
        .commit(crate::pki::LockMode::Wait)?;
    if let Some(first) = first {
        let p = crate::cluster_state::path(&state);
        crate::output::write_atomic(&p, first.to_json().as_bytes(), 0o600)?;
    }
    if let Some((path, lock)) = &prepared.new_lock {
        lock.write(path)
            .map_err(crate::release::command::CommandError::from)?;
    }
    let (manifest, report) =
        crate::output::write_build(&cluster, &prepared.assembly, &out, args.all, args.seed)?;
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

fn cmd_unpack(cli: &Cli, args: &UnpackArgs) -> Result<(), Error> {
    let c = check_profile(&cli.profile)?;
    print_warnings(&c);
    let state = state_dir(&c, &args.state);
    let (cluster, _) = stateful_cluster(&c, &state)?;
    let selected = select_nodes(&cluster, std::slice::from_ref(&args.role), false)?;
    // What a build made: the stored state as it is (unpack writes nothing but --into).
    let prepared = crate::output::build::prepare(&inputs(
        cli,
        &cluster,
        state,
        selected,
        Vec::new(),
        crate::output::build::Detail::Full,
        crate::output::build::StateUse::Existing,
    ))?;
    let a = &prepared.assembly;
    let n = &a.nodes[0];
    let boot = crate::output::build::boot_files(&cluster, a, n)?;
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

fn cmd_etcd(cli: &Cli, args: &EtcdArgs) -> Result<(), Error> {
    let c = check_profile(&cli.profile)?;
    let state = state_dir(&c, &args.state);
    let pki = crate::pki::load(&c.cluster, &state, time::OffsetDateTime::now_utc())?;
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

/// `kimage plan`: what each node gets, and, against an existing state, which certificates the next build
/// (re-)issues and so which running nodes must be replaced. Reads the state, writes nothing.
fn cmd_plan(cli: &Cli, state: &StateArgs) -> Result<(), Error> {
    let c = check_profile(&cli.profile)?;
    print_warnings(&c);
    let dir = state_dir(&c, state);
    let (cluster, first) = stateful_cluster(&c, &dir)?;
    let mut p = plan::plan(&cluster).map_err(crate::output::build::BuildError::from)?;
    let state_file = crate::pki::StateDir::new(&dir).state_file();
    if state_file.exists() {
        p.pending = match crate::pki::load(&cluster, &dir, time::OffsetDateTime::now_utc()) {
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
            "{}: the etcd members the cluster forms with (later members join it)",
            crate::cluster_state::path(&dir).display()
        ));
    }
    let lock = crate::release::command::lock_path(&cli.profile);
    let needs_binaries = cluster
        .nodes
        .iter()
        .chain(cluster.pools.iter().map(|p| &p.node))
        .any(|n| !n.binaries.is_empty());
    if needs_binaries && !lock.exists() {
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
