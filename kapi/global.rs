// SPDX-License-Identifier: GPL-2.0

//! A mutex in a `static`, initialised on its first use.
//!
//! `kernel::sync::global_lock!` leaves the initialisation to an `unsafe`
//! call that must come before any use; [`GlobalMutex`] makes it itself, once,
//! whoever locks first, so a safe caller cannot use the lock uninitialised.
//!
//! # Examples
//!
//! ```ignore
//! kapi::global_mutex! {
//!     /// The claimed areas.
//!     static CLAIMS: Mutex<KVec<u64>> = KVec::new();
//! }
//!
//! fn claim(area: u64) -> Result {
//!     CLAIMS.lock().push(area, GFP_KERNEL)?;
//!     Ok(())
//! }
//! ```

use core::sync::atomic::{AtomicU8, Ordering};
use kernel::sync::lock::{GlobalGuard, GlobalLock, GlobalLockBackend};

const UNINIT: u8 = 0;
const INITIALISING: u8 = 1;
const READY: u8 = 2;

/// A [`GlobalLock`] initialised by its first [`GlobalMutex::lock`].
///
/// # Invariants
///
/// `lock` is initialised once `state` is `READY`, and only the caller that
/// moved `state` from `UNINIT` initialises it.
pub(crate) struct GlobalMutex<B: GlobalLockBackend> {
    lock: GlobalLock<B>,
    state: AtomicU8,
}

impl<B: GlobalLockBackend> GlobalMutex<B> {
    /// Wraps a lock made by [`GlobalLock::new`].
    ///
    /// # Safety
    ///
    /// `lock` must not have been initialised, and is used only through the
    /// result. [`global_mutex!`] is the safe way to make one.
    pub(crate) const unsafe fn new(lock: GlobalLock<B>) -> Self {
        Self {
            lock,
            state: AtomicU8::new(UNINIT),
        }
    }

    /// Locks the mutex, initialising it if this is its first use.
    pub(crate) fn lock(&'static self) -> GlobalGuard<B> {
        if self.state.load(Ordering::Acquire) != READY {
            self.init_once();
        }
        self.lock.lock()
    }

    #[cold]
    fn init_once(&'static self) {
        match self.state.compare_exchange(
            UNINIT,
            INITIALISING,
            Ordering::Acquire,
            Ordering::Acquire,
        ) {
            Ok(_) => {
                // SAFETY: only this caller moved `state` from `UNINIT`, so the
                // lock is initialised once, before anyone uses it (every
                // user waits for `READY` first).
                unsafe { self.lock.init() };
                self.state.store(READY, Ordering::Release);
            }
            // Another caller initialises it: a few stores, soon done.
            Err(_) => {
                while self.state.load(Ordering::Acquire) != READY {
                    core::hint::spin_loop();
                }
            }
        }
    }
}

/// Declares a `static` [`GlobalMutex`] holding `$value`.
macro_rules! global_mutex {
    {
        $(#[$meta:meta])* $vis:vis static $name:ident: Mutex<$valuety:ty> = $value:expr;
    } => {
        #[allow(non_camel_case_types, unreachable_pub)]
        $vis enum $name {}

        impl kernel::sync::lock::GlobalLockBackend for $name {
            const NAME: &'static kernel::str::CStr = kernel::c_str!(::core::stringify!($name));
            type Item = $valuety;
            type Backend = kernel::sync::lock::mutex::MutexBackend;

            fn get_lock_class() -> Pin<&'static kernel::sync::LockClassKey> {
                kernel::static_lock_class!()
            }
        }

        $(#[$meta])*
        $vis static $name: $crate::kapi::global::GlobalMutex<$name> = {
            let init: $valuety = $value;
            // SAFETY: the lock is new, and used only through the
            // `GlobalMutex`, which initialises it before its first use.
            unsafe {
                $crate::kapi::global::GlobalMutex::new(
                    kernel::sync::lock::GlobalLock::new(init)
                )
            }
        };
    };
}
pub(crate) use global_mutex;
