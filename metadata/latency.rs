// SPDX-License-Identifier: GPL-2.0

//! A histogram of commit times.

/// Buckets of [`LatencyHistogram`]: 8 exact ones below 8 µs, then 8 per
/// power of two up to 2^26 µs.
pub(super) const LATENCY_BUCKETS: usize = 8 + 23 * 8;

/// Commit times in microseconds, in a log-linear histogram: 8 buckets per
/// power of two, so a percentile read as its bucket's upper bound is at
/// most 1/8 above the time measured. 776 bytes; no allocation.
pub(crate) struct LatencyHistogram {
    counts: [u32; LATENCY_BUCKETS],
    max_us: u64,
}

impl LatencyHistogram {
    pub(super) const fn new() -> Self {
        Self {
            counts: [0; LATENCY_BUCKETS],
            max_us: 0,
        }
    }

    pub(super) fn bucket(us: u64) -> usize {
        if us < 8 {
            return us as usize;
        }
        let power = 63 - us.leading_zeros() as usize;
        let sub = (us >> (power - 3)) as usize & 7;
        (8 + (power - 3) * 8 + sub).min(LATENCY_BUCKETS - 1)
    }

    /// The largest time in microseconds that bucket `b` holds.
    pub(super) fn bucket_high(b: usize) -> u64 {
        if b < 8 {
            return b as u64;
        }
        let (power, sub) = ((b - 8) / 8 + 3, (b - 8) % 8);
        ((9 + sub as u64) << (power - 3)) - 1
    }

    /// Records one time.
    pub(crate) fn record(&mut self, us: u64) {
        let b = Self::bucket(us);
        self.counts[b] = self.counts[b].saturating_add(1);
        self.max_us = self.max_us.max(us);
    }

    /// The time that `permille` of the recorded times do not exceed (as
    /// its bucket's upper bound, at most the largest time), or 0 when
    /// nothing was recorded.
    pub(crate) fn percentile(&self, permille: u64) -> u64 {
        let total: u64 = self.counts.iter().map(|&c| u64::from(c)).sum();
        let rank = (total * permille).div_ceil(1000).max(1);
        let mut seen = 0;
        for (b, &c) in self.counts.iter().enumerate() {
            seen += u64::from(c);
            if seen >= rank {
                return Self::bucket_high(b).min(self.max_us);
            }
        }
        0
    }

    /// The largest time recorded.
    pub(crate) fn max(&self) -> u64 {
        self.max_us
    }
}
