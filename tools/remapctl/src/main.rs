// SPDX-License-Identifier: GPL-2.0

//! `remapctl`: set up, open at boot, inspect, check and repair dm-remap
//! devices, so that nobody has to type a table line.
//!
//! One crate, a module per command (`cmd/`) and per on-disk structure
//! (`label.rs`; the metadata format itself is the `dm-remap-ondisk`
//! crate, which the kernel module compiles too).

mod cmd;
mod crc;
mod device;
mod dmdev;
mod dump;
mod figures;
mod label;
mod meta;
mod remaptab;
mod status;
mod syslog;
mod textfile;

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit codes, as each command's "exit status" in README.md, "Using a failing disk: remapctl".
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

#[derive(Parser)]
#[command(
    name = "remapctl",
    version,
    about = "Set up, open, inspect, check and repair dm-remap devices"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Command,
}

/// A dump's form.
#[derive(Clone, Copy, ValueEnum)]
pub enum DumpFormat {
    /// One item a line.
    Text,
    /// One JSON object.
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Lay out data and spare areas on a device and write blank metadata
    /// with a new UUID.
    Format(cmd::format::Options),
    /// Create the device-mapper device of a formatted device.
    Open {
        /// The formatted device (a path or UUID=<uuid>).
        #[arg(required_unless_present = "all")]
        dev: Option<String>,
        /// The name of the device to create (/dev/mapper/<name>).
        #[arg(required_unless_present = "all")]
        name: Option<String>,
        /// Open every device of the remaptab that is not open yet.
        #[arg(long, conflicts_with_all = ["dev", "name"])]
        all: bool,
        /// The remaptab for --all.
        #[arg(long, default_value = "/etc/remaptab")]
        remaptab: PathBuf,
        /// Skip the offline metadata check.
        #[arg(long)]
        no_check: bool,
        /// A read-only table.
        #[arg(long)]
        readonly: bool,
    },
    /// Remove device-mapper devices that open made.
    Close {
        /// Their names.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Health of live remap devices (all when none is named).
    Status {
        /// Device names.
        names: Vec<String>,
        /// One JSON array for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Wait for device-mapper events and report each change of remap
    /// devices (all when none is named) on stderr and in the system log.
    Monitor {
        /// Device names.
        names: Vec<String>,
        /// Report the figures once and exit (by the worst health, as
        /// status does).
        #[arg(long)]
        once: bool,
        /// Keep a Prometheus node_exporter textfile (dm_remap.prom) in
        /// this directory.
        #[arg(long)]
        textfile: Option<PathBuf>,
    },
    /// Remap or mark pending the blocks a `badblocks -o` list names.
    Import {
        /// The open device.
        name: String,
        /// The list: one block number a line ("-" for stdin).
        file: PathBuf,
        /// The block size of the list, in bytes (badblocks -b; its
        /// default is 1024).
        #[arg(short = 'b', long, default_value_t = 1024)]
        block_size: u64,
    },
    /// Print the remap table of a device's metadata.
    Dump {
        /// The device.
        dev: PathBuf,
        /// The form.
        #[arg(long, value_enum, default_value_t = DumpFormat::Text)]
        format: DumpFormat,
        /// The areas of a device without a remap label:
        /// data_offset:data_len:spare_offset:spare_len:block_size.
        #[arg(long)]
        geometry: Option<String>,
    },
    /// Write metadata holding a dumped remap table.
    Restore {
        /// The device (without a remap label: the spare device of the
        /// dump's geometry).
        dev: PathBuf,
        /// The dump, text or JSON ("-" for stdin).
        file: PathBuf,
        /// Write the table even if the kernel would refuse it (a data
        /// block listed twice): for testing the kernel's checks.
        #[arg(long)]
        unchecked: bool,
        /// Write to a device without a remap label although it holds a
        /// filesystem or another signature (at its start or in the spare
        /// area).
        #[arg(long)]
        force: bool,
        /// The dump's data and spare areas lie on two devices, this one
        /// holding the spare area: their ranges may overlap as numbers.
        #[arg(long)]
        separate_devices: bool,
    },
    /// Read all five metadata copies and report every damaged or stale
    /// block.
    Check {
        /// The device.
        dev: PathBuf,
        /// Print nothing; the exit code tells.
        #[arg(short, long)]
        quiet: bool,
        /// As for dump.
        #[arg(long)]
        geometry: Option<String>,
    },
    /// Rewrite damaged copies from the newest intact version.
    Repair {
        /// The device.
        dev: PathBuf,
        /// As for dump.
        #[arg(long)]
        geometry: Option<String>,
    },
    /// The systemd generator: units for the remaptab.
    GenerateUnits {
        /// The generator's output directory (then the early and late
        /// ones, which are not used).
        #[arg(required = true, num_args = 1..=3)]
        dirs: Vec<PathBuf>,
        /// The remaptab.
        #[arg(long, default_value = "/etc/remaptab")]
        remaptab: PathBuf,
        /// remapctl's path in the units.
        #[arg(long, default_value = "/usr/sbin/remapctl")]
        remapctl: String,
    },
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
        } => match (all, dev, name) {
            (true, _, _) => cmd::open::all(&remaptab),
            (false, Some(dev), Some(name)) => cmd::open::one(&dev, &name, no_check, readonly),
            _ => unreachable!("clap requires both without --all"),
        },
        Command::Close { names } => cmd::close::run(&names),
        Command::Status { names, json } => cmd::status::run(&names, json),
        Command::Monitor {
            names,
            once,
            textfile,
        } => cmd::monitor::run(&names, once, textfile.as_deref()),
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
            geometry,
        } => cmd::check::run(&dev, quiet, geometry.as_deref()),
        Command::Repair { dev, geometry } => cmd::repair::run(&dev, geometry.as_deref()),
        Command::GenerateUnits {
            dirs,
            remaptab,
            remapctl,
        } => cmd::generate::run(&dirs[0], &remaptab, &remapctl),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("remapctl: {e:#}");
            ExitCode::from(exit::ERROR)
        }
    }
}
