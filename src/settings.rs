//! What a run takes from its surroundings, read once at the command line's edge (ripgrep's
//! `HiArgs` from `LowArgs`): the environment and the clock are read here and nowhere else, and every
//! stage gets the resolved values.

use std::ffi::OsString;
use std::path::PathBuf;

use time::OffsetDateTime;

/// Names the download cache directory.
pub const CACHE_ENV: &str = "KIMAGE_CACHE";

/// The environment variables kimage reads, as the process had them.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    pub kimage_cache: Option<OsString>,
    pub xdg_cache_home: Option<OsString>,
    pub home: Option<OsString>,
    pub source_date_epoch: Option<OsString>,
}

impl Environment {
    /// The process's environment (the only place kimage reads it).
    pub fn from_process() -> Environment {
        Environment {
            kimage_cache: std::env::var_os(CACHE_ENV),
            xdg_cache_home: std::env::var_os("XDG_CACHE_HOME"),
            home: std::env::var_os("HOME"),
            source_date_epoch: std::env::var_os("SOURCE_DATE_EPOCH"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error(
        "SOURCE_DATE_EPOCH={value:?} is not a number of seconds since 1970; set it to one (e.g. `date +%s`) or unset it"
    )]
    SourceDateEpoch { value: String },
}

/// The resolved settings every stage is handed.
#[derive(Debug, Clone)]
pub struct Settings {
    /// When this run happens (certificate validity, token expiry).
    pub now: OffsetDateTime,
    /// `SOURCE_DATE_EPOCH` (reproducible-builds convention): the modification time of every layer
    /// entry; without it the PKI state's creation time is used.
    pub source_date_epoch: Option<u64>,
    /// The download cache: `$KIMAGE_CACHE`, else `$XDG_CACHE_HOME/kimage` (absolute only, as the XDG
    /// spec says), else `~/.cache/kimage`; `None` when none of them is set.
    pub cache_dir: Option<PathBuf>,
}

impl Settings {
    pub fn resolve(env: &Environment, now: OffsetDateTime) -> Result<Settings, SettingsError> {
        let set = |v: &Option<OsString>| v.as_ref().filter(|v| !v.is_empty()).map(PathBuf::from);
        let cache_dir = set(&env.kimage_cache)
            .or_else(|| {
                set(&env.xdg_cache_home)
                    .filter(|p| p.is_absolute())
                    .map(|p| p.join("kimage"))
            })
            .or_else(|| set(&env.home).map(|h| h.join(".cache").join("kimage")));
        let source_date_epoch =
            match &env.source_date_epoch {
                None => None,
                Some(v) => {
                    let s = v.to_string_lossy();
                    if s.trim().is_empty() {
                        None
                    } else {
                        Some(s.trim().parse::<u64>().map_err(|_| {
                            SettingsError::SourceDateEpoch {
                                value: s.into_owned(),
                            }
                        })?)
                    }
                }
            };
        Ok(Settings {
            now,
            source_date_epoch,
            cache_dir,
        })
    }

    /// The settings of the running process.
    pub fn from_process() -> Result<Settings, SettingsError> {
        Settings::resolve(&Environment::from_process(), OffsetDateTime::now_utc())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Environment {
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| OsString::from(v))
        };
        Environment {
            kimage_cache: get("KIMAGE_CACHE"),
            xdg_cache_home: get("XDG_CACHE_HOME"),
            home: get("HOME"),
            source_date_epoch: get("SOURCE_DATE_EPOCH"),
        }
    }

    #[test]
    fn the_cache_directory_follows_kimage_cache_then_xdg_then_home() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let dir = |pairs| Settings::resolve(&env(pairs), now).unwrap().cache_dir;
        assert_eq!(
            dir(&[("KIMAGE_CACHE", "/c"), ("HOME", "/h")]),
            Some("/c".into())
        );
        assert_eq!(
            dir(&[("XDG_CACHE_HOME", "/x"), ("HOME", "/h")]),
            Some("/x/kimage".into())
        );
        // A relative XDG_CACHE_HOME is ignored, as the spec says.
        assert_eq!(
            dir(&[("XDG_CACHE_HOME", "x"), ("HOME", "/h")]),
            Some("/h/.cache/kimage".into())
        );
        assert_eq!(dir(&[("KIMAGE_CACHE", "")]), None);
    }

    #[test]
    fn source_date_epoch_is_a_number_or_an_error_naming_it() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let epoch = |v| Settings::resolve(&env(&[("SOURCE_DATE_EPOCH", v)]), now);
        assert_eq!(
            epoch("1234567890").unwrap().source_date_epoch,
            Some(1_234_567_890)
        );
        assert_eq!(epoch(" ").unwrap().source_date_epoch, None);
        let e = epoch("yesterday").unwrap_err().to_string();
        assert!(e.contains("SOURCE_DATE_EPOCH=\"yesterday\""), "{e}");
    }
}
