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
use super::net::{CONNECT_TIMEOUT, IDLE_TIMEOUT, RetryPolicy};
use super::progress::ProgressMode;
use crate::model::Cluster;
use crate::profile::{self, LoadError};

/// How `kimage lock` and `kimage fetch` wait for servers and retry. A file fails at the latest one idle
/// timeout after its download deadline; a server that never answers costs at most retries × idle
/// timeout plus the backoff between tries (0.5 s, 1 s, 2 s, …, at most 10 s).
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct NetArgs {
    /// Tries per file when a transfer fails transiently (5xx, connection reset, timeout).
    #[arg(long, default_value_t = 5)]
    pub retries: u32,
    /// Seconds to wait for a connection to a server.
    #[arg(long, value_name = "SECS", default_value_t = CONNECT_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    pub connect_timeout: u64,
    /// Seconds a server may stay silent (before its response headers, or between two reads of the body)
    /// before the try fails and is retried.
    #[arg(long, value_name = "SECS", default_value_t = IDLE_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    pub idle_timeout: u64,
    /// Seconds one file may take in all, tries and waits between them included [default: 300 plus one
    /// per MiB its kind may be at most (catalog max_mib): about 6 min for runc, 22 min for the
    /// kubernetes-server tarball, 5 min for a checksum file].
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub download_timeout: Option<u64>,
}

impl Default for NetArgs {
    /// What the command line gives without these flags.
    fn default() -> Self {
        NetArgs {
            retries: 5,
            connect_timeout: CONNECT_TIMEOUT.as_secs(),
            idle_timeout: IDLE_TIMEOUT.as_secs(),
            download_timeout: None,
        }
    }
}

impl NetArgs {
    pub fn policy(&self) -> RetryPolicy {
        RetryPolicy {
            attempts: self.retries.max(1),
            connect_timeout: Duration::from_secs(self.connect_timeout),
            idle_timeout: Duration::from_secs(self.idle_timeout),
            deadline: self.download_timeout.map(Duration::from_secs),
            ..RetryPolicy::default()
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct LockArgs {
    /// Use only the built-in catalog and the existing lock, never the network.
    #[arg(long)]
    pub offline: bool,
    /// Read upstream checksum files through this mirror (http(s):// or file://, keeping the upstream
    /// paths) instead of binaries.mirror.
    #[arg(long, value_name = "URL")]
    pub mirror: Option<String>,
    /// Read digests of versions outside the built-in catalog, and of images, again instead of keeping
    /// the existing lock's.
    #[arg(long)]
    pub refresh: bool,
    /// Read image manifests through this registry mirror (OCI distribution API, keeping the upstream
    /// repository paths) instead of images.mirror.
    #[arg(long, value_name = "URL")]
    pub image_mirror: Option<String>,
    /// Take every digest from the mirror's checksum files, also for releases the built-in catalog pins
    /// (a mirror serving your own builds of those versions). Needs --mirror or binaries.mirror.
    #[arg(long)]
    pub mirror_checksums: bool,
    #[command(flatten)]
    pub net: NetArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct FetchArgs {
    /// Download from this mirror (http(s):// or file://) that keeps the upstream paths, instead of
    /// binaries.mirror or upstream.
    #[arg(long, value_name = "URL")]
    pub mirror: Option<String>,
    /// Copy images from this registry mirror (OCI distribution API, keeping the upstream repository
    /// paths) instead of images.mirror or each image's registry.
    #[arg(long, value_name = "URL")]
    pub image_mirror: Option<String>,
    /// Download what this lock file names, without reading a profile.
    #[arg(long, value_name = "FILE")]
    pub lock: Option<PathBuf>,
    /// Cache directory [default: $XDG_CACHE_HOME/kimage or ~/.cache/kimage].
    #[arg(long, env = "KIMAGE_CACHE", value_name = "DIR")]
    pub cache: Option<PathBuf>,
    /// Parallel downloads.
    #[arg(long, short = 'j', default_value_t = 4)]
    pub jobs: usize,
    #[command(flatten)]
    pub net: NetArgs,
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
    #[error(transparent)]
    Images(#[from] crate::images::ImagesFailed),
    #[error("nothing to fetch: give a profile (with its kimage.lock) or --lock FILE")]
    NoLock,
    #[error(
        "--mirror {0}: is not an http://, https:// or file:// URL; give a base URL such as http://10.0.0.1:8080/releases"
    )]
    BadMirror(String),
    #[error(
        "--mirror-checksums: there is no mirror to read checksum files from; give --mirror URL or set binaries.mirror"
    )]
    NoMirror,
}

impl CommandError {
    pub fn exit_code(&self) -> u8 {
        use crate::exit;
        match self {
            CommandError::Profile(_)
            | CommandError::BadMirror(_)
            | CommandError::NoMirror
            | CommandError::NoLock => exit::INVALID,
            CommandError::LockFile(LockFileError::Edited { .. }) => exit::VERIFY,
            CommandError::LockFile(_) | CommandError::Stale(_) => exit::STATE,
            CommandError::Fetch(f)
                if f.errors.iter().any(|e| {
                    matches!(
                        e,
                        super::fetch::FetchError::Mismatch { .. }
                            | super::fetch::FetchError::TooLarge { .. }
                    )
                }) =>
            {
                exit::VERIFY
            }
            CommandError::Images(i) => i.exit_code(),
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

/// The registry mirror images are read through: the flag, else the profile's `images.mirror`.
fn image_mirror(flag: Option<&String>, cluster: Option<&Cluster>) -> Option<String> {
    flag.cloned().or_else(|| {
        cluster
            .and_then(|c| c.images.as_ref())
            .and_then(|i| i.mirror.as_ref())
            .map(|m| m.to_string())
    })
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
    check_mirror(args.image_mirror.as_ref())?;
    let path = lock_path(profile);
    // A previous lock that no longer parses is simply replaced.
    let previous = Lock::read(&path).ok();
    let mirror = args
        .mirror
        .clone()
        .or_else(|| cluster.binaries.mirror.as_ref().map(|m| m.to_string()));
    if args.mirror_checksums && (mirror.is_none() || args.offline) {
        return Err(CommandError::NoMirror);
    }
    let opts = ResolveOptions {
        offline: args.offline,
        mirror,
        previous: previous.clone(),
        refresh: args.refresh,
        retry: args.net.policy(),
        image_mirror: args.image_mirror.clone(),
        mirror_checksums: args.mirror_checksums,
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
    check_mirror(args.image_mirror.as_ref())?;
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
        retry: args.net.policy(),
        progress: if args.quiet {
            ProgressMode::Quiet
        } else if args.plain {
            ProgressMode::Plain
        } else {
            ProgressMode::Auto
        },
    };
    let started = std::time::Instant::now();
    let images_from = image_mirror(args.image_mirror.as_ref(), profile.map(|(_, c)| c));
    let fetched = fetch_lock(&lock, &cache, &opts)?;
    let images = crate::images::fetch(&lock.images, &cache, images_from, args.net.policy())?;
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
    if !images.is_empty() {
        let blobs: usize = images.iter().map(|i| i.blobs).sum();
        let downloaded: usize = images.iter().map(|i| i.downloaded).sum();
        let image_bytes: u64 = images.iter().map(|i| i.bytes).sum();
        println!(
            "fetched {} images ({blobs} blobs: {downloaded} downloaded, {image_bytes} bytes; {} already cached and re-verified)",
            images.len(),
            blobs - downloaded
        );
    }
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
        // Without the flags, the arguments are NetArgs::default(); with them, the policy carries them.
        assert_eq!(l.net, NetArgs::default());
        let Cmd::Fetch(f) = Cli::parse_from([
            "kimage",
            "fetch",
            "--retries",
            "2",
            "--connect-timeout",
            "3",
            "--idle-timeout",
            "1",
            "--download-timeout",
            "4",
        ])
        .cmd
        else {
            panic!()
        };
        let p = f.net.policy();
        assert_eq!(
            (p.attempts, p.connect_timeout, p.idle_timeout, p.deadline),
            (
                2,
                Duration::from_secs(3),
                Duration::from_secs(1),
                Some(Duration::from_secs(4))
            )
        );
        assert!(Cli::try_parse_from(["kimage", "lock", "--idle-timeout", "0"]).is_err());
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
