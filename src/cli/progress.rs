//! Docker-like progress of pulls and pushes: one line per layer event when the output is not a
//! terminal (`<12hex>: Pulling fs layer`, `Download complete`, `Pull complete`, …), progress
//! bars (indicatif) when it is, nothing with `-q`.

use std::io::IsTerminal;
use std::sync::Mutex;

use cairn_driver::Digest;
use cairn_driver::registry::{BlobEvent, Progress};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Which operation the words are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Pull,
    Push,
}

enum Mode {
    Quiet,
    Lines,
    Bars {
        multi: MultiProgress,
        bars: Mutex<Vec<(Digest, ProgressBar)>>,
    },
}

/// Prints progress as the library reports it.
pub struct Reporter {
    op: Op,
    mode: Mode,
}

fn short(d: &Digest) -> String {
    d.hex()[..12].to_string()
}

impl Reporter {
    /// Lines or bars depending on whether stdout is a terminal; nothing when `quiet`.
    pub fn new(op: Op, quiet: bool) -> Reporter {
        let mode = if quiet {
            Mode::Quiet
        } else if std::io::stdout().is_terminal() {
            Mode::Bars {
                multi: MultiProgress::with_draw_target(ProgressDrawTarget::stdout()),
                bars: Mutex::new(Vec::new()),
            }
        } else {
            Mode::Lines
        };
        Reporter { op, mode }
    }

    /// Prints a whole line (above the bars, if any).
    pub fn line(&self, text: &str) {
        match &self.mode {
            Mode::Quiet => {}
            Mode::Lines => println!("{text}"),
            Mode::Bars { multi, bars } => {
                if bars.lock().unwrap_or_else(|p| p.into_inner()).is_empty() {
                    println!("{text}");
                } else {
                    let _ = multi.println(text);
                }
            }
        }
    }

    fn words(&self, event: BlobEvent) -> Option<String> {
        let pull = self.op == Op::Pull;
        Some(match event {
            BlobEvent::Queued if pull => "Pulling fs layer".into(),
            BlobEvent::Queued => "Preparing".into(),
            BlobEvent::Exists if pull => "Already exists".into(),
            BlobEvent::Exists => "Layer already exists".into(),
            BlobEvent::Mounted => "Mounted from another repository".into(),
            BlobEvent::Retrying { attempt, offset } => {
                format!("Retrying (attempt {attempt}, resuming at byte {offset})")
            }
            BlobEvent::Downloaded => "Download complete".into(),
            BlobEvent::Done if pull => "Pull complete".into(),
            BlobEvent::Done => "Pushed".into(),
            BlobEvent::Progress { .. } => return None,
        })
    }

    fn finish(&self, digest: &Digest, text: &str) {
        match &self.mode {
            Mode::Quiet => {}
            Mode::Lines => println!("{}: {text}", short(digest)),
            Mode::Bars { .. } => self.bar(digest, |b| b.finish_with_message(text.to_string())),
        }
    }

    fn bar(&self, digest: &Digest, f: impl FnOnce(&ProgressBar)) {
        let Mode::Bars { multi, bars } = &self.mode else {
            return;
        };
        let mut bars = bars.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, b)) = bars.iter().find(|(d, _)| d == digest) {
            return f(b);
        }
        let bar = {
            let style =
                ProgressStyle::with_template("{prefix}: {msg} {wide_bar} {bytes}/{total_bytes}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> ");
            let b = multi.add(ProgressBar::new(0).with_style(style));
            b.set_prefix(short(digest));
            b
        };
        f(&bar);
        bars.push((*digest, bar));
    }

    /// Ends the bars: each is replaced by its last line (`<12hex>: Pull complete`), so what
    /// follows is printed below them.
    pub fn done(&self) {
        let Mode::Bars { multi, bars } = &self.mode else {
            return;
        };
        let bars = std::mem::take(&mut *bars.lock().unwrap_or_else(|p| p.into_inner()));
        let _ = multi.clear();
        for (d, b) in bars {
            println!("{}: {}", short(&d), b.message());
        }
    }
}

impl Progress for Reporter {
    fn mounted(&self, digest: &Digest, from: &str) {
        self.finish(digest, &format!("Mounted from {from}"));
    }

    fn blob(&self, digest: &Digest, event: BlobEvent) {
        match &self.mode {
            Mode::Quiet => {}
            Mode::Lines => {
                if let Some(w) = self.words(event) {
                    println!("{}: {w}", short(digest));
                }
            }
            Mode::Bars { .. } => match event {
                BlobEvent::Progress { done, total } => self.bar(digest, |b| {
                    b.set_length(total);
                    b.set_position(done);
                    b.set_message(if self.op == Op::Pull {
                        "Downloading"
                    } else {
                        "Pushing"
                    });
                }),
                BlobEvent::Exists | BlobEvent::Done | BlobEvent::Mounted => {
                    let w = self.words(event).unwrap_or_default();
                    self.bar(digest, |b| b.finish_with_message(w));
                }
                other => {
                    let w = self.words(other).unwrap_or_default();
                    self.bar(digest, |b| b.set_message(w));
                }
            },
        }
    }
}
