//! Vote skip's rules in the state machine, case by case: the host's setting,
//! what enough votes do with and without a queue, once per item, and mirrors
//! that follow it.

use serde_json::{json, Value};

use super::command::{Command, CommandError};
use super::event::{Event, EventKind};
use super::state::{Control, Inputs, Room};
use super::votes::VoteSkip;

const T0: i64 = 1_763_800_000_000;
const HALF: VoteSkip = VoteSkip {
    ratio: 0.5,
    min_votes: 1,
};

fn room() -> Room {
    Room::new(
        "r".into(),
        "r".into(),
        Control::Host,
        None,
        "secret",
        10,
        T0,
    )
}

fn apply(room: &mut Room, body: Value, now: i64) -> Vec<Event> {
    let command = Command::decode(body).expect("a valid command").command;
    room.apply(command, &Inputs::at(now)).expect("applied")
}

/// Each event as `name` or `state:cause item paused position`.
fn summary(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|event| match &event.kind {
            EventKind::State { cause, state } => format!(
                "state:{} {} {} {}",
                serde_json::to_value(cause).unwrap().as_str().unwrap(),
                state.item_id.as_deref().unwrap_or("-"),
                if state.paused { "paused" } else { "playing" },
                state.position
            ),
            other => other.name().into(),
        })
        .collect()
}

/// A room with vote skip at half, playing an item loaded at T0 for 5 s.
fn playing(duration: Option<f64>, queued: usize) -> Room {
    let mut room = room();
    room.vote_skip = HALF;
    let mut load = json!({"type": "load", "video_id": "dQw4w9WgXcQ"});
    if let Some(duration) = duration {
        load["duration"] = json!(duration);
    }
    apply(&mut room, load, T0);
    for _ in 0..queued {
        apply(
            &mut room,
            json!({"type": "queue_add", "video_id": "9bZkp7q19f0"}),
            T0,
        );
    }
    room
}

#[test]
fn the_vote_skip_command_takes_its_ranges_and_emits_one_event() {
    // (body, outcome: "ok" or the error code)
    let cases = [
        (
            json!({"type": "vote_skip", "ratio": 0.5, "min_votes": 2}),
            "ok",
        ),
        (
            json!({"type": "vote_skip", "ratio": 0, "min_votes": 1}),
            "ok",
        ),
        (
            json!({"type": "vote_skip", "ratio": 1, "min_votes": 10000}),
            "ok",
        ),
        (
            json!({"type": "vote_skip", "ratio": 1.01, "min_votes": 1}),
            "invalid_value",
        ),
        (
            json!({"type": "vote_skip", "ratio": -0.5, "min_votes": 1}),
            "invalid_value",
        ),
        (
            json!({"type": "vote_skip", "ratio": 0.5, "min_votes": 0}),
            "invalid_value",
        ),
        (
            json!({"type": "vote_skip", "ratio": 0.5, "min_votes": 10001}),
            "invalid_value",
        ),
        (
            json!({"type": "vote_skip", "ratio": "half", "min_votes": 1}),
            "invalid_json",
        ),
        (
            json!({"type": "vote_skip", "ratio": 0.5}),
            "invalid_command",
        ),
    ];
    for (body, outcome) in cases {
        let decoded = Command::decode(body.clone());
        let code = match &decoded {
            Ok(_) => "ok",
            Err(CommandError::InvalidValue(_)) => "invalid_value",
            Err(CommandError::InvalidJson(_)) => "invalid_json",
            Err(CommandError::InvalidCommand(_)) => "invalid_command",
            Err(other) => panic!("{body}: {other:?}"),
        };
        assert_eq!(code, outcome, "{body}");
    }
    let mut room = room();
    assert_eq!(room.vote_skip, VoteSkip::default());
    let body = json!({"type": "vote_skip", "ratio": 0.5, "min_votes": 2});
    assert_eq!(summary(&apply(&mut room, body.clone(), T0)), ["vote_skip"]);
    assert_eq!(apply(&mut room, body, T0), [], "the same setting again");
    assert_eq!(room.view(0, T0, Default::default()).vote_skip.min_votes, 2);
}

#[test]
fn enough_votes_play_the_next_item_or_pause_this_one_at_its_end() {
    // (duration, queued, votes, listeners, the events)
    type Case = (Option<f64>, usize, u64, u64, &'static [&'static str]);
    let cases: [Case; 6] = [
        (
            Some(100.0),
            1,
            3,
            5,
            &["state:vote_skip q1 playing 0", "queue"],
        ),
        (Some(100.0), 0, 3, 5, &["state:vote_skip - paused 100"]),
        // Unknown duration: paused where playback got to (5 s in).
        (None, 0, 3, 5, &["state:vote_skip - paused 5"]),
        (Some(100.0), 1, 2, 5, &[]),
        // At least `min_votes`, even alone in the room.
        (Some(100.0), 0, 1, 1, &["state:vote_skip - paused 100"]),
        (Some(100.0), 0, 0, 0, &[]),
    ];
    for (duration, queued, votes, listeners, expected) in cases {
        let mut room = playing(duration, queued);
        let events = match room.vote_skip_met(votes, listeners) {
            Some(item) => room.skip_by_vote(item, &Inputs::at(T0 + 5_000)),
            None => Vec::new(),
        };
        assert_eq!(
            summary(&events),
            expected,
            "{duration:?} {queued} queued, {votes} of {listeners}"
        );
    }
}

#[test]
fn an_item_is_skipped_by_votes_once() {
    let mut room = playing(Some(100.0), 0);
    let item = room.vote_skip_met(3, 5).expect("met");
    assert_eq!(room.skip_by_vote(item, &Inputs::at(T0 + 1_000)).len(), 1);
    // The host plays it again: the votes that stood do not pause it again.
    apply(
        &mut room,
        json!({"type": "play", "position": 10}),
        T0 + 2_000,
    );
    assert_eq!(room.vote_skip_met(5, 5), None);
    assert_eq!(room.skip_by_vote(item, &Inputs::at(T0 + 3_000)), []);
    // A new item (even the same video again) is counted afresh.
    apply(
        &mut room,
        json!({"type": "load", "video_id": "dQw4w9WgXcQ"}),
        T0 + 4_000,
    );
    let again = room.vote_skip_met(3, 5).expect("a new item");
    assert_ne!(again, item);
    // Votes for an item no longer loaded change nothing.
    assert_eq!(room.skip_by_vote(item, &Inputs::at(T0 + 5_000)), []);
}

#[test]
fn votes_count_only_while_vote_skip_is_on_and_something_is_loaded() {
    let mut off = playing(Some(100.0), 1);
    off.vote_skip = VoteSkip::default();
    assert_eq!(off.vote_skip_met(5, 5), None);
    let mut empty = room();
    empty.vote_skip = HALF;
    assert_eq!(empty.vote_skip_met(5, 5), None);
    assert_eq!(empty.skip_by_vote(0, &Inputs::at(T0)), []);
}

#[test]
fn a_mirror_follows_what_votes_are_counted_for() {
    let mut room = playing(Some(100.0), 1);
    let mut mirror = room.clone();
    let item = room.vote_skip_met(3, 5).expect("met");
    let mut events = room.skip_by_vote(item, &Inputs::at(T0 + 1_000));
    let next = room.vote_skip_met(3, 5).expect("the next item");
    events.extend(room.skip_by_vote(next, &Inputs::at(T0 + 2_000)));
    for event in &events {
        mirror.absorb(event);
    }
    assert_eq!(mirror.item_since, room.item_since);
    assert_eq!(mirror.vote_skipped, room.vote_skipped);
    assert_eq!(mirror.vote_skip_met(5, 5), None);
}

#[test]
fn rooms_kept_before_vote_skip_load_with_it_off() {
    let room = playing(Some(100.0), 0);
    let mut stored = serde_json::to_value(&room).unwrap();
    for field in ["vote_skip", "item_since", "vote_skipped"] {
        stored.as_object_mut().unwrap().remove(field);
    }
    let restored: Room = serde_json::from_value(stored).unwrap();
    assert_eq!(restored.vote_skip, VoteSkip::default());
    assert_eq!(restored.vote_skip_met(5, 5), None);
}
