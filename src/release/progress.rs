//! Download progress: a bar per artifact plus a total on a terminal, plain lines otherwise.

use std::io::IsTerminal as _;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProgressMode {
    /// Bars when stderr is a terminal, plain lines otherwise.
    #[default]
    Auto,
    /// Plain lines on stderr.
    Plain,
    /// Nothing (library callers, tests).
    Quiet,
}

pub struct Progress {
    mode: ProgressMode,
    multi: Option<MultiProgress>,
    total: Option<ProgressBar>,
}

impl Progress {
    pub fn new(mode: ProgressMode, artifacts: usize) -> Progress {
        let mode = match mode {
            ProgressMode::Auto if std::io::stderr().is_terminal() => ProgressMode::Auto,
            ProgressMode::Auto => ProgressMode::Plain,
            m => m,
        };
        if mode != ProgressMode::Auto {
            return Progress {
                mode,
                multi: None,
                total: None,
            };
        }
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let total = multi.add(ProgressBar::new(0));
        total.set_style(
            ProgressStyle::with_template(
                "{prefix:>32.bold} [{bar:30.green}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        total.set_prefix(format!("total ({artifacts} artifacts)"));
        total.enable_steady_tick(Duration::from_millis(200));
        Progress {
            mode,
            multi: Some(multi),
            total: Some(total),
        }
    }

    /// A line above the bars (or on stderr).
    pub fn note(&self, line: &str) {
        match (&self.multi, self.mode) {
            (Some(m), _) => {
                let _ = m.println(line);
            }
            (None, ProgressMode::Plain) => eprintln!("{line}"),
            _ => {}
        }
    }

    pub fn artifact(&self, label: &str) -> ArtifactProgress {
        let bar = self.multi.as_ref().map(|m| {
            let b = m.insert_before(
                self.total.as_ref().expect("total with multi"),
                ProgressBar::new(0),
            );
            b.set_style(
                ProgressStyle::with_template(
                    "{prefix:>32} [{bar:30.cyan}] {bytes}/{total_bytes} {msg}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            b.set_prefix(shorten(label, 32));
            b
        });
        ArtifactProgress {
            bar,
            total: self.total.clone(),
            counted: 0,
            sized: false,
        }
    }

    pub fn finish(&self) {
        if let Some(t) = &self.total {
            t.finish();
        }
    }
}

fn shorten(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let tail: String = s
            .chars()
            .rev()
            .take(n - 1)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!("…{tail}")
    }
}

pub struct ArtifactProgress {
    bar: Option<ProgressBar>,
    total: Option<ProgressBar>,
    /// Bytes this artifact has added to the total bar (taken back when a download starts over).
    counted: u64,
    /// Whether its length was added to the total bar.
    sized: bool,
}

impl ArtifactProgress {
    /// The artifact's size, once known, and how much of it is already there.
    pub fn start(&mut self, len: Option<u64>, position: u64) {
        if let Some(b) = &self.bar {
            b.set_length(len.unwrap_or(0));
            b.set_position(position);
        }
        if let Some(t) = &self.total {
            t.set_position(t.position().saturating_sub(self.counted) + position);
            if let Some(l) = len
                && !self.sized
            {
                t.inc_length(l);
            }
        }
        self.counted = position;
        self.sized |= len.is_some();
    }

    pub fn inc(&mut self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
        }
        if let Some(t) = &self.total {
            t.inc(n);
        }
        self.counted += n;
    }

    pub fn message(&self, msg: &str) {
        if let Some(b) = &self.bar {
            b.set_message(msg.to_string());
        }
    }

    pub fn done(&self, msg: &str) {
        if let Some(b) = &self.bar {
            b.finish_with_message(msg.to_string());
        }
    }
}
