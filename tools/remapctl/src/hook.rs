// SPDX-License-Identifier: GPL-2.0

//! `monitor --exec CMD`: a command run for each line the monitor says, with
//! the change in its environment, as smartd runs its `-M exec` program and
//! ZFS's zed its zedlets. The command runs through `/bin/sh -c`, with
//! stdin from /dev/null; the monitor does not wait for it (a hung command
//! does not stop the monitoring) but reaps it on its next round.

use crate::figures::Figures;
use std::process::{Child, Command, Stdio};

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
        self.reap();
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

    /// Collects the runs that have ended.
    pub fn reap(&mut self) {
        self.running
            .retain_mut(|c| matches!(c.try_wait(), Ok(None)));
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
        for _ in 0..100 {
            hook.reap();
            if hook.running.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let got = std::fs::read_to_string(&out).unwrap();
        assert_eq!(got, "mo|warning|2 new remapped blocks\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
