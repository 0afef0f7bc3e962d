//! The ready gate's tally in a room kept by this process: which event streams
//! reported the gated item ready, and the coalesced `gate` progress frames.
//!
//! The tally holds at most one entry per stream that reported, for one gate at a
//! time; it is cleared when the gate closes, and a gate closes at the latest when
//! every taking-part listener has reported, so it never outgrows the room's
//! listeners. (Shared rooms keep the same tally in the backplane.)

use std::collections::HashSet;
use std::time::Duration;

use serde::Serialize;

use super::view::GateSettings;

/// `gate` progress frames are coalesced to at most one per this interval.
pub const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);

/// What a readiness report found: the gate's progress, and whether the report
/// counted (it named the gate that is open now).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct GateProgress {
    /// The open gate's id, `null` when none is open.
    pub ready_gate: Option<u64>,
    /// Taking-part listeners that reported it ready.
    pub ready: u64,
    /// Taking-part listeners now (over every node).
    pub listeners: u64,
    /// Whether this report counted.
    pub counted: bool,
}

/// A change to the ready streams of a gate kept in a backplane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadyChange {
    /// This stream reports the gated item ready.
    Report(String),
    /// These streams ended: their readiness goes, and they report nothing more.
    Forget(Vec<String>),
}

impl GateSettings {
    /// Whether `ready` of `listeners` is the quorum. Nobody to wait for is one.
    pub fn met(&self, ready: u64, listeners: u64) -> bool {
        ready.min(listeners) * 100 >= self.quorum * listeners
    }
}

/// The streams that reported the open gate ready.
#[derive(Debug, Default)]
pub struct ReadyTally {
    gate: Option<u64>,
    ready: HashSet<String>,
    /// The count heard from the backplane (shared rooms keep the set there).
    heard: u64,
    /// The progress last sent, and when; a change waits for the interval.
    sent: Option<(u64, u64)>,
    /// Server time (ms) of the progress last sent.
    sent_at: Option<i64>,
    pending: bool,
}

impl ReadyTally {
    /// Follows the room's open gate (`None`: none); a new gate starts empty.
    pub fn follow(&mut self, gate: Option<u64>) {
        if self.gate != gate {
            self.gate = gate;
            self.ready.clear();
            self.heard = 0;
            self.sent = None;
            self.pending = gate.is_some();
        }
    }

    /// Counts `stream` ready for `gate`; answers whether it counted.
    pub fn report(&mut self, gate: u64, stream: String) -> bool {
        if self.gate != Some(gate) {
            return false;
        }
        self.ready.insert(stream);
        self.pending = true;
        true
    }

    /// A stream ended: its readiness goes with it (the pages still there may
    /// or may not be the quorum without it).
    pub fn forget(&mut self, stream: &str) {
        if self.ready.remove(stream) {
            self.pending = true;
        }
    }

    /// The backplane counted `ready` streams ready for `gate` (over every
    /// node). Exactly as heard: the count falls when a ready stream leaves.
    pub fn heard(&mut self, gate: u64, ready: u64) {
        if self.gate == Some(gate) && ready != self.heard {
            self.heard = ready;
            self.pending = true;
        }
    }

    pub fn ready(&self) -> u64 {
        (self.ready.len() as u64).max(self.heard)
    }

    /// When (server ms) the next progress frame may go, if one is waiting.
    pub fn progress_deadline(&self, now: i64) -> Option<i64> {
        (self.pending && self.gate.is_some()).then(|| {
            self.sent_at
                .map_or(now, |at| at + PROGRESS_INTERVAL.as_millis() as i64)
        })
    }

    /// The progress to send at `now`, unless it is what was sent last.
    pub fn progress_due(&mut self, listeners: u64, now: i64) -> Option<(u64, u64)> {
        self.pending = false;
        self.gate?;
        let progress = (self.ready().min(listeners), listeners);
        if self.sent == Some(progress) {
            return None;
        }
        self.sent = Some(progress);
        self.sent_at = Some(now);
        Some(progress)
    }

    /// Something changed (a report, a listener came or went).
    pub fn touch(&mut self) {
        self.pending = self.gate.is_some();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quorum_is_a_percentage_of_the_taking_part_listeners() {
        let gate = GateSettings {
            quorum: 80,
            deadline_ms: 3000,
        };
        assert!(!gate.met(3, 4));
        assert!(gate.met(4, 5));
        assert!(gate.met(0, 0));
        // Reports from streams that left since count at most as the listeners.
        assert!(gate.met(10, 8));
        assert!(!gate.met(5, 10));
        let all = GateSettings {
            quorum: 100,
            deadline_ms: 3000,
        };
        assert!(!all.met(39, 40));
        assert!(all.met(40, 40));
    }

    #[test]
    fn a_report_counts_only_for_the_open_gate_and_once_per_stream() {
        let mut tally = ReadyTally::default();
        assert!(!tally.report(7, "a".into()));
        tally.follow(Some(7));
        assert!(tally.report(7, "a".into()));
        assert!(tally.report(7, "a".into()));
        assert!(!tally.report(6, "b".into()));
        assert_eq!(tally.ready(), 1);
        tally.follow(Some(9));
        assert_eq!(tally.ready(), 0);
    }

    #[test]
    fn a_stream_that_leaves_takes_its_readiness_along() {
        let mut tally = ReadyTally::default();
        tally.follow(Some(7));
        tally.report(7, "a".into());
        tally.report(7, "b".into());
        tally.forget("a");
        tally.forget("c");
        assert_eq!(tally.ready(), 1);
        // Heard from the backplane: the count falls too.
        let mut shared = ReadyTally::default();
        shared.follow(Some(7));
        shared.heard(7, 2);
        shared.heard(7, 1);
        assert_eq!(shared.ready(), 1);
        shared.heard(6, 5);
        assert_eq!(shared.ready(), 1, "another gate's count is not this one's");
    }
}
