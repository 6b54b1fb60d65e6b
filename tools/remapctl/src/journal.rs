// SPDX-License-Identifier: GPL-2.0

//! Where the monitor's lines go: under systemd, whose journal already
//! reads the service's stderr, only there, with the severity as a `<N>`
//! prefix (sd-daemon(3)); elsewhere to stderr and to the system log
//! (`/dev/log`). One line per change either way, never two copies of it in
//! the journal.

use crate::syslog::{Severity, Syslog};
use std::os::unix::fs::MetadataExt;

/// The monitor's log.
pub enum Log {
    /// stderr is connected to the journal (`$JOURNAL_STREAM`).
    Journal,
    /// stderr, and the system log when there is one.
    Stderr(Syslog),
}

/// Whether `journal_stream` (`$JOURNAL_STREAM`, "device:inode") names the
/// file stderr is: systemd sets it for a service whose stderr goes to the
/// journal, and a child whose stderr was redirected keeps the variable
/// but not the stream, which is why both are compared.
fn stderr_is(journal_stream: &str) -> bool {
    let Some((dev, ino)) = journal_stream.split_once(':') else {
        return false;
    };
    let Ok(meta) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    dev.parse() == Ok(meta.dev()) && ino.parse() == Ok(meta.ino())
}

impl Log {
    /// The log for this process.
    pub fn open() -> Self {
        match std::env::var("JOURNAL_STREAM") {
            Ok(s) if stderr_is(&s) => Log::Journal,
            _ => Log::Stderr(Syslog::open()),
        }
    }

    /// Whether a line reaches a system log, not only a terminal.
    pub fn persistent(&self) -> bool {
        match self {
            Log::Journal => true,
            Log::Stderr(s) => s.connected(),
        }
    }

    /// Says one line.
    pub fn say(&mut self, severity: Severity, line: &str) {
        match self {
            Log::Journal => eprintln!("<{}>{line}", severity as u8),
            Log::Stderr(log) => {
                eprintln!("remapctl monitor: {line}");
                // Without a log daemon the line is on stderr only.
                if !log.send(severity, line) && log.connected() {
                    eprintln!("remapctl monitor: the system log did not take that line");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_stream_of_stderr_counts_as_the_journal() {
        let meta = std::fs::metadata("/proc/self/fd/2").unwrap();
        assert!(stderr_is(&format!("{}:{}", meta.dev(), meta.ino())));
        assert!(!stderr_is(&format!("{}:{}", meta.dev(), meta.ino() + 1)));
        assert!(!stderr_is("nonsense"));
        assert!(!stderr_is(""));
    }
}
