// SPDX-License-Identifier: GPL-2.0

//! The remap table out and in, as text or JSON (`dump`, `restore`).
//!
//! Text, one item a line (`#` starts a comment):
//!
//! ```text
//! uuid 7f1c…
//! generation 12
//! geometry <data_offset> <data_len> <spare_offset> <spare_len> <block_size>
//! remap <data block> <spare block> [lost]
//! retired <spare block>
//! pending <data block> [lost]
//! ```

use crate::meta::{Remap, Table};
use anyhow::{bail, Context, Result};
use dm_remap_ondisk::{Identity, UuidText, UUID_BYTES};
use serde::{Deserialize, Serialize};

/// A dump: the identity, UUID and generation, and the table.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
pub struct Dump {
    /// The metadata UUID.
    pub uuid: String,
    /// The generation of the dumped commit.
    pub generation: u64,
    /// The areas, in sectors, and the block size in bytes.
    pub geometry: Geometry,
    /// The remaps.
    pub remaps: Vec<RemapEntry>,
    /// Retired spare blocks.
    pub retired: Vec<u32>,
    /// Pending data blocks.
    pub pending: Vec<u64>,
    /// Pending data blocks whose data is lost (their spare failed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending_lost: Vec<u64>,
}

/// The identity, as a dump writes it.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
pub struct Geometry {
    /// First sector of the data area.
    pub data_offset: u64,
    /// Sectors of the data area.
    pub data_len: u64,
    /// First sector of the spare area.
    pub spare_offset: u64,
    /// Sectors of the spare area.
    pub spare_len: u64,
    /// The remap block size in bytes.
    pub block_size: u32,
}

/// One remap, as a dump writes it.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
pub struct RemapEntry {
    /// The data block.
    pub block: u64,
    /// The spare block.
    pub spare: u32,
    /// The data was unreadable when it was remapped.
    #[serde(default)]
    pub lost: bool,
}

impl From<Identity> for Geometry {
    fn from(i: Identity) -> Self {
        Geometry {
            data_offset: i.data_offset,
            data_len: i.data_len,
            spare_offset: i.spare_offset,
            spare_len: i.spare_len,
            block_size: i.block_size,
        }
    }
}

impl From<Geometry> for Identity {
    fn from(g: Geometry) -> Self {
        Identity {
            data_offset: g.data_offset,
            data_len: g.data_len,
            spare_offset: g.spare_offset,
            spare_len: g.spare_len,
            block_size: g.block_size,
        }
    }
}

/// Parses a UUID written the usual way.
pub fn parse_uuid(s: &str) -> Result<[u8; UUID_BYTES]> {
    let u = uuid::Uuid::parse_str(s).with_context(|| format!("bad UUID {s:?}"))?;
    Ok(*u.as_bytes())
}

impl Dump {
    /// The dump of a table.
    pub fn new(uuid: &[u8; UUID_BYTES], generation: u64, id: Identity, t: &Table) -> Self {
        Dump {
            uuid: UuidText(uuid).to_string(),
            generation,
            geometry: id.into(),
            remaps: t
                .remaps
                .iter()
                .map(|r| RemapEntry {
                    block: r.block,
                    spare: r.spare,
                    lost: r.lost,
                })
                .collect(),
            retired: t.retired.clone(),
            pending: t.pending.clone(),
            pending_lost: t.pending_lost.clone(),
        }
    }

    /// The table it holds.
    pub fn table(&self) -> Table {
        Table {
            remaps: self
                .remaps
                .iter()
                .map(|r| Remap {
                    block: r.block,
                    spare: r.spare,
                    lost: r.lost,
                })
                .collect(),
            retired: self.retired.clone(),
            pending: self.pending.clone(),
            pending_lost: self.pending_lost.clone(),
        }
    }

    fn check_generation(&self) -> Result<()> {
        if self.generation >= dm_remap_ondisk::MAX_GENERATION {
            bail!(
                "generation {} is beyond any a writer reaches",
                self.generation
            );
        }
        Ok(())
    }

    /// The text form.
    pub fn to_text(&self) -> String {
        let g = &self.geometry;
        let mut lines = vec![
            format!("# remapctl dump: {} remaps", self.remaps.len()),
            format!("uuid {}", self.uuid),
            format!("generation {}", self.generation),
            format!(
                "geometry {} {} {} {} {}",
                g.data_offset, g.data_len, g.spare_offset, g.spare_len, g.block_size
            ),
        ];
        for r in &self.remaps {
            let lost = if r.lost { " lost" } else { "" };
            lines.push(format!("remap {} {}{lost}", r.block, r.spare));
        }
        lines.extend(self.retired.iter().map(|x| format!("retired {x}")));
        lines.extend(self.pending.iter().map(|x| format!("pending {x}")));
        lines.extend(
            self.pending_lost
                .iter()
                .map(|x| format!("pending {x} lost")),
        );
        lines.join("\n") + "\n"
    }

    /// Parses a dump in either form (JSON when it starts with `{`).
    pub fn parse(text: &str) -> Result<Self> {
        if text.trim_start().starts_with('{') {
            let d: Dump = serde_json::from_str(text).context("bad JSON dump")?;
            parse_uuid(&d.uuid)?;
            d.check_generation()?;
            return Ok(d);
        }
        let (mut uuid, mut generation, mut geometry) = (None, None, None);
        let mut d = Dump {
            uuid: String::new(),
            generation: 0,
            geometry: Geometry {
                data_offset: 0,
                data_len: 0,
                spare_offset: 0,
                spare_len: 0,
                block_size: 0,
            },
            remaps: Vec::new(),
            retired: Vec::new(),
            pending: Vec::new(),
            pending_lost: Vec::new(),
        };
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let w: Vec<&str> = line.split_whitespace().collect();
            let num = |i: usize| -> Result<u64> {
                w.get(i)
                    .with_context(|| format!("line {}: too few words", n + 1))?
                    .parse::<u64>()
                    .with_context(|| format!("line {}: {:?} is not a number", n + 1, w[i]))
            };
            let spare = |i: usize| -> Result<u32> {
                u32::try_from(num(i)?).with_context(|| format!("line {}: spare too large", n + 1))
            };
            match (w[0], w.len()) {
                ("uuid", 2) => uuid = Some(w[1].to_owned()),
                ("generation", 2) => generation = Some(num(1)?),
                ("geometry", 6) => {
                    geometry = Some(Geometry {
                        data_offset: num(1)?,
                        data_len: num(2)?,
                        spare_offset: num(3)?,
                        spare_len: num(4)?,
                        block_size: u32::try_from(num(5)?)
                            .with_context(|| format!("line {}: block size too large", n + 1))?,
                    })
                }
                ("remap", 3) | ("remap", 4) => {
                    if w.len() == 4 && w[3] != "lost" {
                        bail!("line {}: expected \"lost\", found {:?}", n + 1, w[3]);
                    }
                    d.remaps.push(RemapEntry {
                        block: num(1)?,
                        spare: spare(2)?,
                        lost: w.len() == 4,
                    });
                }
                ("retired", 2) => d.retired.push(spare(1)?),
                ("pending", 2) => d.pending.push(num(1)?),
                ("pending", 3) if w[2] == "lost" => d.pending_lost.push(num(1)?),
                _ => bail!("line {}: cannot read {:?}", n + 1, line),
            }
        }
        d.uuid = uuid.context("the dump has no uuid line")?;
        parse_uuid(&d.uuid)?;
        d.generation = generation.context("the dump has no generation line")?;
        d.check_generation()?;
        d.geometry = geometry.context("the dump has no geometry line")?;
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_json_round_trip() {
        let d = Dump {
            uuid: "0f1e2d3c-4b5a-4978-8796-a5b4c3d2e1f0".into(),
            generation: 7,
            geometry: Geometry {
                data_offset: 2048,
                data_len: 8192,
                spare_offset: 10240,
                spare_len: 2048,
                block_size: 4096,
            },
            remaps: vec![
                RemapEntry {
                    block: 5,
                    spare: 9,
                    lost: false,
                },
                RemapEntry {
                    block: 6,
                    spare: 10,
                    lost: true,
                },
            ],
            retired: vec![11],
            pending: vec![100],
            pending_lost: vec![200],
        };
        assert_eq!(Dump::parse(&d.to_text()).unwrap(), d);
        assert_eq!(Dump::parse(&serde_json::to_string(&d).unwrap()).unwrap(), d);
    }

    #[test]
    fn bad_dumps_are_refused() {
        for bad in [
            "uuid x\ngeneration 1\ngeometry 0 8 8 8 512\n",
            "generation 1\ngeometry 0 8 8 8 512\n",
            "uuid 0f1e2d3c-4b5a-4978-8796-a5b4c3d2e1f0\ngeneration 1\ngeometry 0 8 8 8 512\nremap 1\n",
            "uuid 0f1e2d3c-4b5a-4978-8796-a5b4c3d2e1f0\ngeneration 1\ngeometry 0 8 8 8 512\nremap 1 2 gone\n",
            "uuid 0f1e2d3c-4b5a-4978-8796-a5b4c3d2e1f0\ngeneration -1\ngeometry 0 8 8 8 512\n",
            "{\"uuid\": 3}",
            "uuid 0f1e2d3c-4b5a-4978-8796-a5b4c3d2e1f0\ngeneration 18446744073709551615\ngeometry 0 8 8 8 512\n",
        ] {
            assert!(Dump::parse(bad).is_err(), "{bad:?}");
        }
    }
}
