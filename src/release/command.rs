//! `kimage lock` and `kimage fetch`: clap arguments and handlers (the CLI adds the enum variants).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::cache::{Cache, CacheError, cache_dir};
use super::catalog::CATALOG;
use super::fetch::{FetchFailed, FetchOptions, Fetched, Outcome, fetch_lock};
use super::lock::{
    LOCK_FILE, Lock, LockFileError, ResolveError, ResolveOptions, StaleLock, check_lock,
    resolve_lock,
};
use super::net::RetryPolicy;
use super::progress::ProgressMode;
use crate::model::Cluster;
use crate::profile::{self, LoadError};

#[derive(Debug, Clone, clap::Args)]
pub struct LockArgs {
    /// Use only the built-in catalog and the existing lock, never the network.
    #[arg(long)]
    pub offline: bool,
    /// Read upstream checksum files through this mirror (http(s):// or file://, keeping the upstream
    /// paths) instead of binaries.mirror.
    #[arg(long, value_name = "URL")]
    pub mirror: Option<String>,
    /// Read digests of versions outside the built-in catalog again instead of keeping the existing lock's.
    #[arg(long)]
    pub refresh: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct FetchArgs {
    /// Download from this mirror (http(s):// or file://) that keeps the upstream paths, instead of
    /// binaries.mirror or upstream.
    #[arg(long, value_name = "URL")]
    pub mirror: Option<String>,
    /// Download what this lock file names, without reading a profile.
    #[arg(long, value_name = "FILE")]
    pub lock: Option<PathBuf>,
    /// Cache directory [default: $XDG_CACHE_HOME/kimage or ~/.cache/kimage].
    #[arg(long, env = "KIMAGE_CACHE", value_name = "DIR")]
    pub cache: Option<PathBuf>,
    /// Parallel downloads.
    #[arg(long, short = 'j', default_value_t = 4)]
    pub jobs: usize,
    /// Tries per artifact when a transfer fails transiently (5xx, connection reset, timeout).
    #[arg(long, default_value_t = 5)]
    pub retries: u32,
    /// Plain progress lines instead of progress bars.
    #[arg(long)]
    pub plain: bool,
    /// No progress output.
    #[arg(long, short = 'q', conflicts_with = "plain")]
    pub quiet: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The profile did not load; its diagnostics are in the error (exit status 2).
    #[error(transparent)]
    Profile(#[from] LoadError),
    #[error(transparent)]
    LockFile(#[from] LockFileError),
    #[error(transparent)]
    Stale(#[from] StaleLock),
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    #[error(transparent)]
    Fetch(#[from] FetchFailed),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("nothing to fetch: give a profile (with its kimage.lock) or --lock FILE")]
    NoLock,
    #[error(
        "--mirror {0}: is not an http://, https:// or file:// URL; give a base URL such as http://10.0.0.1:8080/releases"
    )]
    BadMirror(String),
}

impl CommandError {
    pub fn exit_code(&self) -> u8 {
        use crate::exit;
        match self {
            CommandError::Profile(_) | CommandError::BadMirror(_) | CommandError::NoLock => {
                exit::INVALID
            }
            CommandError::LockFile(_) | CommandError::Stale(_) => exit::STATE,
            CommandError::Fetch(f)
                if f.errors
                    .iter()
                    .any(|e| matches!(e, super::fetch::FetchError::Mismatch { .. })) =>
            {
                exit::VERIFY
            }
            CommandError::Resolve(_) | CommandError::Fetch(_) | CommandError::Cache(_) => {
                exit::FAILURE
            }
        }
    }
}

/// What `run_lock` did.
#[derive(Debug, Clone)]
pub struct LockOutcome {
    pub path: PathBuf,
    pub lock: Lock,
    /// False when the file already had these bytes (it is then left untouched).
    pub written: bool,
}

fn check_mirror(m: Option<&String>) -> Result<(), CommandError> {
    match m {
        Some(u) if u.parse::<profile::Url>().is_err() => Err(CommandError::BadMirror(u.clone())),
        _ => Ok(()),
    }
}

/// The path of the lock beside a profile.
pub fn lock_path(profile_path: &Path) -> PathBuf {
    match profile_path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.join(LOCK_FILE),
        _ => PathBuf::from(LOCK_FILE),
    }
}

/// `kimage lock`: resolve every artifact the profile's nodes need and write kimage.lock beside it.
/// `profile` is where the (already validated) profile was read from.
pub fn run_lock(
    profile: &Path,
    cluster: &Cluster,
    args: &LockArgs,
) -> Result<LockOutcome, CommandError> {
    check_mirror(args.mirror.as_ref())?;
    let path = lock_path(profile);
    // A previous lock that no longer parses is simply replaced.
    let previous = Lock::read(&path).ok();
    let mirror = args
        .mirror
        .clone()
        .or_else(|| cluster.binaries.mirror.as_ref().map(|m| m.to_string()));
    let opts = ResolveOptions {
        offline: args.offline,
        mirror,
        previous: previous.clone(),
        refresh: args.refresh,
        retry: RetryPolicy::default(),
    };
    let lock = resolve_lock(cluster, &opts)?;
    let text = lock.to_toml();
    let written = std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str());
    if written {
        lock.write(&path)?;
    }
    let from_catalog = lock
        .artifacts
        .iter()
        .filter(|a| CATALOG.release(&a.kind, &a.version, a.arch).is_some())
        .count();
    let verb = if written { "wrote" } else { "unchanged:" };
    println!(
        "{verb} {} ({} artifacts: {from_catalog} from the built-in catalog, {} from upstream checksum files)",
        path.display(),
        lock.artifacts.len(),
        lock.artifacts.len() - from_catalog
    );
    Ok(LockOutcome {
        path,
        lock,
        written,
    })
}

/// `kimage fetch`: download what the lock names into the cache, verifying every digest. `profile` is
/// the validated profile (its path and model); `--lock FILE` needs none.
/// `kimage fetch`; `default_cache` is the cache directory the settings resolved.
pub fn run_fetch(
    profile: Option<(&Path, &Cluster)>,
    args: &FetchArgs,
    default_cache: Option<&Path>,
) -> Result<Vec<Fetched>, CommandError> {
    check_mirror(args.mirror.as_ref())?;
    let (lock, profile_mirror) = match (&args.lock, profile) {
        (Some(path), _) => (Lock::read(path)?, None),
        (None, None) => return Err(CommandError::NoLock),
        (None, Some((profile, cluster))) => {
            let lock = Lock::read(&lock_path(profile))?;
            check_lock(cluster, &lock)?;
            (
                lock,
                cluster.binaries.mirror.as_ref().map(|m| m.to_string()),
            )
        }
    };
    let root = match &args.cache {
        Some(p) => p.clone(),
        None => cache_dir(default_cache)?,
    };
    let cache = Cache::new(root);
    let opts = FetchOptions {
        mirror: args.mirror.clone().or(profile_mirror),
        jobs: args.jobs.max(1),
        retry: RetryPolicy {
            attempts: args.retries.max(1),
            ..RetryPolicy::default()
        },
        progress: if args.quiet {
            ProgressMode::Quiet
        } else if args.plain {
            ProgressMode::Plain
        } else {
            ProgressMode::Auto
        },
    };
    let started = std::time::Instant::now();
    let fetched = fetch_lock(&lock, &cache, &opts)?;
    let bytes: u64 = fetched
        .iter()
        .filter(|f| f.outcome != Outcome::Cached)
        .map(|f| f.bytes)
        .sum();
    let cached = fetched
        .iter()
        .filter(|f| f.outcome == Outcome::Cached)
        .count();
    println!(
        "fetched {} artifacts into {} ({} downloaded, {bytes} bytes; {cached} already cached and re-verified) in {}",
        fetched.len(),
        cache.root().display(),
        fetched.len() - cached,
        fmt_duration(started.elapsed())
    );
    Ok(fetched)
}

fn fmt_duration(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: Cmd,
    }

    #[derive(clap::Subcommand)]
    enum Cmd {
        Lock(LockArgs),
        Fetch(FetchArgs),
    }

    #[test]
    fn arguments_fit_a_cli() {
        Cli::command().debug_assert();
        let cli = Cli::parse_from([
            "kimage",
            "fetch",
            "--mirror",
            "file:///srv/m",
            "-j",
            "8",
            "--plain",
        ]);
        let Cmd::Fetch(f) = cli.cmd else { panic!() };
        assert_eq!(
            (f.mirror.as_deref(), f.jobs, f.plain),
            (Some("file:///srv/m"), 8, true)
        );
        assert!(Cli::try_parse_from(["kimage", "fetch", "--plain", "--quiet"]).is_err());
        let Cmd::Lock(l) = Cli::parse_from(["kimage", "lock", "--offline"]).cmd else {
            panic!()
        };
        assert!(l.offline);
    }

    #[test]
    fn a_bad_mirror_is_refused_with_the_fix() {
        let e = check_mirror(Some(&"ftp://x".to_string()))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--mirror ftp://x") && e.contains("http://10.0.0.1:8080/releases"),
            "{e}"
        );
        assert_eq!(
            lock_path(Path::new("cluster.yaml")),
            PathBuf::from("kimage.lock")
        );
        assert_eq!(
            lock_path(Path::new("/a/b/p.yaml")),
            PathBuf::from("/a/b/kimage.lock")
        );
    }
}
