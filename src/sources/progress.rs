//! Telling the operator what a long start is doing: on a terminal, a
//! progress bar per fetch and one for the compilation (`indicatif`);
//! otherwise (a service's log), a line when a step starts and a line every
//! few seconds while it lasts.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// How often a step that is not on a terminal says how far along it is.
const LOG_EVERY: Duration = Duration::from_secs(2);

/// Hands out one [`Step`] per piece of work.
#[derive(Clone)]
pub struct Progress {
    /// `None` when stderr is not a terminal: log lines instead.
    bars: Option<MultiProgress>,
}

#[derive(Clone, Copy)]
pub enum Unit {
    Bytes,
    Items,
}

/// One piece of work: a fetch (in bytes) or the compilation (in modules).
pub struct Step {
    what: String,
    unit: Unit,
    bar: Option<ProgressBar>,
    done: u64,
    length: Option<u64>,
    last_line: Instant,
}

impl Progress {
    pub fn new() -> Progress {
        Progress {
            bars: std::io::stderr().is_terminal().then(MultiProgress::new),
        }
    }

    /// Starts a step, saying so in the log when there is no terminal.
    pub fn step(&self, what: String, unit: Unit, length: Option<u64>) -> Step {
        let bar = self.bars.as_ref().map(|bars| {
            let template = match unit {
                Unit::Bytes => "{spinner} {msg} {bytes}/{total_bytes} {bytes_per_sec} {wide_bar}",
                Unit::Items => "{spinner} {msg} {pos}/{len} {wide_bar}",
            };
            let bar = ProgressBar::new(length.unwrap_or(0))
                .with_style(ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()))
                .with_message(what.clone());
            bar.enable_steady_tick(Duration::from_millis(200));
            bars.add(bar)
        });
        if bar.is_none() {
            tracing::info!("{what}…");
        }
        Step {
            what,
            unit,
            bar,
            done: 0,
            length,
            last_line: Instant::now(),
        }
    }
}

impl Default for Progress {
    fn default() -> Self {
        Progress::new()
    }
}

impl Step {
    pub fn set_length(&mut self, length: u64) {
        self.length = Some(length);
        if let Some(bar) = &self.bar {
            bar.set_length(length);
        }
    }

    pub fn advance(&mut self, amount: u64) {
        self.done += amount;
        match &self.bar {
            Some(bar) => bar.inc(amount),
            None if self.last_line.elapsed() >= LOG_EVERY => {
                self.last_line = Instant::now();
                tracing::info!("{}: {}", self.what, self.how_far());
            }
            None => {}
        }
    }

    fn how_far(&self) -> String {
        let amount = |n: u64| match self.unit {
            Unit::Bytes => format!("{:.1} MiB", n as f64 / (1 << 20) as f64),
            Unit::Items => n.to_string(),
        };
        match self.length {
            Some(length) => format!("{} of {}", amount(self.done), amount(length)),
            None => amount(self.done),
        }
    }
}

impl Drop for Step {
    /// The caller logs the outcome; the bar only has to go.
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
