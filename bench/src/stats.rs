//! Lock-free counters and a latency histogram that every listener task updates.
//!
//! A delivery costs a handful of relaxed atomic adds and no allocation, so the
//! tool measures the server, not itself. The histogram is log-linear (HDR style):
//! 64 sub-buckets per power of two, so any reported percentile is within 1.6 % of
//! the true value, over the whole range from 1 µs to days, in a fixed 2,300 slots.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Values below `2^(SUB_BITS + 1)` have a bucket each; above, a power of two is cut
/// into `2^SUB_BITS` equal sub-buckets.
const SUB_BITS: u32 = 6;
const SUB_COUNT: u64 = 1 << SUB_BITS;
/// Enough buckets for values up to 2^40 µs (12 days); larger ones land in the last.
const BUCKETS: usize = ((40 - SUB_BITS) as usize + 2) * SUB_COUNT as usize;

/// A histogram of microsecond values, shared by reference between tasks and threads.
pub struct Histogram {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum: AtomicU64,
    min: AtomicU64,
    max: AtomicU64,
}

/// What a histogram held, for the report.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Summary {
    pub count: u64,
    pub min: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    pub fn new() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            min: AtomicU64::new(u64::MAX),
            max: AtomicU64::new(0),
        }
    }

    pub fn record(&self, value: u64) {
        self.buckets[bucket_of(value)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
        self.min.fetch_min(value, Ordering::Relaxed);
        self.max.fetch_max(value, Ordering::Relaxed);
    }

    /// Percentiles are the highest value of the bucket holding that rank (as
    /// HdrHistogram reports them), capped by the exact maximum.
    pub fn summary(&self) -> Summary {
        let count = self.count.load(Ordering::Relaxed);
        if count == 0 {
            return Summary::default();
        }
        let max = self.max.load(Ordering::Relaxed);
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let at = |quantile: f64| -> u64 {
            let rank = ((quantile * count as f64).ceil() as u64).clamp(1, count);
            let mut seen = 0;
            for (index, n) in counts.iter().enumerate() {
                seen += n;
                if seen >= rank {
                    return highest_in_bucket(index).min(max);
                }
            }
            max
        };
        Summary {
            count,
            min: self.min.load(Ordering::Relaxed),
            mean: self.sum.load(Ordering::Relaxed) as f64 / count as f64,
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            p999: at(0.999),
            max,
        }
    }
}

fn bucket_of(value: u64) -> usize {
    if value < 2 * SUB_COUNT {
        return value as usize;
    }
    let magnitude = 63 - value.leading_zeros();
    let shift = magnitude - SUB_BITS;
    let index = shift as usize * SUB_COUNT as usize + (value >> shift) as usize;
    index.min(BUCKETS - 1)
}

fn highest_in_bucket(index: usize) -> u64 {
    let index = index as u64;
    if index < 2 * SUB_COUNT {
        return index;
    }
    let shift = index / SUB_COUNT - 1;
    let sub = index - shift * SUB_COUNT;
    ((sub + 1) << shift) - 1
}

/// What happened to deliveries and connections, summed over every listener.
#[derive(Default)]
pub struct Counters {
    /// Listeners that have their snapshot (nchan: their `200` and headers).
    pub ready: AtomicU64,
    /// Listeners that could not connect or subscribe.
    pub failed: AtomicU64,
    /// Events read in order, each the next id of its listener (gaps included).
    pub delivered: AtomicU64,
    /// Events whose id was at or below one the listener already had.
    pub duplicated: AtomicU64,
    /// Ids skipped by a gap, a resync or a stream that ended early.
    pub lost: AtomicU64,
    /// Ids past the last one published (someone else commanded the room).
    pub unexpected: AtomicU64,
    /// Mid-stream snapshots (the server judged the listener too slow).
    pub resyncs: AtomicU64,
    /// Streams that ended or failed after their snapshot.
    pub disconnects: AtomicU64,
    /// Delivered events with no matching send time (not from this run's publisher).
    pub unmatched: AtomicU64,
    /// Messages without an id (presence) and comments (keepalive, nchan's `: hi`).
    pub other: AtomicU64,
    /// Bytes read from every listener socket.
    pub bytes: AtomicU64,
    /// The first failure of each kind, for the report.
    first_failure: Mutex<Option<String>>,
    first_disconnect: Mutex<Option<String>>,
}

impl Counters {
    pub fn fail(&self, why: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        remember(&self.first_failure, why);
    }

    pub fn disconnect(&self, why: String) {
        self.disconnects.fetch_add(1, Ordering::Relaxed);
        remember(&self.first_disconnect, why);
    }

    pub fn first_failure(&self) -> Option<String> {
        recall(&self.first_failure)
    }

    pub fn first_disconnect(&self) -> Option<String> {
        recall(&self.first_disconnect)
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

fn remember(slot: &Mutex<Option<String>>, why: String) {
    // A poisoned lock only means another task panicked mid-write: keep going.
    let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
    slot.get_or_insert(why);
}

fn recall(slot: &Mutex<Option<String>>) -> Option<String> {
    slot.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_cover_their_values() {
        let mut previous = 0;
        for value in (0..200_000u64).chain([1 << 30, (1 << 40) - 1]) {
            let index = bucket_of(value);
            assert!(index >= previous, "{value}");
            assert!(highest_in_bucket(index) >= value, "{value}");
            if index > 0 {
                assert!(highest_in_bucket(index - 1) < value, "{value}");
            }
            previous = index;
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn percentiles_are_within_the_bucket_precision() {
        let histogram = Histogram::new();
        for value in 1..=10_000 {
            histogram.record(value);
        }
        let summary = histogram.summary();
        assert_eq!(summary.count, 10_000);
        assert_eq!((summary.min, summary.max), (1, 10_000));
        for (got, want) in [(summary.p50, 5_000.0), (summary.p99, 9_900.0)] {
            assert!((got as f64 - want).abs() / want < 0.02, "{got} vs {want}");
        }
    }

    #[test]
    fn an_empty_histogram_summarises_to_zeros() {
        assert_eq!(Histogram::new().summary(), Summary::default());
    }
}
