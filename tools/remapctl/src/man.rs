// SPDX-License-Identifier: GPL-2.0

//! The man pages of remapctl's commands, made from the same `clap`
//! definitions as `--help` (`clap_mangen`), so that help and man page
//! cannot say different things: `remapctl(8)` and one
//! `remapctl-<command>(8)` per command, as git and cryptsetup split theirs.

use crate::exit;
use anyhow::{Context, Result};
use std::path::Path;

/// The section of an administrator's command.
const SECTION: &str = "8";

/// Renders one page of `cmd`, named `name`.
fn render(cmd: clap::Command, name: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd.name(name.to_owned()))
        .section(SECTION)
        .source(format!("remapctl {}", env!("CARGO_PKG_VERSION")))
        .manual("System Administration")
        .render(&mut out)?;
    Ok(out)
}

/// Writes `remapctl.8` and `remapctl-<command>.8` for every command that
/// is not hidden into `dir`.
pub fn write_pages(cmd: clap::Command, dir: &Path) -> Result<u8> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut cmd = cmd;
    cmd.build();
    let mut pages = vec![("remapctl".to_owned(), cmd.clone())];
    // `help` is clap's own, and says what `--help` says.
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        let name = format!("remapctl-{}", sub.get_name());
        pages.push((name.clone(), sub.clone().bin_name(name)));
    }
    for (name, page) in pages {
        let path = dir.join(format!("{name}.{SECTION}"));
        std::fs::write(&path, render(page, &name)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn every_command_has_a_page_with_its_options() {
        let dir = std::env::temp_dir().join(format!("remapctl-man-{}", std::process::id()));
        write_pages(crate::Cli::command(), &dir).unwrap();
        let top = std::fs::read_to_string(dir.join("remapctl.8")).unwrap();
        assert!(top.contains(".TH remapctl 8"), "{top}");
        assert!(top.contains("Exit status"));
        let check = std::fs::read_to_string(dir.join("remapctl-check.8")).unwrap();
        assert!(check.contains("\\-\\-json"), "{check}");
        assert!(dir.join("remapctl-completions.8").exists());
        assert!(!dir.join("remapctl-manpages.8").exists());
        assert!(!dir.join("remapctl-help.8").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
