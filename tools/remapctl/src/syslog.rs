// SPDX-License-Identifier: GPL-2.0

//! Lines to the system log: one datagram per line to `/dev/log`, where
//! journald or a syslog daemon listens (RFC 3164 framing, facility daemon),
//! as logger(1) sends them.

use std::os::unix::net::UnixDatagram;

/// How urgent a line is (syslog severities).
#[derive(Clone, Copy)]
pub enum Severity {
    Warning = 4,
    Info = 6,
}

/// The log socket, if there is one, and where it is (to connect again
/// after the log daemon restarted).
pub struct Syslog {
    path: std::path::PathBuf,
    socket: Option<UnixDatagram>,
}

/// Facility daemon (3), shifted as syslog's PRI wants it.
const DAEMON: u8 = 3 << 3;

impl Syslog {
    /// Connects to `/dev/log`; without one (an initramfs, a test guest),
    /// lines go to stderr only.
    pub fn open() -> Self {
        Self::open_at(std::path::Path::new("/dev/log"))
    }

    /// Connects to the log socket at `path`.
    pub fn open_at(path: &std::path::Path) -> Self {
        Syslog {
            path: path.to_owned(),
            socket: Self::connect(path),
        }
    }

    fn connect(path: &std::path::Path) -> Option<UnixDatagram> {
        UnixDatagram::unbound()
            .and_then(|s| s.connect(path).map(|()| s))
            .ok()
    }

    /// Whether lines reach a system log.
    pub fn connected(&self) -> bool {
        self.socket.is_some()
    }

    /// Sends one line; a log daemon that went away (restarted) is
    /// connected to again once. Returns whether the line reached it (the
    /// caller's stderr has it either way).
    pub fn send(&mut self, severity: Severity, line: &str) -> bool {
        if self.socket.is_none() {
            return false;
        }
        let msg = format!(
            "<{}>remapctl[{}]: {}",
            DAEMON | severity as u8,
            std::process::id(),
            line
        );
        let sent =
            |s: &Option<UnixDatagram>| s.as_ref().is_some_and(|s| s.send(msg.as_bytes()).is_ok());
        if sent(&self.socket) {
            return true;
        }
        self.socket = Self::connect(&self.path).or(self.socket.take());
        sent(&self.socket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_one_datagram_with_facility_and_tag() {
        let dir = std::env::temp_dir().join(format!("remapctl-syslog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log");
        let server = UnixDatagram::bind(&path).unwrap();
        let mut log = Syslog::open_at(&path);
        assert!(log.connected());
        assert!(log.send(Severity::Warning, "mo: 2 new remapped blocks"));
        let mut buf = [0u8; 256];
        let n = server.recv(&mut buf).unwrap();
        let got = std::str::from_utf8(&buf[..n]).unwrap();
        assert_eq!(
            got,
            format!(
                "<28>remapctl[{}]: mo: 2 new remapped blocks",
                std::process::id()
            )
        );
        // The daemon restarts (a new socket at the same path): the next
        // line reaches it.
        drop(server);
        std::fs::remove_file(&path).unwrap();
        let server = UnixDatagram::bind(&path).unwrap();
        assert!(log.send(Severity::Info, "after the restart"));
        let n = server.recv(&mut buf).unwrap();
        assert!(std::str::from_utf8(&buf[..n])
            .unwrap()
            .ends_with("after the restart"));
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(!Syslog::open_at(&path).connected());
    }
}
