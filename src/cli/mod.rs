//! The command line: parsing (`args`) and one module per command. Commands load and check the profile
//! the same way (`check_profile`), and write nothing when it has errors; the environment and the clock
//! are read once (`crate::settings`) and handed down.

pub mod args;
mod build;
mod etcd;
mod init;
mod plan;
mod unpack;
mod validate;
mod verify;

use std::io::Write;
use std::path::{Path, PathBuf};

pub use args::*;

use crate::diag::Diagnostics;
use crate::error::Error;
use crate::model::Cluster;
use crate::profile::{self, LoadedProfile};
use crate::settings::Settings;
use crate::validate as lint;

pub use crate::profile::templates::TEMPLATES;

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
    let diagnostics = lint::check(&loaded, &cluster);
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

/// Runs a parsed command line with the process's environment and clock.
pub fn run(cli: Cli) -> Result<(), Error> {
    let settings = Settings::from_process()?;
    run_with(cli, &settings)
}

/// Runs a parsed command line with settings resolved by the caller (no stage reads the environment).
pub fn run_with(cli: Cli, settings: &Settings) -> Result<(), Error> {
    match &cli.command {
        Command::Validate => validate::cmd_validate(&cli),
        Command::Plan(state) => plan::cmd_plan(&cli, state, settings),
        Command::Init(args) => init::cmd_init(&cli, args),
        // Every command that works from the profile checks it first, so bad input never writes anything.
        Command::Pki(args) => {
            let c = check_profile(&cli.profile)?;
            print_warnings(&c);
            let dir = c.loaded.dir();
            // `kimage pki import` is how a lost state is recovered; issuing or renewing must not
            // silently start over with a new CA.
            if !args.new_cluster
                && matches!(
                    args.command,
                    None | Some(crate::pki::command::PkiCommand::Renew(_))
                )
            {
                let state = args
                    .state
                    .clone()
                    .unwrap_or_else(|| crate::pki::default_state_dir(&dir));
                crate::cluster_state::check_pki_kept(&state, &dir.join("out"), &c.cluster.name)?;
            }
            let ctx = crate::pki::command::Context {
                cluster: &c.cluster,
                profile_dir: &dir,
                json: cli.output == Output::Json,
                now: settings.now,
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
                crate::release::command::run_fetch(None, args, settings.cache_dir.as_deref())?;
            } else {
                let c = check_profile(&cli.profile)?;
                print_warnings(&c);
                crate::release::command::run_fetch(
                    Some((&cli.profile, &c.cluster)),
                    args,
                    settings.cache_dir.as_deref(),
                )?;
            }
            Ok(())
        }
        Command::Build(args) => build::cmd_build(&cli, args, settings),
        Command::Etcd(args) => etcd::cmd_etcd(&cli, args, settings),
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
        Command::Unpack(args) => unpack::cmd_unpack(&cli, args, settings),
        Command::Verify { out } => verify::cmd_verify(&cli, out),
        // Generated from the code alone; the profile is not read.
        Command::Docs(args) => Ok(crate::docs::cmd_docs(args)?),
        Command::Completions(args) => Ok(crate::docs::cmd_completions(args)?),
        Command::Man(args) => Ok(crate::docs::cmd_man(args)?),
    }
}

/// Prints an error the way every command does: diagnostics in full, other errors as one line.
pub fn report(e: &Error) {
    match e {
        Error::Invalid { file, diagnostics } => eprint!("{}", diagnostics.render(file)),
        // The first thing a new user runs: say where a profile comes from.
        Error::ReadProfile { path, source } if source.kind() == std::io::ErrorKind::NotFound => {
            eprintln!(
                "error: no profile at {}; write one with `kimage init` (templates: `kimage init --list`), or name yours with --profile",
                path.display()
            )
        }
        other => eprintln!("error: {other}"),
    }
}

/// The nodes `--node` names (in profile order), or every node. Unknown names are invalid input.
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
                "--node {name}: no node of that name in the profile; {hint}nodes: {}",
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
    let Some(mut s) = crate::cluster_state::read(state_dir, &c.cluster.name)? else {
        return Ok((
            c.cluster.clone(),
            Some(crate::cluster_state::initial(&c.cluster)),
        ));
    };
    let mut cluster = c.cluster.clone().with_formed_etcd(&s.etcd_formed_with);
    let named = c.loaded.profile.control_plane.bootstrap_node.is_some();
    // The bootstrap node stays where the first build put it unless the profile names one.
    if let (Some(recorded), false) = (&s.bootstrap_node, named) {
        cluster = cluster.with_recorded_bootstrap(recorded).map_err(|gone| {
            Error::Usage(format!(
                "the bootstrap node `{gone}` ({}) is no longer a control-plane node of the profile; name the node that takes over kimage-bootstrap and super-admin.conf with controlPlane.bootstrapNode",
                crate::cluster_state::path(state_dir).display()
            ))
        })?;
    }
    // A record without the bootstrap node (older kimage) or with another one the profile named:
    // record what this build uses.
    let want = cluster.bootstrap_node.as_ref().map(|n| n.to_string());
    if s.bootstrap_node != want {
        s.bootstrap_node = want;
        return Ok((cluster, Some(s)));
    }
    Ok((cluster, None))
}

#[allow(clippy::too_many_arguments)]
fn inputs<'a>(
    cli: &'a Cli,
    settings: &'a crate::settings::Settings,
    cluster: &'a Cluster,
    state_dir: PathBuf,
    selected: Vec<&'a crate::model::NodeModel>,
    pools: Vec<&'a crate::model::PoolModel>,
    detail: crate::assemble::Detail,
    state: crate::assemble::StateUse,
) -> crate::assemble::Inputs<'a> {
    crate::assemble::Inputs {
        cluster,
        profile: &cli.profile,
        state_dir,
        selected,
        pools,
        settings,
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
