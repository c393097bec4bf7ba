//! `kimage fetch`'s engine: download every locked artifact into the cache, in parallel, hashing while
//! writing, retrying transient failures with backoff, resuming cut transfers with HTTP Range, and
//! admitting a file into the cache only after its digest matched.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use reqwest::StatusCode;

use super::cache::{BlobState, Cache};
use super::catalog::CATALOG;
use super::digest::{Algorithm, BUF_SIZE, Hasher};
use super::lock::{Lock, LockedArtifact};
use super::net::{Budget, Net, NetError, RetryPolicy, file_path, size_detail, via_mirror};
use super::progress::{ArtifactProgress, Progress, ProgressMode};

#[derive(Debug, Clone, Default)]
pub struct FetchOptions {
    /// Base URL (http(s):// or file://) that keeps the upstream paths; downloads come from there.
    pub mirror: Option<String>,
    /// Parallel downloads (at least 1).
    pub jobs: usize,
    pub retry: RetryPolicy,
    pub progress: ProgressMode,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Already in the cache and re-verified.
    Cached,
    /// Downloaded (`resumed`: at least one transfer continued with a Range request).
    Downloaded { resumed: bool, tries: u32 },
    /// The cache entry was corrupt; it was quarantined and downloaded again.
    Replaced { resumed: bool, tries: u32 },
}

#[derive(Debug, Clone)]
pub struct Fetched {
    /// `name version (arch)`.
    pub artifact: String,
    pub url: String,
    pub path: PathBuf,
    pub bytes: u64,
    pub outcome: Outcome,
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(
        "{artifact}: digest mismatch for {url}: expected {algorithm} {expected}, got {actual}; the file was moved to {} and is not used",
        quarantined.display()
    )]
    Mismatch {
        artifact: String,
        url: String,
        algorithm: Algorithm,
        expected: String,
        actual: String,
        quarantined: PathBuf,
    },
    #[error("{artifact}: downloading {url}: {detail} (gave up after {tries} {})", if *tries == 1 { "try" } else { "tries" })]
    Download {
        artifact: String,
        url: String,
        detail: String,
        tries: u32,
    },
    /// The body is longer than the artifact may be: reading stopped there, and nothing was kept.
    #[error(
        "{artifact}: {url} sends more than the {limit} bytes a {kind} artifact may be ({detail}); stopped reading, nothing was kept in the cache"
    )]
    TooLarge {
        artifact: String,
        url: String,
        kind: String,
        limit: u64,
        detail: String,
    },
    #[error("{artifact}: {action} {}: {source}", path.display())]
    Io {
        artifact: String,
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

/// The most an artifact of a kind the catalog does not know may be (a lock written by another kimage).
pub const MAX_ARTIFACT_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// The most `a` may be: its kind's size cap from the catalog, else [`MAX_ARTIFACT_BYTES`].
pub fn max_bytes(a: &LockedArtifact) -> u64 {
    CATALOG
        .kind(&a.kind)
        .map(|k| k.max_bytes())
        .unwrap_or(MAX_ARTIFACT_BYTES)
}

/// Every failure of a fetch run (the others still completed).
#[derive(Debug, thiserror::Error)]
#[error("fetching release artifacts failed for {} of {total}:\n  {}", errors.len(), errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n  "))]
pub struct FetchFailed {
    pub errors: Vec<FetchError>,
    pub total: usize,
}

/// Downloads every artifact the lock names that the cache lacks; re-verifies those it has.
pub fn fetch_lock(
    lock: &Lock,
    cache: &Cache,
    opts: &FetchOptions,
) -> Result<Vec<Fetched>, FetchFailed> {
    // Two lock entries with one digest are one download (and one cache file).
    let mut seen = BTreeSet::new();
    let work: Vec<&LockedArtifact> = lock
        .artifacts
        .iter()
        .filter(|a| seen.insert((a.algorithm, a.digest.clone())))
        .collect();
    let net = match Net::new(opts.retry) {
        Ok(n) => n,
        Err(e) => {
            let errors = vec![FetchError::Download {
                artifact: "(all)".into(),
                url: String::new(),
                detail: e.to_string(),
                tries: 0,
            }];
            return Err(FetchFailed {
                errors,
                total: work.len(),
            });
        }
    };
    let progress = Progress::new(opts.progress, work.len());
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<Fetched, FetchError>>>> =
        Mutex::new((0..work.len()).map(|_| None).collect());
    thread::scope(|s| {
        for _ in 0..opts.jobs.clamp(1, 64).min(work.len().max(1)) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(a) = work.get(i) else { break };
                    let r = Job {
                        net: &net,
                        cache,
                        a,
                        opts,
                        progress: &progress,
                    }
                    .run();
                    results.lock().expect("not poisoned")[i] = Some(r);
                }
            });
        }
    });
    progress.finish();
    let mut done = Vec::new();
    let mut errors = Vec::new();
    for r in results
        .into_inner()
        .expect("not poisoned")
        .into_iter()
        .flatten()
    {
        match r {
            Ok(f) => done.push(f),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(done)
    } else {
        Err(FetchFailed {
            errors,
            total: work.len(),
        })
    }
}

struct Job<'a> {
    net: &'a Net,
    cache: &'a Cache,
    a: &'a LockedArtifact,
    opts: &'a FetchOptions,
    progress: &'a Progress,
}

/// A download in progress: the partial file and the digest of what it holds so far.
struct Partial<'a> {
    file: File,
    path: &'a Path,
    hasher: Hasher,
    /// Bytes written (and hashed) so far.
    offset: u64,
    /// Whether a server honoured a Range request for it.
    resumed: bool,
}

/// Why one transfer attempt stopped.
enum Stop {
    Net(NetError),
    Io(&'static str, PathBuf, io::Error),
    /// More than the size cap: `received` bytes, or the size the server announced.
    TooLarge {
        received: u64,
        announced: Option<u64>,
    },
}

impl Job<'_> {
    fn label(&self) -> String {
        self.a.label()
    }

    fn io_err(&self, action: &'static str, path: &Path, source: io::Error) -> FetchError {
        FetchError::Io {
            artifact: self.label(),
            action,
            path: path.to_path_buf(),
            source,
        }
    }

    fn too_large(&self, url: &str, received: u64, announced: Option<u64>) -> FetchError {
        FetchError::TooLarge {
            artifact: self.label(),
            url: url.to_string(),
            kind: self.a.kind.clone(),
            limit: max_bytes(self.a),
            detail: size_detail(received, announced),
        }
    }

    fn run(&self) -> Result<Fetched, FetchError> {
        let a = self.a;
        let url = via_mirror(&a.url, self.opts.mirror.as_deref());
        let blob = self.cache.blob(a.algorithm, &a.digest);
        let mut replaced = false;
        match self
            .cache
            .check_blob(a.algorithm, &a.digest)
            .map_err(|e| self.io_err("verifying", &blob, e))?
        {
            BlobState::Valid { bytes } => {
                self.progress.note(&format!(
                    "{}: in the cache, {} verified ({bytes} bytes)",
                    self.label(),
                    a.algorithm
                ));
                return Ok(Fetched {
                    artifact: self.label(),
                    url,
                    path: blob,
                    bytes,
                    outcome: Outcome::Cached,
                });
            }
            BlobState::Corrupt { actual } => {
                let q = self
                    .cache
                    .quarantine(&blob, a.algorithm, &a.digest)
                    .map_err(|e| self.io_err("quarantining", &blob, e))?;
                self.progress.note(&format!(
                    "{}: cache entry {} is corrupt (expected {} {}, got {actual}); moved to {}, downloading again",
                    self.label(),
                    blob.display(),
                    a.algorithm,
                    a.digest,
                    q.display()
                ));
                replaced = true;
            }
            BlobState::Missing => {}
        }
        let partial = self.cache.partial(a.algorithm, &a.digest);
        let dir = partial.parent().expect("partial has a parent");
        fs::create_dir_all(dir).map_err(|e| self.io_err("creating", dir, e))?;
        let mut bar = self.progress.artifact(&self.label());
        self.progress
            .note(&format!("{}: downloading {url}", self.label()));
        let (actual, bytes, resumed, tries) = match file_path(&url) {
            Ok(Some(src)) => {
                let (d, n) = self.copy_local(&src, &partial, &mut bar, &url)?;
                (d, n, false, 1)
            }
            Ok(None) => self.download(&url, &partial, &mut bar)?,
            Err(e) => {
                return Err(FetchError::Download {
                    artifact: self.label(),
                    url,
                    detail: e.to_string(),
                    tries: 0,
                });
            }
        };
        if actual != a.digest {
            bar.done("digest mismatch");
            let quarantined = self
                .cache
                .quarantine(&partial, a.algorithm, &a.digest)
                .map_err(|e| self.io_err("quarantining", &partial, e))?;
            return Err(FetchError::Mismatch {
                artifact: self.label(),
                url,
                algorithm: a.algorithm,
                expected: a.digest.clone(),
                actual,
                quarantined,
            });
        }
        let path = self
            .cache
            .commit(&partial, a.algorithm, &a.digest)
            .map_err(|e| self.io_err("storing", &partial, e))?;
        bar.done("verified");
        self.progress.note(&format!(
            "{}: {bytes} bytes, {} verified",
            self.label(),
            a.algorithm
        ));
        let outcome = if replaced {
            Outcome::Replaced { resumed, tries }
        } else {
            Outcome::Downloaded { resumed, tries }
        };
        Ok(Fetched {
            artifact: self.label(),
            url,
            path,
            bytes,
            outcome,
        })
    }

    /// A file:// mirror: copy while hashing.
    fn copy_local(
        &self,
        src: &Path,
        partial: &Path,
        bar: &mut ArtifactProgress,
        url: &str,
    ) -> Result<(String, u64), FetchError> {
        let mut input = File::open(src).map_err(|e| FetchError::Download {
            artifact: self.label(),
            url: url.to_string(),
            detail: format!("reading {}: {e}", src.display()),
            tries: 1,
        })?;
        let len = input.metadata().ok().map(|m| m.len());
        let cap = max_bytes(self.a);
        if let Some(n) = len.filter(|n| *n > cap) {
            return Err(self.too_large(url, 0, Some(n)));
        }
        bar.start(len, 0);
        let mut out = File::create(partial).map_err(|e| self.io_err("creating", partial, e))?;
        let mut h = self.a.algorithm.hasher();
        let mut buf = vec![0u8; BUF_SIZE];
        let mut n_total = 0u64;
        loop {
            let n = input
                .read(&mut buf)
                .map_err(|e| self.io_err("reading", src, e))?;
            if n == 0 {
                break;
            }
            if n_total + n as u64 > cap {
                drop(out);
                let _ = fs::remove_file(partial);
                return Err(self.too_large(url, n_total + n as u64, None));
            }
            out.write_all(&buf[..n])
                .map_err(|e| self.io_err("writing", partial, e))?;
            h.update(&buf[..n]);
            n_total += n as u64;
            bar.inc(n as u64);
        }
        Ok((h.finish(), n_total))
    }

    /// HTTP(S): returns (digest, bytes, resumed, tries). A partial file left by an earlier run is resumed;
    /// if that ends in a wrong digest, the download is done once more from scratch before giving up.
    fn download(
        &self,
        url: &str,
        partial: &Path,
        bar: &mut ArtifactProgress,
    ) -> Result<(String, u64, bool, u32), FetchError> {
        let budget = Budget::start(self.opts.retry.deadline_for(max_bytes(self.a)));
        let mut from_scratch = false;
        loop {
            let mut file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .open(partial)
                .map_err(|e| self.io_err("opening", partial, e))?;
            if from_scratch {
                file.set_len(0)
                    .map_err(|e| self.io_err("truncating", partial, e))?;
            }
            // Hash what an earlier run left, then continue after it.
            let mut hasher = self.a.algorithm.hasher();
            let offset = hash_prefix(&mut file, &mut hasher)
                .map_err(|e| self.io_err("reading", partial, e))?;
            let had_prefix = offset > 0;
            let mut p = Partial {
                file,
                path: partial,
                hasher,
                offset,
                resumed: false,
            };
            let mut tries = 0;
            loop {
                tries += 1;
                match self.transfer(url, &mut p, bar, &budget) {
                    Ok(()) => break,
                    Err(Stop::TooLarge {
                        received,
                        announced,
                    }) => {
                        drop(p);
                        let _ = fs::remove_file(partial);
                        return Err(self.too_large(url, received, announced));
                    }
                    Err(Stop::Io(action, path, source)) => {
                        return Err(FetchError::Io {
                            artifact: self.label(),
                            action,
                            path,
                            source,
                        });
                    }
                    Err(Stop::Net(e)) if e.transient() && tries < self.opts.retry.attempts => {
                        let Some(wait) = self.opts.retry.wait_within(tries, &budget) else {
                            // Out of time: what is on disk stays for the next run to resume.
                            return Err(FetchError::Download {
                                artifact: self.label(),
                                url: url.to_string(),
                                detail: budget.no_time_for_retry(e).detail(),
                                tries,
                            });
                        };
                        let at = if p.offset > 0 {
                            format!(", resuming at byte {}", p.offset)
                        } else {
                            String::new()
                        };
                        self.progress.note(&format!(
                            "{}: {e}; retrying in {:.1}s (try {} of {}){at}",
                            self.label(),
                            wait.as_secs_f64(),
                            tries + 1,
                            self.opts.retry.attempts,
                        ));
                        bar.message("retrying");
                        thread::sleep(wait);
                    }
                    Err(Stop::Net(e)) => {
                        // A permanent refusal (404, 403, …) leaves nothing worth resuming; a transfer
                        // out of time does (the next run, perhaps with a longer --download-timeout).
                        if !e.transient() && !matches!(e, NetError::Deadline { .. }) {
                            let _ = fs::remove_file(partial);
                        }
                        let detail = e.detail();
                        return Err(FetchError::Download {
                            artifact: self.label(),
                            url: url.to_string(),
                            detail,
                            tries,
                        });
                    }
                }
            }
            p.file
                .sync_all()
                .map_err(|e| self.io_err("syncing", partial, e))?;
            let actual = p.hasher.finish();
            if actual != self.a.digest && had_prefix && !from_scratch {
                self.progress.note(&format!(
                    "{}: the download resumed from an earlier run does not verify; downloading it again from the start",
                    self.label()
                ));
                from_scratch = true;
                continue;
            }
            return Ok((actual, p.offset, p.resumed, tries));
        }
    }

    /// Empties the partial file to start the download over.
    fn restart(&self, p: &mut Partial) -> Result<(), Stop> {
        let io_stop =
            |action: &'static str, e: io::Error| Stop::Io(action, p.path.to_path_buf(), e);
        p.file.set_len(0).map_err(|e| io_stop("truncating", e))?;
        p.file
            .seek(SeekFrom::Start(0))
            .map_err(|e| io_stop("seeking", e))?;
        p.hasher = self.a.algorithm.hasher();
        p.offset = 0;
        Ok(())
    }

    /// One GET (with Range when the partial file has bytes) streamed into the file and the hasher.
    fn transfer(
        &self,
        url: &str,
        p: &mut Partial,
        bar: &mut ArtifactProgress,
        budget: &Budget,
    ) -> Result<(), Stop> {
        let transient = |detail: String| {
            Stop::Net(NetError::Http {
                url: url.to_string(),
                detail,
                transient: true,
            })
        };
        let mut resp = self
            .net
            .get(url, (p.offset > 0).then_some(p.offset), budget)
            .map_err(Stop::Net)?;
        match resp.status() {
            StatusCode::PARTIAL_CONTENT => {
                let start = resp
                    .headers()
                    .get(reqwest::header::CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("bytes "))
                    .and_then(|v| v.split('-').next())
                    .and_then(|v| v.parse::<u64>().ok());
                if start != Some(p.offset) {
                    self.restart(p)?;
                    return Err(transient(
                        "the server answered the Range request with another range".into(),
                    ));
                }
                p.resumed = true;
            }
            StatusCode::RANGE_NOT_SATISFIABLE => {
                self.restart(p)?;
                return Err(transient("the server refused to resume (416)".into()));
            }
            // A full answer (the server ignored Range, or none was sent): start over.
            _ if p.offset > 0 => self.restart(p)?,
            _ => {}
        }
        let io_stop =
            |action: &'static str, e: io::Error| Stop::Io(action, p.path.to_path_buf(), e);
        p.file
            .seek(SeekFrom::Start(p.offset))
            .map_err(|e| io_stop("seeking", e))?;
        let total = resp.content_length().map(|l| l + p.offset);
        let cap = max_bytes(self.a);
        if let Some(t) = total.filter(|t| *t > cap) {
            return Err(Stop::TooLarge {
                received: p.offset,
                announced: Some(t),
            });
        }
        bar.start(total, p.offset);
        bar.message("");
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = self
                .net
                .read_body(url, &mut resp, &mut buf, p.offset, total, budget)
                .map_err(Stop::Net)?;
            if n == 0 {
                break;
            }
            // Never write past the cap: the partial file holds at most `cap` bytes.
            if p.offset + n as u64 > cap {
                return Err(Stop::TooLarge {
                    received: p.offset + n as u64,
                    announced: None,
                });
            }
            p.file
                .write_all(&buf[..n])
                .map_err(|e| io_stop("writing", e))?;
            p.hasher.update(&buf[..n]);
            p.offset += n as u64;
            bar.inc(n as u64);
        }
        match total {
            Some(t) if p.offset < t => Err(transient(format!(
                "connection closed after {} of {t} bytes",
                p.offset
            ))),
            _ => Ok(()),
        }
    }
}

/// Feeds a file's current content into `hasher`; returns its length and leaves the cursor at the end.
fn hash_prefix(file: &mut File, hasher: &mut Hasher) -> io::Result<u64> {
    file.seek(SeekFrom::Start(0))?;
    let mut buf = vec![0u8; BUF_SIZE];
    let mut n_total = 0;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(n_total);
        }
        hasher.update(&buf[..n]);
        n_total += n as u64;
    }
}
