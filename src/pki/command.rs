//! `kimage pki`, `kimage pki status`, `kimage pki renew`, `kimage pki import`: clap arguments and
//! one handler each. The CLI adds `Pki(pki::command::PkiArgs)` and calls `run` with the checked
//! cluster; handlers write reports to `out` and progress notes to `err`.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use time::OffsetDateTime;

use super::ensure::{self, EnsureOptions, EnsureReport, Requests, SA_ID};
use super::error::PkiError;
use super::import;
use super::spec::{self, CertId};
use super::state::LockMode;
use super::status;
use crate::model::Cluster;

#[derive(Debug, Clone, Args)]
pub struct PkiArgs {
    /// State directory (default: <profile dir>/kimage-state).
    #[arg(long, short = 's', env = "KIMAGE_STATE", global = true)]
    pub state: Option<PathBuf>,
    /// Fail at once instead of waiting when another kimage run holds the state lock.
    #[arg(long, global = true)]
    pub no_wait: bool,
    /// The cluster starts over: issue a new PKI even though the cluster record or an earlier build
    /// shows the state that built it is missing.
    #[arg(long, global = true)]
    pub new_cluster: bool,
    #[command(subcommand)]
    pub command: Option<PkiCommand>,
}

#[derive(Debug, Clone, Subcommand)]
pub enum PkiCommand {
    /// Every certificate: subject, issuer, SANs, expiry, days left, and whether it matches the profile.
    Status(StatusArgs),
    /// Re-issue leaf certificates with the same CA (and the same keys).
    Renew(RenewArgs),
    /// Adopt the CAs and service-account key of an existing cluster (kubeadm or cfssl layout).
    Import(ImportArgs),
}

#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// Show only what expires within this time (e.g. `30d`), earliest first with the nodes that
    /// carry it, and exit 3 when anything does (for monitoring).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub within: Option<crate::profile::Duration>,
}

/// `30d`, `720h`: a duration as the profile writes one.
fn parse_duration(s: &str) -> Result<crate::profile::Duration, String> {
    s.parse()
        .map_err(|p: crate::profile::types::Problem| format!("{}: {}", p.message, p.fix))
}

#[derive(Debug, Clone, Args)]
pub struct RenewArgs {
    /// Certificate ids to renew, as `kimage pki status` lists them (e.g. `apiserver@master-1`), or
    /// `bootstrap-token@<pool>` to replace a worker pool's bootstrap token with a new one.
    pub ids: Vec<String>,
    /// Renew every leaf certificate (bootstrap tokens only when named).
    #[arg(long, conflicts_with = "ids")]
    pub all: bool,
    /// Renew the leaf certificates that expire within this time (e.g. `30d`), as `kimage pki status
    /// --within` lists them.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, conflicts_with_all = ["ids", "all"])]
    pub expiring: Option<crate::profile::Duration>,
    /// Allow CA ids (and `sa`): replace them with new keys and re-issue everything they signed.
    #[arg(long)]
    pub replace_ca: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// Directory holding the cluster's CAs: /etc/kubernetes/pki (kubeadm) or a cfssl output directory.
    #[arg(long)]
    pub from: PathBuf,
    /// Replace CAs or the service-account key the state already holds with different ones.
    #[arg(long)]
    pub replace: bool,
}

/// What every handler needs from the CLI.
pub struct Context<'a> {
    pub cluster: &'a Cluster,
    /// Directory of the profile (the default state directory lives there).
    pub profile_dir: &'a Path,
    /// `--output json`.
    pub json: bool,
    pub now: OffsetDateTime,
}

impl PkiArgs {
    pub fn state_dir(&self, ctx: &Context) -> PathBuf {
        self.state
            .clone()
            .unwrap_or_else(|| super::default_state_dir(ctx.profile_dir))
    }
}

/// Dispatches `kimage pki [SUBCOMMAND]`.
pub fn run(
    args: &PkiArgs,
    ctx: &Context,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), PkiError> {
    match &args.command {
        None => run_ensure(args, ctx, out, err),
        Some(PkiCommand::Status(a)) => run_status(args, a, ctx, out, err),
        Some(PkiCommand::Renew(a)) => run_renew(args, a, ctx, out, err),
        Some(PkiCommand::Import(a)) => run_import(args, a, ctx, out, err),
    }
}

fn write_out(out: &mut dyn Write, text: &str) -> Result<(), PkiError> {
    out.write_all(text.as_bytes())
        .map_err(PkiError::io("writing", "stdout"))
}

fn json<T: serde::Serialize>(value: &T) -> String {
    let mut s = serde_json::to_string_pretty(value).expect("report serializes");
    s.push('\n');
    s
}

/// Tries without waiting first so the user learns why nothing happens, then waits (unless --no-wait).
fn with_lock<T>(
    args: &PkiArgs,
    err: &mut dyn Write,
    mut f: impl FnMut(LockMode) -> Result<T, PkiError>,
) -> Result<T, PkiError> {
    match f(LockMode::Fail) {
        Err(PkiError::Locked { path }) if !args.no_wait => {
            let _ = writeln!(
                err,
                "waiting for another kimage run to release {}",
                path.display()
            );
            f(LockMode::Wait)
        }
        r => r,
    }
}

fn print_report(report: &EnsureReport, ctx: &Context, out: &mut dyn Write) -> Result<(), PkiError> {
    write_out(
        out,
        &if ctx.json {
            json(report)
        } else {
            report.render_text()
        },
    )
}

/// `kimage pki`: create or refresh the state.
pub fn run_ensure(
    args: &PkiArgs,
    ctx: &Context,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), PkiError> {
    let dir = args.state_dir(ctx);
    let (_, report) = with_lock(args, err, |lock| {
        ensure::ensure_with(
            ctx.cluster,
            &dir,
            &EnsureOptions { now: ctx.now, lock },
            &Requests::default(),
        )
    })?;
    print_report(&report, ctx, out)
}

/// `kimage pki status [--within DURATION]`.
pub fn run_status(
    args: &PkiArgs,
    a: &StatusArgs,
    ctx: &Context,
    out: &mut dyn Write,
    _err: &mut dyn Write,
) -> Result<(), PkiError> {
    let report = status::status(ctx.cluster, &args.state_dir(ctx), ctx.now)?;
    if let Some(within) = &a.within {
        let soon = report.expiring(ctx.now, within.as_secs());
        write_out(
            out,
            &if ctx.json {
                json(&soon)
            } else {
                status::render_timeline(ctx.cluster, &soon, &within.to_string())
            },
        )?;
        if !soon.is_empty() {
            return Err(PkiError::ExpiringSoon {
                count: soon.len(),
                within: within.to_string(),
            });
        }
        return Ok(());
    }
    write_out(
        out,
        &if ctx.json {
            json(&report)
        } else {
            report.render_text()
        },
    )
}

/// The renew/replace requests for `kimage pki renew`, checked against the profile's ids.
pub fn renew_requests(cluster: &Cluster, a: &RenewArgs) -> Result<Requests, PkiError> {
    let specs = spec::cert_specs(cluster);
    let mut req = Requests::default();
    if a.all {
        req.renew = specs
            .iter()
            .filter(|s| s.signer.is_some())
            .map(|s| s.id.clone())
            .collect();
        return Ok(req);
    }
    if a.ids.is_empty() {
        return Err(PkiError::Usage(
            "name the certificates to renew (ids from `kimage pki status`) or use --all".into(),
        ));
    }
    let tokens: Vec<String> = ctx_tokens(cluster);
    let known: BTreeSet<&str> = specs
        .iter()
        .map(|s| s.id.as_str())
        .chain([SA_ID])
        .chain(tokens.iter().map(String::as_str))
        .collect();
    for id in &a.ids {
        if !known.contains(id.as_str()) {
            return Err(PkiError::UnknownId {
                id: id.clone(),
                known: known.iter().copied().collect::<Vec<_>>().join(", "),
            });
        }
        let is_ca = id == SA_ID || specs.iter().any(|s| &s.id == id && s.signer.is_none());
        match (is_ca, a.replace_ca) {
            (true, false) => return Err(PkiError::CaNeedsReplace { id: id.clone() }),
            (true, true) => {
                req.replace.insert(CertId::parse(id));
            }
            (false, _) => {
                req.renew.insert(CertId::parse(id));
            }
        }
    }
    Ok(req)
}

/// The `bootstrap-token@<pool>` id of every worker pool.
fn ctx_tokens(cluster: &Cluster) -> Vec<String> {
    cluster
        .pools
        .iter()
        .map(|p| super::token::token_id(p.name.as_str()))
        .collect()
}

/// `kimage pki renew [ID...|--all] [--replace-ca]`.
pub fn run_renew(
    args: &PkiArgs,
    a: &RenewArgs,
    ctx: &Context,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), PkiError> {
    let dir = args.state_dir(ctx);
    let req = match &a.expiring {
        // The leaves status lists as expiring (CAs need --replace-ca, tokens are renewed by name).
        Some(within) => {
            let report = status::status(ctx.cluster, &dir, ctx.now)?;
            let specs = spec::cert_specs(ctx.cluster);
            let leaves: BTreeSet<&str> = specs
                .iter()
                .filter(|s| s.signer.is_some())
                .map(|s| s.id.as_str())
                .collect();
            Requests {
                renew: report
                    .expiring(ctx.now, within.as_secs())
                    .iter()
                    .filter(|r| leaves.contains(r.id.as_str()))
                    .map(|r| CertId::parse(&r.id))
                    .collect(),
                ..Requests::default()
            }
        }
        None => renew_requests(ctx.cluster, a)?,
    };
    let (_, report) = with_lock(args, err, |lock| {
        ensure::ensure_with(
            ctx.cluster,
            &dir,
            &EnsureOptions { now: ctx.now, lock },
            &req,
        )
    })?;
    print_report(&report, ctx, out)
}

/// `kimage pki import --from DIR [--replace]`: adopt the CAs, then issue everything else.
pub fn run_import(
    args: &PkiArgs,
    a: &ImportArgs,
    ctx: &Context,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), PkiError> {
    let dir = args.state_dir(ctx);
    let (_, report) = with_lock(args, err, |lock| {
        import::import(ctx.cluster, &dir, &a.from, a.replace, ctx.now, lock)
    })?;
    print_report(&report, ctx, out)
}
