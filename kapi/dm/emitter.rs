// SPDX-License-Identifier: GPL-2.0

//! The text a target writes for `status` and `message`.

use core::fmt;
use kernel::prelude::*;

/// Writes text into a result buffer of device-mapper core, like `DMEMIT`.
///
/// Text that does not fit is cut off and the buffer is left full, which
/// tells device-mapper core to retry with a larger buffer. The text is
/// always NUL-terminated.
pub(crate) struct Emitter<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> Emitter<'a> {
    /// An emitter over a byte buffer (used directly by the unit tests).
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        if let Some(first) = buf.first_mut() {
            *first = 0;
        }
        Self { buf, len: 0 }
    }

    /// # Safety
    ///
    /// `result` must be valid for writes of `maxlen` bytes for `'a`.
    pub(super) unsafe fn from_raw(result: *mut c_char, maxlen: c_uint) -> Self {
        let buf = if result.is_null() {
            &mut [][..]
        } else {
            // SAFETY: valid for `maxlen` bytes by the caller's guarantee.
            unsafe { core::slice::from_raw_parts_mut(result.cast::<u8>(), maxlen as usize) }
        };
        Self::new(buf)
    }

    /// Appends formatted text.
    pub(crate) fn emit(&mut self, args: fmt::Arguments<'_>) {
        // `write_str` never fails (text that does not fit is cut off): only
        // a `Display` of the caller's that fails can, a bug, warned about.
        crate::kapi::warn::warn_on(fmt::Write::write_fmt(self, args).is_err());
    }

    /// Bytes that can still be written.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.len + 1)
    }

    /// The text written so far.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl fmt::Write for Emitter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.buf.is_empty() {
            return Ok(());
        }
        let room = self.buf.len() - 1 - self.len;
        let n = s.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        self.buf[self.len] = 0;
        Ok(())
    }
}

#[kunit_tests(dm_remap_emitter)]
mod tests {
    use super::*;

    #[test]
    fn emits_and_terminates() {
        let mut buf = [0xffu8; 16];
        let mut out = Emitter::new(&mut buf);
        out.emit(fmt!("{} {}", 12, "ab"));
        assert_eq!(out.as_bytes(), b"12 ab");
        assert_eq!(buf[5], 0);
    }

    #[test]
    fn cuts_off_and_fills_the_buffer() {
        let mut buf = [0xffu8; 8];
        let mut out = Emitter::new(&mut buf);
        out.emit(fmt!("0123456789"));
        out.emit(fmt!("more"));
        // Full: strlen + 1 == maxlen, which device-mapper core reads as
        // "buffer too small".
        assert_eq!(out.as_bytes(), b"0123456");
        assert_eq!(buf[7], 0);
    }

    #[test]
    fn empty_buffer_takes_nothing() {
        let mut buf = [0u8; 0];
        let mut out = Emitter::new(&mut buf);
        out.emit(fmt!("x"));
        assert_eq!(out.as_bytes(), b"");
    }
}
