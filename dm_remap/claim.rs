// SPDX-License-Identifier: GPL-2.0

//! The claim of a spare area by one live target: two targets writing
//! metadata into one area would destroy it.

use kernel::prelude::*;

/// A spare area claimed by a live table.
struct Owner {
    id: u64,
    /// The mapped device of the table (see `Ctr::device_identity`).
    device: usize,
    /// The table (see `Ctr::table_identity`).
    table: usize,
    devt: u32,
    start: u64,
    end: u64,
}

/// Every claimed spare area, and the next claim's id.
pub(super) struct Owners {
    list: KVec<Owner>,
    next_id: u64,
}

crate::kapi::global::global_mutex! {
    /// Every claimed spare area.
    pub(super) static SPARE_OWNERS: Mutex<Owners> = Owners {
        list: KVec::new(),
        next_id: 0,
    };
}

/// One target's claim on its spare area, given up on drop. Two targets
/// writing metadata into one area would destroy it, whether they belong to
/// two devices or to one table; two tables of one device are a reload,
/// which takes over in `preresume`.
pub(super) struct SpareClaim {
    id: u64,
}

/// Why a spare area cannot be claimed.
pub(super) enum ClaimError {
    /// Another device's table holds it.
    OtherDevice,
    /// Another target of the same table holds it.
    SameTable,
    NoMemory,
}

impl SpareClaim {
    /// Claims sectors `start..start + len` of `devt` for a target of
    /// `table` in `device`; also says whether another table of the same
    /// device holds them (a reload).
    pub(super) fn new(
        device: usize,
        table: usize,
        devt: u32,
        start: u64,
        len: u64,
    ) -> Result<(Self, bool), ClaimError> {
        let end = start + len;
        let mut owners = SPARE_OWNERS.lock();
        let mut reloading = false;
        for o in owners.list.iter() {
            if o.devt == devt && o.start < end && start < o.end {
                if o.device != device {
                    return Err(ClaimError::OtherDevice);
                }
                if o.table == table {
                    return Err(ClaimError::SameTable);
                }
                reloading = true;
            }
        }
        let id = owners.next_id;
        owners.next_id += 1;
        owners
            .list
            .push(
                Owner {
                    id,
                    device,
                    table,
                    devt,
                    start,
                    end,
                },
                GFP_KERNEL,
            )
            .map_err(|_| ClaimError::NoMemory)?;
        Ok((Self { id }, reloading))
    }
}

impl Drop for SpareClaim {
    fn drop(&mut self) {
        let mut owners = SPARE_OWNERS.lock();
        owners.list.retain(|o| o.id != self.id);
        if owners.list.is_empty() {
            // Statics are not dropped on module unload: free the buffer
            // with the last claim (no table exists when the module goes).
            owners.list = KVec::new();
        }
    }
}
