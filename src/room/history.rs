//! The ring of a room's most recent id-carrying frames, which makes resume with
//! `Last-Event-ID` exact: a listener that reconnects gets every event after the
//! last one it saw, from the very same encoded bytes, or a snapshot when the ring
//! no longer reaches back that far.

use std::collections::VecDeque;

use super::event::SharedFrame;

/// At most `capacity` consecutive frames and at most `max_bytes` of them, oldest
/// first. The byte bound is what keeps a room's memory small whatever its events
/// weigh: a count alone lets a few large events (a long queue, long titles) cost
/// a room megabytes.
#[derive(Debug)]
pub struct History {
    frames: VecDeque<SharedFrame>,
    capacity: usize,
    max_bytes: usize,
    bytes: usize,
}

impl History {
    pub fn new(capacity: usize, max_bytes: usize) -> Self {
        Self {
            // Grown on demand: most rooms never fill a 1024-event ring.
            frames: VecDeque::new(),
            capacity: capacity.max(1),
            max_bytes,
            bytes: 0,
        }
    }

    /// Keeps `frame`, forgetting the oldest ones while over either bound. Frames
    /// without an id (presence) are never replayed and are not kept. A frame
    /// larger than `max_bytes` by itself is not kept either, and the ring is
    /// emptied: what it held no longer reaches the present without a gap.
    pub fn push(&mut self, frame: SharedFrame) {
        if frame.version.is_none() {
            return;
        }
        let size = frame.bytes.len();
        if size > self.max_bytes {
            self.clear();
            return;
        }
        while self.frames.len() >= self.capacity || self.bytes + size > self.max_bytes {
            match self.frames.pop_front() {
                Some(old) => self.bytes -= old.bytes.len(),
                None => break,
            }
        }
        self.bytes += size;
        self.frames.push_back(frame);
    }

    /// Forgets every frame: after a resync the ring would otherwise hold a gap.
    pub fn clear(&mut self) {
        self.frames.clear();
        self.bytes = 0;
    }

    /// The bytes of the frames kept.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The frames after `last_seen`, if this ring can say exactly what they are for
    /// a room now at `version`: `Some(empty)` when the listener is up to date,
    /// `None` when it must get a snapshot instead (an id from the future, or one
    /// older than the ring reaches).
    pub fn after(&self, last_seen: u64, version: u64) -> Option<Vec<SharedFrame>> {
        if last_seen > version {
            return None;
        }
        let missed = (version - last_seen) as usize;
        if missed > self.frames.len() {
            return None;
        }
        Some(
            self.frames
                .iter()
                .skip(self.frames.len() - missed)
                .cloned()
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::room::event::Frame;
    use std::sync::Arc;

    fn frame(version: u64) -> SharedFrame {
        Arc::new(Frame {
            version: Some(version),
            bytes: bytes::Bytes::from(version.to_string()),
            ends_stream: false,
            restarts: false,
            fanout: None,
        })
    }

    fn versions(frames: Option<Vec<SharedFrame>>) -> Option<Vec<u64>> {
        frames.map(|f| f.iter().filter_map(|f| f.version).collect())
    }

    #[test]
    fn replays_exactly_the_missed_frames() {
        let mut history = History::new(4, usize::MAX);
        for version in 2..=7 {
            history.push(frame(version));
        }
        // Holds 4..=7.
        assert_eq!(versions(history.after(7, 7)), Some(vec![]));
        assert_eq!(versions(history.after(5, 7)), Some(vec![6, 7]));
        assert_eq!(versions(history.after(3, 7)), Some(vec![4, 5, 6, 7]));
    }

    #[test]
    fn refuses_what_it_cannot_replay() {
        let mut history = History::new(4, usize::MAX);
        for version in 2..=7 {
            history.push(frame(version));
        }
        assert_eq!(versions(history.after(2, 7)), None, "too old");
        assert_eq!(versions(history.after(8, 7)), None, "from the future");
        assert_eq!(versions(history.after(0, 7)), None, "before creation");
    }

    #[test]
    fn a_new_room_resumes_from_its_creation() {
        let mut history = History::new(4, usize::MAX);
        assert_eq!(versions(history.after(1, 1)), Some(vec![]));
        history.push(frame(2));
        assert_eq!(versions(history.after(1, 2)), Some(vec![2]));
    }

    fn sized(version: u64, len: usize) -> SharedFrame {
        Arc::new(Frame {
            version: Some(version),
            bytes: bytes::Bytes::from(vec![b'x'; len]),
            ends_stream: false,
            restarts: false,
            fanout: None,
        })
    }

    #[test]
    fn the_ring_is_bounded_in_bytes_as_well_as_in_count() {
        let mut history = History::new(100, 250);
        for version in 2..=7 {
            history.push(sized(version, 100));
        }
        // Two frames of 100 bytes fit in 250.
        assert_eq!(history.bytes(), 200);
        assert_eq!(versions(history.after(5, 7)), Some(vec![6, 7]));
        assert_eq!(versions(history.after(4, 7)), None, "beyond what is kept");
    }

    #[test]
    fn a_frame_larger_than_the_bound_empties_the_ring() {
        let mut history = History::new(100, 250);
        history.push(sized(2, 100));
        history.push(sized(3, 300));
        assert_eq!(history.bytes(), 0);
        assert_eq!(versions(history.after(3, 3)), Some(vec![]), "up to date");
        assert_eq!(versions(history.after(2, 3)), None, "frame 3 is not kept");
        history.push(sized(4, 100));
        assert_eq!(versions(history.after(3, 4)), Some(vec![4]));
    }

    #[test]
    fn presence_is_not_kept() {
        let mut history = History::new(4, usize::MAX);
        history.push(Arc::new(Frame::presence(1, 1)));
        assert_eq!(versions(history.after(1, 1)), Some(vec![]));
    }
}
