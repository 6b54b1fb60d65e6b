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

/// The log socket, if there is one.
pub struct Syslog {
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
        let socket = UnixDatagram::unbound()
            .and_then(|s| s.connect(path).map(|()| s))
            .ok();
        Syslog { socket }
    }

    /// Whether lines reach a system log.
    pub fn connected(&self) -> bool {
        self.socket.is_some()
    }

    /// Sends one line.
    pub fn send(&self, severity: Severity, line: &str) {
        if let Some(s) = &self.socket {
            let msg = format!(
                "<{}>remapctl[{}]: {}",
                DAEMON | severity as u8,
                std::process::id(),
                line
            );
            // A log daemon that went away loses the line; stderr has it.
            let _ = s.send(msg.as_bytes());
        }
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
        let log = Syslog::open_at(&path);
        assert!(log.connected());
        log.send(Severity::Warning, "mo: 2 new remapped blocks");
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
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(!Syslog::open_at(&path).connected());
    }
}
