// SPDX-License-Identifier: GPL-2.0

//! `monitor --exec CMD`: a command run for each line the monitor says, with
//! the change in its environment, as smartd runs its `-M exec` program and
//! ZFS's zed its zedlets. The command runs through `/bin/sh -c`, with
//! stdin from /dev/null; the monitor does not wait for it (a hung command
//! does not stop the monitoring) but reaps it on each round (at least every
//! `--interval`), says when one failed, runs at most [`MAX_RUNNING`] at
//! once, and with `--once` waits a while for them before it exits.

use crate::figures::Figures;
use std::process::{Child, Command, Stdio};

/// The most runs of the command at once: beyond, a change's run is skipped
/// and said so (a command that hangs does not pile up processes).
pub const MAX_RUNNING: usize = 16;

/// The command, and the runs not reaped yet.
pub struct Hook {
    command: String,
    running: Vec<Child>,
}

/// What one line is about.
pub struct Event<'a> {
    /// The device-mapper name.
    pub name: &'a str,
    /// `warning` for a change to act on, `info` otherwise.
    pub severity: &'a str,
    /// The line the monitor says.
    pub message: &'a str,
    /// The device's figures, when they could be read.
    pub figures: Option<&'a Figures>,
}

impl Hook {
    /// A hook running `command`.
    pub fn new(command: String) -> Self {
        Self {
            command,
            running: Vec::new(),
        }
    }

    /// The environment of a run: `REMAP_NAME`, `REMAP_SEVERITY`,
    /// `REMAP_MESSAGE`, and with the figures `REMAP_DEVICE` (dm-N),
    /// `REMAP_UUID`, `REMAP_HEALTH`, `REMAP_STATE`, `REMAP_REMAPPED_BLOCKS`,
    /// `REMAP_PENDING_BLOCKS`, `REMAP_SPARE_BLOCKS_FREE`.
    pub fn environment(e: &Event<'_>) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("REMAP_NAME", e.name.to_owned()),
            ("REMAP_SEVERITY", e.severity.to_owned()),
            ("REMAP_MESSAGE", e.message.to_owned()),
        ];
        if let Some(f) = e.figures {
            let h = &f.health;
            env.extend([
                ("REMAP_DEVICE", h.kernel_name.clone()),
                ("REMAP_UUID", f.text("metadata_uuid").to_owned()),
                ("REMAP_HEALTH", h.health.to_owned()),
                ("REMAP_STATE", h.state.clone()),
                ("REMAP_REMAPPED_BLOCKS", h.remapped_blocks.to_string()),
                ("REMAP_PENDING_BLOCKS", h.pending_blocks.to_string()),
                ("REMAP_SPARE_BLOCKS_FREE", f.spares_free().to_string()),
            ]);
        }
        env
    }

    /// Starts the command for `e`; a command that cannot be started is an
    /// error in words, returned for the monitor to say.
    pub fn run(&mut self, e: &Event<'_>) -> Result<(), String> {
        if self.running.len() >= MAX_RUNNING {
            return Err(format!(
                "{MAX_RUNNING} runs of the --exec command are still running: not run for {}: {}",
                e.name, e.message
            ));
        }
        let child = Command::new("/bin/sh")
            .arg("-c")
            .arg(&self.command)
            .envs(Self::environment(e))
            .stdin(Stdio::null())
            .spawn()
            .map_err(|err| format!("cannot run --exec command {:?}: {err}", self.command))?;
        self.running.push(child);
        Ok(())
    }

    /// Collects the runs that have ended; returns a line for each that
    /// failed.
    pub fn reap(&mut self) -> Vec<String> {
        let mut failed = Vec::new();
        let command = &self.command;
        self.running.retain_mut(|c| match c.try_wait() {
            Ok(None) => true,
            Ok(Some(status)) => {
                if !status.success() {
                    failed.push(format!("the --exec command {command:?} failed: {status}"));
                }
                false
            }
            Err(_) => false,
        });
        failed
    }

    /// Waits up to `timeout` for the runs still going (before `--once`
    /// exits); returns a line for each that failed or is left running.
    pub fn finish(&mut self, timeout: std::time::Duration) -> Vec<String> {
        let deadline = std::time::Instant::now() + timeout;
        let mut said = self.reap();
        while !self.running.is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
            said.extend(self.reap());
        }
        if !self.running.is_empty() {
            said.push(format!(
                "{} runs of the --exec command {:?} still running: left to finish alone",
                self.running.len(),
                self.command
            ));
        }
        said
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_sees_the_change_in_its_environment() {
        let dir = std::env::temp_dir().join(format!("remapctl-hook-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("out");
        let mut hook = Hook::new(format!(
            "echo \"$REMAP_NAME|$REMAP_SEVERITY|$REMAP_MESSAGE\" >{}",
            out.display()
        ));
        let e = Event {
            name: "mo",
            severity: "warning",
            message: "2 new remapped blocks",
            figures: None,
        };
        hook.run(&e).unwrap();
        assert!(hook.finish(std::time::Duration::from_secs(5)).is_empty());
        let got = std::fs::read_to_string(&out).unwrap();
        assert_eq!(got, "mo|warning|2 new remapped blocks\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn failures_are_said_and_runs_are_capped() {
        let mut hook = Hook::new("exit 3".to_owned());
        let e = Event {
            name: "mo",
            severity: "warning",
            message: "x",
            figures: None,
        };
        hook.run(&e).unwrap();
        let said = hook.finish(std::time::Duration::from_secs(5));
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(said[0].contains("exit status: 3"), "{said:?}");
        let mut slow = Hook::new("sleep 5".to_owned());
        for _ in 0..MAX_RUNNING {
            slow.run(&e).unwrap();
        }
        assert!(slow.run(&e).unwrap_err().contains("still running"));
        for c in &mut slow.running {
            c.kill().expect("each `sleep 5` is still running");
        }
        // Killed, each is said to have failed, and none is left.
        assert_eq!(
            slow.finish(std::time::Duration::from_secs(5)).len(),
            MAX_RUNNING
        );
        assert!(slow.running.is_empty());
    }
}
