//! Vote skip: the host's setting (`vote_skip`), how many votes an item needs,
//! and the tally of the live streams that voted to skip the loaded item, with
//! the coalesced `votes` frames it is told by.
//!
//! Votes are counted per item: the item is named by [`crate::room::Room::item_since`]
//! (the version of the event that loaded it), so a new item, even the same
//! video loaded again, starts with no votes. A stream votes at most once per
//! item, and a stream that ends takes its vote away. What the room does when
//! the votes are enough is in the state machine (`Room::skip_by_vote`).
//!
//! The tally holds at most one entry per live stream of the room (a stream
//! that ends is forgotten), for one item at a time. (Shared rooms keep the set
//! of voters in the backplane, beside the room.)

use std::collections::HashSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `votes` frames are coalesced to at most one per this interval.
pub const VOTES_INTERVAL: Duration = Duration::from_millis(250);
/// The most votes a host may ask for at least.
pub const MAX_MIN_VOTES: u64 = 10_000;
/// Why a vote is refused in a room whose host has not turned vote skip on.
pub const VOTES_OFF: &str = "vote skip is off in this room";

/// The host's vote skip setting: the share of the room's live streams whose
/// votes skip an item, and the fewest votes that ever do. `ratio: 0` is off
/// (the default).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VoteSkip {
    /// Share (0..=1) of the live streams that must vote; 0 turns vote skip off.
    pub ratio: f64,
    /// Fewest votes that skip (1..=10000).
    pub min_votes: u64,
}

impl Default for VoteSkip {
    fn default() -> Self {
        Self {
            ratio: 0.0,
            min_votes: 1,
        }
    }
}

impl VoteSkip {
    /// Whether votes are taken at all.
    pub fn is_on(&self) -> bool {
        self.ratio > 0.0
    }

    /// The votes that skip with `listeners` live streams:
    /// `max(min_votes, ceil(ratio × listeners))`.
    pub fn needed(&self, listeners: u64) -> u64 {
        // Exact for any listener count a room can have (far below 2^53).
        let share = (self.ratio * listeners as f64).ceil() as u64;
        share.max(self.min_votes)
    }

    /// Whether `skip` votes are enough with `listeners` live streams.
    pub fn met(&self, skip: u64, listeners: u64) -> bool {
        self.is_on() && skip >= self.needed(listeners)
    }

    /// Checks the ranges a host may set.
    pub fn check(&self) -> Result<(), String> {
        if !(self.ratio.is_finite() && (0.0..=1.0).contains(&self.ratio)) {
            return Err("`ratio` must be a number from 0 (off) to 1".into());
        }
        if !(1..=MAX_MIN_VOTES).contains(&self.min_votes) {
            return Err(format!("`min_votes` must be from 1 to {MAX_MIN_VOTES}"));
        }
        Ok(())
    }
}

/// The answer to a vote: the item's votes, the votes it needs, the room's live
/// streams over every node, and whether this vote counted (false when this
/// stream had already voted on this item).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct VoteProgress {
    /// Streams that voted to skip the loaded item.
    pub skip: u64,
    /// Votes that skip it now.
    pub needed: u64,
    /// The room's live streams over every node.
    pub listeners: u64,
    /// Whether this vote counted.
    pub counted: bool,
}

/// A change to the voters of an item kept in a backplane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VoteChange {
    /// This stream votes to skip.
    Cast(String),
    /// These streams ended: their votes go.
    Forget(Vec<String>),
}

/// The streams that voted to skip the loaded item, and the `votes` frames.
#[derive(Debug, Default)]
pub struct VoteTally {
    /// The item counted (its `item_since`).
    item: u64,
    voters: HashSet<String>,
    /// The count heard from the backplane (shared rooms keep the set there).
    heard: Option<u64>,
    /// The (skip, needed, listeners) last sent; a change waits for the interval.
    sent: Option<(u64, u64, u64)>,
    /// Server time (ms) of the frame last sent.
    sent_at: Option<i64>,
    pending: bool,
}

impl VoteTally {
    /// A tally of the item loaded at `item` (a room read back, or opened by
    /// a node after its item was loaded), with no votes yet.
    pub fn following(item: u64) -> Self {
        Self {
            item,
            ..Self::default()
        }
    }

    /// Follows the loaded item: a new one starts with no votes (and pages that
    /// were shown votes are told so).
    pub fn follow(&mut self, item: u64) {
        if self.item != item {
            self.item = item;
            self.voters.clear();
            self.heard = None;
            self.pending = self.sent.is_some_and(|(skip, _, _)| skip > 0);
        }
    }

    /// The item counted.
    pub fn item(&self) -> u64 {
        self.item
    }

    /// Counts `stream`'s vote on `item`; answers whether it counted.
    pub fn cast(&mut self, item: u64, stream: String) -> bool {
        if self.item != item {
            return false;
        }
        let counted = self.voters.insert(stream);
        self.pending |= counted;
        counted
    }

    /// A stream ended: its vote goes.
    pub fn forget(&mut self, stream: &str) {
        if self.voters.remove(stream) {
            self.pending = true;
        }
    }

    /// The backplane counted `skip` votes on `item` (over every node).
    pub fn heard(&mut self, item: u64, skip: u64) {
        if self.item == item && self.heard != Some(skip) {
            self.heard = Some(skip);
            self.pending = true;
        }
    }

    /// The votes on the item counted.
    pub fn skip(&self) -> u64 {
        self.heard.unwrap_or(self.voters.len() as u64)
    }

    /// The listeners changed: the votes needed may have.
    pub fn touch(&mut self) {
        self.pending |= self.skip() > 0;
    }

    /// When (server ms) the next `votes` frame may go, if one is waiting.
    pub fn deadline(&self, now: i64) -> Option<i64> {
        self.pending.then(|| {
            self.sent_at
                .map_or(now, |at| at + VOTES_INTERVAL.as_millis() as i64)
        })
    }

    /// The (skip, needed, listeners) to send at `now` under `settings`, unless
    /// it is what was sent last (or vote skip is off).
    pub fn due(
        &mut self,
        settings: &VoteSkip,
        listeners: u64,
        now: i64,
    ) -> Option<(u64, u64, u64)> {
        self.pending = false;
        if !settings.is_on() {
            return None;
        }
        let progress = (self.skip(), settings.needed(listeners), listeners);
        if self.sent == Some(progress) {
            return None;
        }
        self.sent = Some(progress);
        self.sent_at = Some(now);
        Some(progress)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_votes_needed_are_the_larger_of_the_share_and_the_minimum() {
        // (ratio, min_votes, listeners, needed)
        let cases = [
            (0.5, 1, 5, 3),
            (0.5, 1, 4, 2),
            (0.5, 1, 0, 1),
            (0.5, 4, 5, 4),
            (1.0, 1, 7, 7),
            (0.34, 1, 3, 2),
            (0.01, 1, 1000, 10),
            (0.01, 2, 10, 2),
            (0.0, 1, 50, 1),
        ];
        for (ratio, min_votes, listeners, needed) in cases {
            let settings = VoteSkip { ratio, min_votes };
            assert_eq!(
                settings.needed(listeners),
                needed,
                "{ratio} of {listeners}, at least {min_votes}"
            );
        }
    }

    #[test]
    fn votes_are_met_only_when_vote_skip_is_on() {
        // (ratio, min_votes, skip, listeners, met)
        let cases = [
            (0.5, 1, 3, 5, true),
            (0.5, 1, 2, 5, false),
            (0.0, 1, 5, 5, false),
            (0.5, 3, 2, 2, false),
            (1.0, 1, 1, 1, true),
        ];
        for (ratio, min_votes, skip, listeners, met) in cases {
            let settings = VoteSkip { ratio, min_votes };
            assert_eq!(settings.met(skip, listeners), met, "{settings:?} {skip}");
        }
    }

    #[test]
    fn the_settings_are_checked_against_their_ranges() {
        // (ratio, min_votes, accepted)
        let cases = [
            (0.0, 1, true),
            (1.0, MAX_MIN_VOTES, true),
            (0.5, 0, false),
            (0.5, MAX_MIN_VOTES + 1, false),
            (-0.1, 1, false),
            (1.5, 1, false),
            (f64::NAN, 1, false),
        ];
        for (ratio, min_votes, accepted) in cases {
            let checked = VoteSkip { ratio, min_votes }.check();
            assert_eq!(checked.is_ok(), accepted, "{ratio} {min_votes}");
        }
    }

    #[test]
    fn a_stream_votes_once_per_item_and_takes_its_vote_away_when_it_ends() {
        let mut tally = VoteTally::default();
        tally.follow(4);
        assert!(tally.cast(4, "a".into()));
        assert!(!tally.cast(4, "a".into()), "a second vote does not count");
        assert!(!tally.cast(3, "b".into()), "a vote on an older item");
        assert!(tally.cast(4, "b".into()));
        assert_eq!(tally.skip(), 2);
        tally.forget("a");
        assert_eq!(tally.skip(), 1);
        tally.follow(9);
        assert_eq!(tally.skip(), 0, "a new item starts with no votes");
        assert!(tally.cast(9, "b".into()));
    }

    #[test]
    fn votes_frames_are_sent_only_on_change_and_only_while_on() {
        let on = VoteSkip {
            ratio: 0.5,
            min_votes: 1,
        };
        let mut tally = VoteTally::default();
        tally.follow(2);
        tally.cast(2, "a".into());
        assert_eq!(tally.deadline(1_000), Some(1_000));
        assert_eq!(tally.due(&on, 4, 1_000), Some((1, 2, 4)));
        assert_eq!(tally.deadline(1_100), None);
        tally.touch();
        assert_eq!(tally.deadline(1_100), Some(1_250), "coalesced");
        assert_eq!(tally.due(&on, 4, 1_250), None, "unchanged");
        tally.cast(2, "b".into());
        assert_eq!(tally.due(&VoteSkip::default(), 4, 1_500), None, "off");
        // A new item tells pages that were shown votes that there are none.
        tally.follow(3);
        assert_eq!(tally.due(&on, 4, 2_000), Some((0, 2, 4)));
    }
}
