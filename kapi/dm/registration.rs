// SPDX-License-Identifier: GPL-2.0

//! The registration of a target type with device-mapper core.

use super::{bindings as b, callbacks, Target};
use core::marker::PhantomData;
use kernel::{error::to_result, prelude::*, types::Opaque};

/// The registration of a target type with device-mapper core.
///
/// # Invariants
///
/// `target_type` is registered with `dm_register_target` for the whole life
/// of the registration and unregistered when it is dropped.
#[pin_data(PinnedDrop)]
pub(crate) struct Registration<T: Target> {
    #[pin]
    target_type: Opaque<b::target_type>,
    _target: PhantomData<T>,
}

// SAFETY: after registration only device-mapper core touches `target_type`,
// under its own locking; the registration itself holds no other state.
unsafe impl<T: Target> Send for Registration<T> {}
// SAFETY: see `Send`: `&Registration` gives access to nothing.
unsafe impl<T: Target> Sync for Registration<T> {}

impl<T: Target> Registration<T> {
    /// Registers target type `T`, owned by `module`.
    pub(crate) fn new(module: &'static ThisModule) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            target_type <- Opaque::try_ffi_init(move |slot: *mut b::target_type| {
                let tt = b::target_type {
                    features: T::FEATURES,
                    name: T::NAME.as_char_ptr(),
                    module: module.as_ptr(),
                    version: T::VERSION,
                    ctr: Some(callbacks::ctr::<T>),
                    dtr: Some(callbacks::dtr::<T>),
                    map: Some(callbacks::map::<T>),
                    end_io: if T::HAS_END_IO { Some(callbacks::end_io::<T>) } else { None },
                    status: if T::HAS_STATUS { Some(callbacks::status::<T>) } else { None },
                    message: if T::HAS_MESSAGE { Some(callbacks::message::<T>) } else { None },
                    iterate_devices: if T::HAS_ITERATE_DEVICES {
                        Some(callbacks::iterate_devices::<T>)
                    } else {
                        None
                    },
                    io_hints: if T::HAS_IO_HINTS { Some(callbacks::io_hints::<T>) } else { None },
                    presuspend: if T::HAS_PRESUSPEND {
                        Some(callbacks::presuspend::<T>)
                    } else {
                        None
                    },
                    presuspend_undo: if T::HAS_PRESUSPEND_UNDO {
                        Some(callbacks::presuspend_undo::<T>)
                    } else {
                        None
                    },
                    postsuspend: if T::HAS_POSTSUSPEND {
                        Some(callbacks::postsuspend::<T>)
                    } else {
                        None
                    },
                    preresume: if T::HAS_PRERESUME { Some(callbacks::preresume::<T>) } else { None },
                    resume: if T::HAS_RESUME { Some(callbacks::resume::<T>) } else { None },
                    ..Default::default()
                };
                // SAFETY: `slot` is valid for writes and pinned: it is the
                // place the registration lives in until it is dropped.
                unsafe { slot.write(tt) };
                // SAFETY: `slot` holds a fully initialised target type whose
                // strings are `'static`; it stays pinned until `drop`
                // unregisters it.
                to_result(unsafe { b::dm_register_target(slot) })
            }),
            _target: PhantomData,
        })
    }
}

#[pinned_drop]
impl<T: Target> PinnedDrop for Registration<T> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: by the type invariant the target type is registered. The
        // module cannot be unloaded while a table uses it, so no target of
        // this type is left.
        unsafe { b::dm_unregister_target(self.target_type.get()) };
    }
}
