//! The command line as clap parses it: every command, argument and flag, and nothing else (docs/cli.md,
//! the man pages and the completions are generated from these definitions).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

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
    /// Check an output directory against its manifest.json: every file present, not a link, of the
    /// recorded size and sha256. Exits 4 naming every mismatch; writes nothing.
    Verify {
        /// The output directory (default: out beside the profile).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The running etcd cluster's members (`members`), or remove one (`remove NAME`), with a client
    /// certificate from the PKI state. Members added to the profile join by themselves when they boot.
    Etcd(EtcdArgs),
    /// Write the reference docs, man pages and shell completions generated from the code.
    Docs(DocsArgs),
    /// Print the shell completion script for bash, zsh or fish.
    Completions(CompletionsArgs),
    /// Print the man page (roff) of kimage or of one of its commands.
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub struct EtcdArgs {
    /// PKI state directory (default: kimage-state beside the profile).
    #[arg(long, short = 's', global = true)]
    pub state: Option<PathBuf>,
    /// Client URLs to ask (default: every member's in the profile); before or after the subcommand.
    #[arg(long, value_delimiter = ',', global = true)]
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
#[command(group(clap::ArgGroup::new("which").required(true).args(["nodes", "all"])))]
pub struct BuildArgs {
    #[command(flatten)]
    pub state: StateArgs,
    /// Output directory (default: out beside the profile).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Build these nodes (node names from the profile; repeat or comma-separate). `--role` is the
    /// same flag under its first name.
    #[arg(
        long = "node",
        visible_alias = "role",
        value_name = "NAME",
        value_delimiter = ','
    )]
    pub nodes: Vec<String>,
    /// Build every node.
    #[arg(long)]
    pub all: bool,
    /// Also write out/nodes/<name>/seed.img when layers do not come from the seed (`layers.from: url`
    /// or `image`); with `seed` it is always written.
    #[arg(long)]
    pub seed: bool,
    /// The cluster starts over: build even though the PKI state or the cluster record of an earlier
    /// build is missing (a missing PKI state means a new CA for every node).
    #[arg(long)]
    pub new_cluster: bool,
}

#[derive(Debug, Args)]
pub struct UnpackArgs {
    #[command(flatten)]
    pub state: StateArgs,
    /// The node to materialize (a node name from the profile). `--role` is the same flag under its
    /// first name.
    #[arg(long = "node", visible_alias = "role", value_name = "NAME")]
    pub node: String,
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

/// `kimage docs`.
#[derive(Debug, Args)]
pub struct DocsArgs {
    /// Directory the docs are written to.
    #[arg(long, default_value = "docs", value_name = "DIR")]
    pub out: PathBuf,
    /// Write nothing: regenerate in memory, compare with DIR, and fail (exit 1) listing stale files.
    #[arg(long)]
    pub check: bool,
}

/// `kimage completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to print the completion script for.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// `kimage man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Print the page of this command instead of kimage(1), e.g. `build` or `pki status`.
    #[arg(value_name = "COMMAND")]
    pub command: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

impl Shell {
    pub const ALL: [Shell; 3] = [Shell::Bash, Shell::Zsh, Shell::Fish];

    /// Where `kimage docs` puts the script, named the way each shell looks completions up.
    pub fn file_name(self) -> &'static str {
        match self {
            Shell::Bash => "kimage.bash",
            Shell::Zsh => "_kimage",
            Shell::Fish => "kimage.fish",
        }
    }
}
