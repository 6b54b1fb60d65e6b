// SPDX-License-Identifier: GPL-2.0

//! Progress of a long command on a terminal: one line on stderr, rewritten
//! in place (as `e2fsck -C 0` and `pv` show theirs), at most a few times a
//! second; nothing when stderr is not a terminal (a script, a journal).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// The line of one long step.
pub struct Progress {
    label: String,
    /// Whether lines are shown: stderr is a terminal.
    shown: bool,
    last: Option<Instant>,
    /// A line was drawn and not yet ended.
    drawn: bool,
}

/// The least time between two lines.
const EVERY: Duration = Duration::from_millis(200);

impl Progress {
    /// The progress of `label`, shown when stderr is a terminal.
    pub fn new(label: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            shown: std::io::stderr().is_terminal(),
            last: None,
            drawn: false,
        }
    }

    /// The line for `done` of `total` `unit`.
    pub fn line(&self, done: u64, total: u64, unit: &str) -> String {
        let pct = crate::figures::percent(done, total);
        format!("{}: {done}/{total} {unit} ({pct:.1}%)", self.label)
    }

    /// Shows `done` of `total` `unit`, unless a line was shown less than
    /// 200 ms ago (the last one is always shown by [`Self::finish`]'s
    /// caller's final line).
    pub fn show(&mut self, done: u64, total: u64, unit: &str) {
        if !self.shown {
            return;
        }
        let now = Instant::now();
        if self.last.is_some_and(|t| now - t < EVERY) && done < total {
            return;
        }
        self.last = Some(now);
        let line = self.line(done, total, unit);
        self.draw(&format!("\r\x1b[K{line}"));
        self.drawn = self.shown;
    }

    /// Clears the line, so that a line printed next stands alone; the next
    /// [`Self::show`] draws it again.
    pub fn clear(&mut self) {
        if self.drawn {
            self.draw("\r\x1b[K");
            self.drawn = false;
            self.last = None;
        }
    }

    /// Writes `text` to the terminal; a terminal that no longer takes it
    /// (closed, hung up) gets no more progress, and the command goes on.
    fn draw(&mut self, text: &str) {
        let mut err = std::io::stderr().lock();
        if write!(err, "{text}").and_then(|()| err.flush()).is_err() {
            self.shown = false;
        }
    }

    /// Ends the line, so that what follows starts on its own.
    pub fn finish(&mut self) {
        if self.drawn {
            eprintln!();
            self.drawn = false;
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_says_done_total_and_percent() {
        let p = Progress::new("check /dev/sdb");
        assert_eq!(
            p.line(512, 2048, "MiB"),
            "check /dev/sdb: 512/2048 MiB (25.0%)"
        );
        assert_eq!(p.line(0, 0, "MiB"), "check /dev/sdb: 0/0 MiB (100.0%)");
    }
}
