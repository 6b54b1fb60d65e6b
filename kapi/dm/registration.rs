// SPDX-License-Identifier: GPL-2.0

//! The registration of a target type with device-mapper core.

use super::{bindings as b, callbacks, Target};
use core::{marker::PhantomData, ptr::NonNull};
use kernel::{error::to_result, prelude::*};

/// The registration of a target type with device-mapper core.
///
/// The `target_type` lives in an allocation of its own: a table of the
/// type points to it (`ti->type`) for as long as the table exists, which a
/// module that drops its registration early could outlive. Tables hold a
/// reference to the module, so on drop the type is freed only when none
/// is held, and otherwise left allocated (the module's code stays loaded
/// with it).
///
/// # Invariants
///
/// `target_type` is a registered `target_type` from `KBox::into_raw`,
/// unregistered when the registration is dropped.
pub(crate) struct Registration<T: Target> {
    target_type: NonNull<b::target_type>,
    module: &'static ThisModule,
    _target: PhantomData<T>,
}

// SAFETY: after registration only device-mapper core touches `target_type`,
// under its own locking; the registration itself holds no other state.
unsafe impl<T: Target> Send for Registration<T> {}
// SAFETY: see `Send`: `&Registration` gives access to nothing.
unsafe impl<T: Target> Sync for Registration<T> {}

impl<T: Target> Registration<T> {
    /// Registers target type `T`, owned by `module`.
    pub(crate) fn new(module: &'static ThisModule) -> Result<Self> {
        // The callback of an optional method, if the target has it.
        macro_rules! optional {
            ($has:ident, $callback:ident) => {
                if T::$has {
                    Some(callbacks::$callback::<T>)
                } else {
                    None
                }
            };
        }
        let tt = b::target_type {
            features: T::FEATURES,
            name: T::NAME.as_char_ptr(),
            module: module.as_ptr(),
            version: T::VERSION,
            ctr: Some(callbacks::ctr::<T>),
            dtr: Some(callbacks::dtr::<T>),
            map: Some(callbacks::map::<T>),
            end_io: optional!(HAS_END_IO, end_io),
            status: optional!(HAS_STATUS, status),
            message: optional!(HAS_MESSAGE, message),
            iterate_devices: optional!(HAS_ITERATE_DEVICES, iterate_devices),
            io_hints: optional!(HAS_IO_HINTS, io_hints),
            presuspend: optional!(HAS_PRESUSPEND, presuspend),
            presuspend_undo: optional!(HAS_PRESUSPEND_UNDO, presuspend_undo),
            postsuspend: optional!(HAS_POSTSUSPEND, postsuspend),
            preresume: optional!(HAS_PRERESUME, preresume),
            resume: optional!(HAS_RESUME, resume),
            ..Default::default()
        };
        let tt = KBox::into_raw(KBox::new(tt, GFP_KERNEL)?);
        // SAFETY: `tt` is a fully initialised target type whose strings are
        // `'static`; it stays allocated until `drop` says otherwise.
        if let Err(e) = to_result(unsafe { b::dm_register_target(tt) }) {
            // SAFETY: not registered: ours alone.
            drop(unsafe { KBox::from_raw(tt) });
            return Err(e);
        }
        // INVARIANT: registered above.
        Ok(Self {
            // SAFETY: from `KBox::into_raw`, not null.
            target_type: unsafe { NonNull::new_unchecked(tt) },
            module,
            _target: PhantomData,
        })
    }
}

impl<T: Target> Drop for Registration<T> {
    fn drop(&mut self) {
        let tt = self.target_type.as_ptr();
        // SAFETY: registered (type invariant); no new table can find the
        // type once this returns.
        unsafe { b::dm_unregister_target(tt) };
        // Every table of the type holds a reference to the module: with none
        // held (as when the module unloads), no table points to the type.
        // SAFETY: the module is alive: this code is part of it.
        if unsafe { kernel::bindings::module_refcount(self.module.as_ptr()) } <= 0 {
            // SAFETY: from `KBox::into_raw` (type invariant), unregistered,
            // and reached by no table.
            drop(unsafe { KBox::from_raw(tt) });
        } else {
            pr_warn!("a target type was unregistered while tables use it: left allocated\n");
        }
    }
}
