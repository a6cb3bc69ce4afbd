//! Download progress: an indicatif bar with speed and ETA on a terminal, a quiet line every few
//! seconds when stderr is piped (logs, CI).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::inspect::human_bytes;

/// Seconds between two lines when stderr is not a terminal.
const LINE_EVERY: Duration = Duration::from_secs(5);

pub struct Progress {
    label: String,
    bar: Option<ProgressBar>,
    start: Instant,
    start_pos: u64,
    last_line: Option<Instant>,
    pos: u64,
    total: Option<u64>,
}

impl Progress {
    /// Progress of fetching `label`; a bar when stderr is a terminal.
    pub fn new(label: &str) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(0);
            let style = ProgressStyle::with_template(
                "{msg} {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_message(label.to_string());
            bar
        });
        Progress {
            label: label.to_string(),
            bar,
            start: Instant::now(),
            start_pos: 0,
            last_line: None,
            pos: 0,
            total: None,
        }
    }

    /// The download holds `pos` bytes of `total`.
    pub fn set(&mut self, pos: u64, total: Option<u64>) {
        if self.last_line.is_none() || pos < self.pos {
            // First call, or a restart: speed counts from here.
            self.start = Instant::now();
            self.start_pos = pos;
        }
        self.pos = pos;
        self.total = total;
        match &self.bar {
            Some(bar) => {
                if let Some(t) = total {
                    bar.set_length(t);
                }
                bar.set_position(pos);
                self.last_line.get_or_insert_with(Instant::now);
            }
            None => {
                let due = self.last_line.is_none_or(|t| t.elapsed() >= LINE_EVERY);
                if due {
                    if self.last_line.is_some() {
                        eprintln!("{}", self.line());
                    }
                    self.last_line = Some(Instant::now());
                }
            }
        }
    }

    fn line(&self) -> String {
        let secs = self.start.elapsed().as_secs_f64().max(1e-3);
        let rate = (self.pos.saturating_sub(self.start_pos)) as f64 / secs;
        let of = match self.total {
            Some(t) if t > 0 => format!(
                "{:.0}% ({} of {})",
                self.pos as f64 * 100.0 / t as f64,
                human_bytes(self.pos),
                human_bytes(t)
            ),
            _ => human_bytes(self.pos),
        };
        format!("{}: {of}, {}/s", self.label, human_bytes(rate as u64))
    }

    /// A message above the bar (or a line).
    pub fn note(&mut self, msg: &str) {
        match &self.bar {
            Some(bar) => bar.println(format!("{}: {msg}", self.label)),
            None => eprintln!("{}: {msg}", self.label),
        }
    }

    /// Done: clear the bar, print one closing line.
    pub fn finish(&mut self, msg: &str) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        eprintln!("{}: {msg}", self.label);
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.abandon();
        }
    }
}
