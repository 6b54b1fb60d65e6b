// SPDX-License-Identifier: GPL-2.0

//! The command line: every command, option, exit status and example. It is
//! the one source of `--help`, of the man pages (`man.rs`, clap_mangen)
//! and of the shell completions (clap_complete).

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// The top-level help's end: examples and exit status, as cryptsetup(8)
/// and thin_check(8) give theirs.
const AFTER_HELP: &str = "\
Examples:
  remapctl format /dev/sdb             labels, data area from 1 MiB, 1% spares at the end
  remapctl open /dev/sdb home          /dev/mapper/home
  mkfs.ext4 /dev/mapper/home
  remapctl status                      health of every remap device (--json for scripts)
  remapctl scrub start home            read every block in the background
  remapctl check /dev/sdb              all five metadata copies, while closed
  echo 'home UUID=<uuid> -' >>/etc/remaptab    opened at every boot

Exit status (each command's page says which it uses):
  0  done; healthy
  1  degraded (status), damaged but repairable (check)
  2  usage error; for probe, no remap label
  3  failing (status), refused or beyond repair (format, open, check, repair)
  4  the command could not be carried out (I/O error, device missing)

See remapctl-<command>(8), remaptab(5), remapctl-generator(8), dm-remap(4).";

/// Set up, open, inspect, check and repair dm-remap devices.
///
/// remapctl formats a disk for the dm-remap device-mapper target (which
/// relocates failing blocks to spare blocks without the filesystem seeing
/// a write error), opens it as /dev/mapper/<name> from nothing but the
/// disk, opens the devices of /etc/remaptab at boot, shows their health,
/// runs and watches scrubs, monitors them, and checks, dumps, restores and
/// repairs their metadata while they are closed, as integritysetup and
/// thin-provisioning-tools do for their targets.
#[derive(Parser)]
#[command(name = "remapctl", version, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Command,
}

/// A dump's form.
#[derive(Clone, Copy, ValueEnum)]
pub enum DumpFormat {
    /// One item a line.
    Text,
    /// One JSON object.
    Json,
}

/// The commands.
#[derive(Subcommand)]
pub enum Command {
    /// Lay out data and spare areas on a device and write blank metadata
    /// with a new UUID.
    ///
    /// Writes the remap labels (first and last 4 KiB), lays out the data
    /// area (from 1 MiB, aligned like a partition) and the spare area
    /// (after it, up to the backup label), and writes blank metadata
    /// (generation 1) with a new UUID, which it prints. With --spare-dev all
    /// of <DEV> holds data and the spare area is on the other device; both
    /// get labels, and open, check, dump, repair and restore of <DEV> find
    /// the spare device by its label.
    ///
    /// Refuses, unless --force, a device on which blkid -p finds a
    /// filesystem, partition table or other signature; one that holds a
    /// remap label; one whose labels are damaged in both places or record
    /// areas the device cannot hold; one with a signature where the data
    /// area starts; and one whose labels are gone but whose spare area still
    /// holds remap metadata. With --force it wipes the first and last MiB
    /// first.
    ///
    /// Defaults: 4096-byte blocks (a filesystem block; the metadata then
    /// costs 1% of the spare area), a spare area of 1% of the device.
    #[command(after_help = "\
Exit status: 0 done, 3 refused, 4 error.

Examples:
  remapctl format /dev/sdb
  remapctl format --spare-size 2G --block-size 4096 /dev/sdb
  remapctl format --spare-dev /dev/nvme0n1p3 /dev/sdb")]
    Format(crate::cmd::format::Options),
    /// Create the device-mapper device of a formatted device.
    ///
    /// Reads the label, runs the same offline check as `check` (--no-check
    /// skips it), derives the table line and creates /dev/mapper/<NAME>
    /// with DM UUID REMAP-<uuid> (udev: /dev/disk/by-id/dm-uuid-REMAP-...).
    /// Refuses a device without a label, with metadata beyond repair, with
    /// another device's metadata or another geometry's, or that is open
    /// already.
    ///
    /// With --all, opens every device of the remaptab that is not open yet:
    /// a bad line is reported with its number and not opened, the others
    /// are.
    #[command(after_help = "\
Exit status: 0 opened, 3 refused, 4 error; with --all, the worst of the
lines without nofail (a bad line counts as refused, 3).

Examples:
  remapctl open /dev/sdb home
  remapctl open UUID=0f1e2d3c-4b5a-4978-8796-a5b4c3d2e1f0 home
  remapctl open --all")]
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
        /// Wait up to this many seconds for the spare device of a disk
        /// whose spare area is on another device, when it is not there
        /// yet (the boot units wait 90, as systemd waits for a device).
        #[arg(
            long,
            value_name = "SECONDS",
            default_value_t = 0,
            conflicts_with = "all"
        )]
        spare_timeout: u64,
    },
    /// Remove device-mapper devices that open made.
    #[command(after_help = "Exit status: 0 removed, 4 a device could not be removed.")]
    Close {
        /// Their names.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Health of live remap devices (all when none is named).
    ///
    /// Per device: health (ok; degraded: pending blocks, blocks whose data
    /// is lost, a metadata copy missing the last commit, a commit error,
    /// spares over 90% used or below the spare_low_water mark; failing:
    /// spares exhausted, data device down, metadata failed), state,
    /// remapped, pending and lost blocks, spares used and left, metadata
    /// generation and copies intact, the last error, read and write errors,
    /// and a scrub's progress.
    ///
    /// --json prints one object, {"version": 1, "devices": [...]}: a
    /// reader checks the version, and fields are only added within one.
    #[command(after_help = "\
Exit status: 0 all ok, 1 some degraded, 3 some failing, 4 a named device missing.

Examples:
  remapctl status
  remapctl status --json home | jq '.devices[0].pending_blocks'")]
    Status {
        /// Device names.
        names: Vec<String>,
        /// One JSON object for scripts: {"version": 1, "devices": [...]}.
        #[arg(long)]
        json: bool,
    },
    /// Start, stop or watch a scrub (a patrol read of every block).
    ///
    /// A scrub reads every data block that is not remapped, every spare in
    /// use and every block of every metadata copy, in the kernel, at a
    /// limited rate: an unreadable data block becomes pending, an
    /// unreadable spare is retired, a damaged metadata copy is rewritten.
    /// It yields to foreground I/O; a suspend pauses it, a reload stops it.
    #[command(subcommand)]
    Scrub(ScrubCommand),
    /// Wait for device-mapper events and report each change of remap
    /// devices (all when none is named).
    ///
    /// Says one line per change: new remapped blocks, new pending blocks,
    /// more blocks with their data lost, free spares below the low-water
    /// mark, spares exhausted, a metadata copy missing commits,
    /// metadata_failed, data_device_down, a scrub's end with what it found.
    /// Under systemd the lines go to the journal through stderr, with
    /// their priority; elsewhere to stderr and to the system log
    /// (/dev/log, facility daemon). It waits for events with
    /// DM_DEV_ARM_POLL and poll(2) on /dev/mapper/control, as dmeventd does,
    /// and reads the figures every --interval seconds as well (a scrub's
    /// progress raises no event).
    ///
    /// --textfile keeps DIR/dm_remap.prom for node_exporter's textfile
    /// collector, written whole and renamed, on every event and every
    /// --interval: the series dm_remap_info, dm_remap_remapped_blocks (as
    /// SMART 5), dm_remap_pending_blocks (as SMART 197),
    /// dm_remap_lost_blocks, dm_remap_spare_blocks,
    /// dm_remap_spare_blocks_free, dm_remap_spare_used_ratio,
    /// dm_remap_spare_low_water, dm_remap_block_size_bytes,
    /// dm_remap_metadata_copies_intact, dm_remap_metadata_copies,
    /// dm_remap_metadata_failed, the counters dm_remap_read_errors_total,
    /// dm_remap_write_errors_total, dm_remap_transient_errors_total and
    /// dm_remap_auto_remaps_total, and dm_remap_scrub_running,
    /// dm_remap_scrub_progress_ratio, dm_remap_scrub_units,
    /// dm_remap_scrub_units_done and dm_remap_scrub_bad_blocks{kind=data|
    /// spare|metadata}; each labelled device="dm-N" (node_exporter's
    /// diskstats label) and name="<name>".
    #[command(after_help = "\
Exit status: with --once, as status; otherwise 4 when it cannot go on.

Examples:
  remapctl monitor --textfile /var/lib/prometheus/node-exporter
  remapctl monitor --exec 'logger -t disk \"$REMAP_NAME: $REMAP_MESSAGE\"'
  remapctl monitor --once home")]
    Monitor {
        /// Device names.
        names: Vec<String>,
        /// Report the figures once and exit (by the worst health, as
        /// status does).
        #[arg(long)]
        once: bool,
        /// Keep a Prometheus node_exporter textfile (dm_remap.prom) in
        /// this directory (Debian's prometheus-node-exporter reads
        /// /var/lib/prometheus/node-exporter).
        #[arg(long, value_name = "DIR")]
        textfile: Option<PathBuf>,
        /// Read the figures at least every this many seconds, without an
        /// event: the textfile is never staler than this.
        #[arg(long, value_name = "SECONDS", default_value_t = 60,
              value_parser = clap::value_parser!(u64).range(1..=86400))]
        interval: u64,
        /// Run this command (through /bin/sh -c) for each line said, with
        /// REMAP_NAME, REMAP_DEVICE, REMAP_UUID, REMAP_SEVERITY,
        /// REMAP_MESSAGE, REMAP_HEALTH, REMAP_STATE, REMAP_REMAPPED_BLOCKS,
        /// REMAP_PENDING_BLOCKS and REMAP_SPARE_BLOCKS_FREE in its
        /// environment (as smartd's -M exec).
        #[arg(long, value_name = "CMD")]
        exec: Option<String>,
    },
    /// Remap or mark pending the blocks a `badblocks -o` list names.
    ///
    /// Each remap block that a listed block touches is remapped (its data
    /// copied) when it still reads, and read through the device when it
    /// does not, which makes it pending as any failed read does; blocks
    /// already remapped or pending are left. Blank lines and # comments are
    /// skipped. Refuses a list with a word that is no number, or a block
    /// beyond the device.
    #[command(after_help = "\
Exit status: 0 done, 4 some block failed or a bad list.

Example:
  badblocks -b 4096 -o /tmp/bad /dev/sdb && remapctl import -b 4096 home /tmp/bad")]
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
    ///
    /// The table of the newest intact commit, as thin_dump prints a thin
    /// pool's: text or JSON, which restore reads back.
    #[command(after_help = "\
Exit status: 0 done, 3 the metadata cannot be loaded, 4 error.

Example:
  remapctl dump /dev/sdb >sdb.remap")]
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
    ///
    /// Writes the dump to all 5 copies, in the commit order, with a
    /// generation above any on disk, so the kernel loads it as it is (as
    /// thin_restore does). Checks it as the kernel's load does. A device
    /// with a label must be the dump's; one without is refused when blkid
    /// -p finds a signature at its start or in the spare area (unless
    /// --force), or when the dump's data and spare areas overlap (right
    /// only when they lie on two devices: --separate-devices).
    #[command(after_help = "\
Exit status: 0 done, 3 refused, 4 error.

Example:
  remapctl restore /dev/sdb sdb.remap")]
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
    ///
    /// Reads every copy with the kernel's own recovery code and prints
    /// every damaged, stale or unfinished block per copy, and a damaged
    /// label, as thin_check does. Refuses a device that is open (O_EXCL).
    /// --json prints one object: {"version": 1, "device", "verdict":
    /// clean|repairable|beyond_repair, "problem", "label", "uuid",
    /// "generation", "copies_intact", "findings": [{"copy", "block",
    /// "kind", "finding"}]}.
    #[command(after_help = "\
Exit status: 0 clean, 1 damaged but repairable, 3 beyond repair, 4 error.

Examples:
  remapctl check /dev/sdb
  remapctl check --json /dev/sdb | jq -r .verdict")]
    Check {
        /// The device.
        dev: PathBuf,
        /// Print nothing; the exit code tells.
        #[arg(short, long, conflicts_with = "json")]
        quiet: bool,
        /// One JSON object for scripts (see above).
        #[arg(long)]
        json: bool,
        /// As for dump.
        #[arg(long)]
        geometry: Option<String>,
    },
    /// Rewrite damaged copies from the newest intact version.
    ///
    /// Rewrites the copies that lack a block of the newest intact version,
    /// as the kernel's first commit after a load does, and a damaged label
    /// from the intact one. With --geometry (as dump prints it) and both
    /// labels lost, writes them again from that geometry and the metadata's
    /// UUID, but only where both label places are blank or hold a damaged
    /// label and the areas fit between them. Refuses an open device.
    #[command(after_help = "Exit status: 0 whole afterwards, 3 beyond repair, 4 error.")]
    Repair {
        /// The device.
        dev: PathBuf,
        /// As for dump.
        #[arg(long)]
        geometry: Option<String>,
    },
    /// Print the udev properties of a remap member.
    ///
    /// ID_FS_TYPE=dm_remap_member, ID_FS_USAGE=raid, ID_FS_VERSION,
    /// ID_FS_UUID, ID_FS_UUID_ENC and ID_REMAP_ROLE (whole, data or spare)
    /// of a device that carries a remap label. A formatted disk looks blank
    /// to libblkid; udev's rule 60-remapctl.rules imports this, as it
    /// imports blkid -o udev, so that lsblk -f, udisks and
    /// /dev/disk/by-uuid know it.
    #[command(after_help = "\
Exit status: 0 a remap member, 2 no remap label (nothing printed), 4 error.

udev rule:
  IMPORT{program}=\"/usr/sbin/remapctl probe $devnode\"")]
    Probe {
        /// The device.
        dev: PathBuf,
    },
    /// Print a shell's completion script for remapctl.
    #[command(after_help = "\
Examples:
  remapctl completions bash >/usr/share/bash-completion/completions/remapctl
  remapctl completions zsh >/usr/share/zsh/vendor-completions/_remapctl
  remapctl completions fish >/usr/share/fish/vendor_completions.d/remapctl.fish")]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write the man pages of remapctl and its commands (section 8) into a
    /// directory: they are made from this help, so the two cannot differ.
    #[command(hide = true)]
    Manpages {
        /// The directory.
        dir: PathBuf,
    },
    /// The systemd generator: units for the remaptab.
    ///
    /// Run as /usr/lib/systemd/system-generators/remapctl-generator (see
    /// remapctl-generator(8)): one remapctl-open@<name>.service per
    /// remaptab line. A bad line is reported (with its number and why) and
    /// opens nothing; the other lines get their units.
    #[command(after_help = "Exit status: 0, unless the units cannot be written (4).")]
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

/// `scrub start|stop|status`.
#[derive(Subcommand)]
pub enum ScrubCommand {
    /// Start a scrub of an open device.
    ///
    /// With --wait, stays until it ends, showing its progress on a
    /// terminal, then prints what it found (as btrfs scrub start -B).
    #[command(after_help = "\
Exit status: 0 started (with --wait: finished and found nothing), 1 with
--wait: it found unreadable or damaged blocks, 3 refused (one runs
already, a read-only table, no_auto_remap), 4 error.

Examples:
  remapctl scrub start home
  remapctl scrub start --rate 50 --wait home")]
    Start {
        /// The open device.
        name: String,
        /// The most it reads, in MiB/s (1 to 100000; the target's default
        /// is 16).
        #[arg(long, value_name = "MIB_PER_S",
              value_parser = clap::value_parser!(u32).range(1..=100000))]
        rate: Option<u32>,
        /// Stay until the scrub ends, with its progress on a terminal.
        #[arg(long)]
        wait: bool,
    },
    /// Stop the scrub of an open device.
    #[command(after_help = "Exit status: 0 stopped, 3 none was running, 4 error.")]
    Stop {
        /// The open device.
        name: String,
    },
    /// The scrub of open devices (all when none is named): state,
    /// progress, rate, what it found.
    #[command(after_help = "\
Exit status: 0, 1 the last scrub found unreadable or damaged blocks, 4 a
named device missing.

Example:
  remapctl scrub status --json home | jq '.devices[0].progress_ratio'")]
    Status {
        /// Device names.
        names: Vec<String>,
        /// One JSON object for scripts: {"version": 1, "devices": [...]}.
        #[arg(long)]
        json: bool,
    },
}
