// SPDX-License-Identifier: GPL-2.0

//! `remapctl`: set up, open at boot, inspect, check and repair dm-remap
//! devices, so that nobody has to type a table line.
//!
//! One crate, a module per command (`cmd/`) and per on-disk structure
//! (`label.rs`; the metadata format itself is the `dm-remap-ondisk`
//! crate, which the kernel module compiles too).

mod cli;
mod cmd;
mod crc;
mod device;
mod dmdev;
mod dump;
mod erc;
mod figures;
mod hook;
mod journal;
mod label;
mod man;
mod meta;
mod progress;
mod remaptab;
mod status;
mod syslog;
mod textfile;

use clap::{CommandFactory, Parser};
pub use cli::{Cli, DumpFormat};
use cli::{Command, ScrubCommand};
use std::process::ExitCode;

/// Exit codes, as each command's help and man page give them (`cli.rs`).
pub mod exit {
    /// Done; the device or metadata is healthy.
    pub const OK: u8 = 0;
    /// Degraded (status) or damaged but repairable (check).
    pub const DEGRADED: u8 = 1;
    /// Bad arguments (clap's own code too).
    pub const USAGE: u8 = 2;
    /// Failing (status) or beyond repair (check, repair, open).
    pub const FAILED: u8 = 3;
    /// The command could not be carried out (I/O error, device missing).
    pub const ERROR: u8 = 4;
}

fn run(cli: Cli) -> anyhow::Result<u8> {
    match cli.cmd {
        Command::Format(o) => cmd::format::run(&o),
        Command::Open {
            dev,
            name,
            all,
            remaptab,
            no_check,
            readonly,
            spare_timeout,
        } => match (all, dev, name) {
            (true, _, _) => cmd::open::all(&remaptab),
            (false, Some(dev), Some(name)) => cmd::open::one(
                &dev,
                &name,
                no_check,
                readonly,
                std::time::Duration::from_secs(spare_timeout),
            ),
            _ => unreachable!("clap requires both without --all"),
        },
        Command::Close { names } => cmd::close::run(&names),
        Command::Status { names, json } => cmd::status::run(&names, json),
        Command::Scrub(ScrubCommand::Start { name, rate, wait }) => {
            cmd::scrub::start(&name, rate, wait)
        }
        Command::Scrub(ScrubCommand::Stop { name }) => cmd::scrub::stop(&name),
        Command::Scrub(ScrubCommand::Status { names, json }) => cmd::scrub::status(&names, json),
        Command::Monitor {
            names,
            once,
            textfile,
            interval,
            exec,
        } => cmd::monitor::run(
            &names,
            cmd::monitor::Options {
                once,
                textfile: textfile.as_deref(),
                interval: std::time::Duration::from_secs(interval),
                exec,
            },
        ),
        Command::Import {
            name,
            file,
            block_size,
        } => cmd::import::run(&name, &file, block_size),
        Command::Dump {
            dev,
            format,
            geometry,
        } => cmd::dump::run(&dev, format, geometry.as_deref()),
        Command::Restore {
            dev,
            file,
            unchecked,
            force,
            separate_devices,
        } => cmd::restore::run(&dev, &file, unchecked, force, separate_devices),
        Command::Check {
            dev,
            quiet,
            json,
            geometry,
        } => cmd::check::run(&dev, quiet, json, geometry.as_deref()),
        Command::Repair { dev, geometry } => cmd::repair::run(&dev, geometry.as_deref()),
        Command::Probe { dev } => cmd::probe::run(&dev),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "remapctl",
                &mut std::io::stdout(),
            );
            Ok(exit::OK)
        }
        Command::Manpages { dir } => man::write_pages(Cli::command(), &dir),
        Command::GenerateUnits {
            dirs,
            remaptab,
            remapctl,
        } => cmd::generate::run(&dirs[0], &remaptab, &remapctl),
    }
}

fn main() -> ExitCode {
    // Output into a pipe that closed (`remapctl status | head -1`) ends the
    // process quietly, as it ends C tools, instead of a panic on EPIPE.
    // SAFETY: at the start of main, before any thread or handler exists;
    // SIG_DFL installs no handler of ours.
    let reset = unsafe {
        nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigDfl,
        )
    };
    // signal(2) fails only for a signal that cannot be caught: not SIGPIPE.
    if let Err(e) = reset {
        eprintln!("remapctl: cannot reset SIGPIPE: {e}");
    }
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("remapctl: {e:#}");
            ExitCode::from(exit::ERROR)
        }
    }
}
