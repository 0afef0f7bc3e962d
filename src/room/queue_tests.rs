//! The queue's rules, case by case: many items at once, what `next` and the
//! end of an item take in each queue mode, metadata that arrives later, and
//! mirrors that follow the queue's changes.

use serde_json::{json, Value};

use super::command::{Command, CommandError, ItemInfo, PLAYLIST_NEEDS_KEY};
use super::event::{Cause, Event, EventKind, QueueChange};
use super::state::{agreed_duration, Control, Inputs, Room};
use super::view::QueueMode;

const T0: i64 = 1_763_800_000_000;

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

fn decode(body: Value) -> Result<Command, CommandError> {
    Command::decode(body).map(|request| request.command)
}

fn apply(room: &mut Room, body: Value, now: i64) -> Vec<Event> {
    let command = decode(body).expect("a valid command");
    room.apply(command, &Inputs::at(now)).expect("applied")
}

/// Each event as `name` or `state:cause` or `queue:op ids`.
fn summary(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|event| match &event.kind {
            EventKind::State { cause, state } => {
                format!(
                    "state:{cause:?} {}",
                    state.item_id.as_deref().unwrap_or("-")
                )
            }
            EventKind::Queue { change } => match change {
                QueueChange::Add { items } | QueueChange::Update { items } => {
                    let ids: Vec<&str> = items.iter().map(|i| i.item_id.as_str()).collect();
                    let op = if matches!(change, QueueChange::Add { .. }) {
                        "add"
                    } else {
                        "update"
                    };
                    format!("queue:{op} {}", ids.join(","))
                }
                QueueChange::Remove { item_ids } => format!("queue:remove {}", item_ids.join(",")),
                QueueChange::Move { item_id, index } => format!("queue:move {item_id}@{index}"),
            },
            other => other.name().into(),
        })
        .collect()
}

/// The error code an answer names.
fn code(error: &CommandError) -> &'static str {
    match error {
        CommandError::InvalidJson(_) => "invalid_json",
        CommandError::InvalidCommand(_) => "invalid_command",
        CommandError::InvalidValue(_) => "invalid_value",
        _ => "other",
    }
}

fn three_items() -> Value {
    json!({"type": "queue_add", "name": "Ann", "items": [
        {"video_id": "aaaaaaaaaaa", "title": " One ", "duration": 1.0},
        {"video_id": "bbbbbbbbbbb", "artist": "B", "duration": 2.0, "name": "Bo"},
        {"media_url": "/media/c.ogg", "duration": 3.0},
    ]})
}

#[test]
fn many_items_make_one_version_and_one_add() {
    let mut room = room();
    let events = apply(&mut room, three_items(), T0);
    assert_eq!(summary(&events), ["queue:add q1,q2,q3"]);
    assert_eq!(room.version, 2);
    let by: Vec<_> = room.queue.iter().map(|i| i.added_by.as_deref()).collect();
    assert_eq!(by, [Some("Ann"), Some("Bo"), Some("Ann")]);
    assert_eq!(room.queue[0].title.as_deref(), Some("One"));
    assert_eq!(room.queue[1].artist.as_deref(), Some("B"));
    assert_eq!(room.queue[2].duration, Some(3.0));
}

#[test]
fn queue_add_refusals_name_what_is_wrong() {
    let item = json!({"video_id": "aaaaaaaaaaa"});
    let bad = |body: Value| decode(body).expect_err("refused");
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!({"type": "queue_add", "items": [item, {"video_id": "bad"}]}),
            "invalid_value",
            "items[1]: ",
        ),
        (
            json!({"type": "queue_add", "items": [item, {"video_id": "aaaaaaaaaaa", "duration": "x"}]}),
            "invalid_value",
            "items[1]: duration",
        ),
        (
            json!({"type": "queue_add", "items": [item, {"media_url": "/media/a", "x": 1}]}),
            "invalid_value",
            "items[1]: unknown field",
        ),
        (
            json!({"type": "queue_add", "items": [item], "video_id": "aaaaaaaaaaa"}),
            "invalid_value",
            "`items` cannot be combined with `video_id`",
        ),
        (
            json!({"type": "queue_add", "items": [item], "playlist_id": "PL1"}),
            "invalid_value",
            "`items` cannot be combined with `playlist_id`",
        ),
        (
            json!({"type": "queue_add", "items": [item], "artist": "A", "name": "Ann"}),
            "invalid_value",
            "`items` cannot be combined with `artist`",
        ),
        (
            json!({"type": "queue_add", "playlist_id": "PL1", "duration": 3}),
            "invalid_value",
            "`playlist_id` cannot be combined with `duration`",
        ),
        (
            json!({"type": "queue_add", "items": []}),
            "invalid_value",
            "1 to 100",
        ),
        (
            json!({"type": "queue_add", "items": vec![item.clone(); 101]}),
            "invalid_value",
            "1 to 100",
        ),
        (
            json!({"type": "queue_add", "items": 3}),
            "invalid_json",
            "items: expected an array",
        ),
        (
            json!({"type": "queue_add", "video_id": "aaaaaaaaaaa", "name": "  "}),
            "invalid_value",
            "`name` must not be empty",
        ),
        (
            json!({"type": "queue_add", "video_id": "aaaaaaaaaaa", "duration": 0}),
            "invalid_value",
            "`duration`",
        ),
        (
            json!({"type": "queue_add", "video_id": "aaaaaaaaaaa", "artist": "a".repeat(201)}),
            "invalid_value",
            "`artist` must be at most 200",
        ),
        (
            json!({"type": "queue_add", "title": "x"}),
            "invalid_value",
            "neither was given",
        ),
    ];
    for (body, expected, message) in cases {
        let error = bad(body.clone());
        assert_eq!(code(&error), expected, "{body}");
        assert!(error.to_string().contains(message), "{body}: {error}");
    }
}

#[test]
fn a_playlist_without_a_key_is_refused_by_the_room() {
    let command = decode(json!({"type": "queue_add", "playlist_id": "PL1", "name": "Ann"}))
        .expect("the parser takes playlist_id");
    let error = room().apply(command, &Inputs::at(T0)).expect_err("refused");
    assert_eq!(code(&error), "invalid_command");
    assert_eq!(error.to_string(), PLAYLIST_NEEDS_KEY);
}

#[test]
fn a_full_queue_takes_none_of_the_items() {
    let mut room = room();
    room.max_queue = 2;
    let command = decode(three_items()).expect("valid");
    let error = room.apply(command, &Inputs::at(T0)).expect_err("too many");
    assert_eq!(code(&error), "invalid_value");
    assert!(room.queue.is_empty());
    assert_eq!(room.version, 1);
}

/// A mode, a pick, the events, the queue's ids after, the loaded item.
type NextCase = (
    QueueMode,
    u64,
    &'static [&'static str],
    &'static [&'static str],
    &'static str,
);

/// `next` in each mode: the events, then the queue's ids and the loaded item.
#[test]
fn next_in_each_queue_mode() {
    let cases: [NextCase; 4] = [
        (
            QueueMode::Normal,
            7,
            &["state:Next q1", "queue:remove q1"],
            &["q2", "q3"],
            "q1",
        ),
        (
            QueueMode::Shuffle,
            7,
            &["state:Next q2", "queue:remove q2"],
            &["q1", "q3"],
            "q2",
        ),
        (
            QueueMode::Shuffle,
            2,
            &["state:Next q3", "queue:remove q3"],
            &["q1", "q2"],
            "q3",
        ),
        // Nothing was loaded, so nothing goes back to the queue.
        (
            QueueMode::Loop,
            7,
            &["state:Next q1", "queue:remove q1"],
            &["q2", "q3"],
            "q1",
        ),
    ];
    for (mode, pick, events, queue, loaded) in cases {
        let mut room = room();
        room.queue_mode = mode;
        apply(&mut room, three_items(), T0);
        let inputs = Inputs {
            pick,
            ..Inputs::at(T0)
        };
        let got = room.apply(Command::Next {}, &inputs).expect("next");
        assert_eq!(summary(&got), events, "{mode:?} {pick}");
        let ids: Vec<&str> = room.queue.iter().map(|i| i.item_id.as_str()).collect();
        assert_eq!(ids, queue, "{mode:?} {pick}");
        assert_eq!(room.state.item_id.as_deref(), Some(loaded));
        assert!(got.windows(2).all(|w| w[1].version == w[0].version + 1));
    }
}

#[test]
fn the_loaded_item_carries_its_metadata() {
    let mut room = room();
    apply(&mut room, three_items(), T0);
    apply(&mut room, json!({"type": "next"}), T0);
    let state = &room.state;
    assert_eq!(state.title.as_deref(), Some("One"));
    assert_eq!(state.added_by.as_deref(), Some("Ann"));
    assert_eq!(state.duration, Some(1.0));
    apply(
        &mut room,
        json!({"type": "load", "video_id": "ccccccccccc", "title": "T", "artist": "A"}),
        T0,
    );
    let state = &room.state;
    assert_eq!(
        (state.item_id.as_deref(), state.title.as_deref()),
        (None, Some("T"))
    );
    assert_eq!(
        (state.artist.as_deref(), state.added_by.as_deref()),
        (Some("A"), None)
    );
}

#[test]
fn loop_puts_the_finished_item_back_under_a_new_id() {
    let mut room = room();
    apply(
        &mut room,
        json!({"type": "queue_mode", "queue_mode": "loop"}),
        T0,
    );
    apply(&mut room, three_items(), T0);
    apply(&mut room, json!({"type": "next"}), T0);
    let events = apply(&mut room, json!({"type": "next"}), T0);
    assert_eq!(
        summary(&events),
        ["state:Next q2", "queue:remove q2", "queue:add q4"]
    );
    let back = room.queue.last().expect("requeued");
    assert_eq!(
        (back.title.as_deref(), back.duration),
        (Some("One"), Some(1.0))
    );
}

#[test]
fn loop_of_one_item_plays_it_again_at_its_end() {
    let mut room = room();
    apply(
        &mut room,
        json!({"type": "queue_mode", "queue_mode": "loop"}),
        T0,
    );
    apply(
        &mut room,
        json!({"type": "queue_add", "video_id": "aaaaaaaaaaa", "duration": 1}),
        T0,
    );
    apply(&mut room, json!({"type": "next"}), T0);
    let end = room.next_due().expect("playing");
    let events = room.on_due(&Inputs::at(end));
    assert_eq!(
        summary(&events),
        ["queue:add q2", "state:Next q2", "queue:remove q2"]
    );
    assert!(!room.state.paused);
}

/// With nobody at the controls, three items with durations play one after
/// the other, and the room pauses at the end of the last.
#[test]
fn a_queue_with_durations_plays_through_by_itself() {
    let mut room = room();
    apply(&mut room, three_items(), T0);
    apply(&mut room, json!({"type": "next"}), T0);
    let mut played = vec![room.state.item_id.clone()];
    while let Some(due) = room.next_due() {
        let events = room.on_due(&Inputs::at(due));
        assert!(!events.is_empty(), "a due timer does something");
        if room.state.paused {
            break;
        }
        played.push(room.state.item_id.clone());
    }
    let played: Vec<_> = played
        .iter()
        .map(|id| id.as_deref().unwrap_or("-"))
        .collect();
    assert_eq!(played, ["q1", "q2", "q3"]);
    assert!(room.state.paused);
    assert_eq!(room.state.position, 3.0);
}

#[test]
fn metadata_that_arrives_later_fills_only_what_is_unknown() {
    let mut room = room();
    apply(&mut room, three_items(), T0);
    let info = |title: &str, duration: f64| ItemInfo {
        title: Some(title.into()),
        artist: Some("Art".into()),
        duration: Some(duration),
    };
    let inputs = Inputs::at(T0);
    let cases: Vec<(Option<&str>, ItemInfo, &[&str])> = vec![
        (Some("q1"), info("New", 9.0), &["queue:update q1"]),
        // Everything is known now.
        (Some("q1"), info("New", 9.0), &[]),
        (Some("q9"), info("New", 9.0), &[]),
        (None, info("Now", 5.0), &["state:Duration -"]),
    ];
    for (item_id, info, events) in cases {
        let command = Command::ItemInfo {
            item_id: item_id.map(str::to_owned),
            info,
        };
        if item_id.is_none() {
            apply(
                &mut room,
                json!({"type": "load", "video_id": "ccccccccccc"}),
                T0,
            );
        }
        let got = room.apply(command, &inputs).expect("applied");
        assert_eq!(summary(&got), events, "{item_id:?}");
    }
    let first = &room.queue[0];
    assert_eq!(
        (first.title.as_deref(), first.duration),
        (Some("One"), Some(1.0))
    );
    assert_eq!(first.artist.as_deref(), Some("Art"));
    assert_eq!(room.state.duration, Some(5.0));
    assert_eq!(room.state.title.as_deref(), Some("Now"));
    let known = Command::ItemInfo {
        item_id: None,
        info: info("Later", 7.0),
    };
    assert!(room.apply(known, &inputs).expect("applied").is_empty());
}

#[test]
fn item_info_is_not_a_client_command() {
    let error = decode(json!({"type": "item_info", "duration": 3})).expect_err("refused");
    assert_eq!(code(&error), "invalid_command");
}

/// A mirror that absorbs the events is the room: queue, loaded item, mode.
#[test]
fn a_mirror_follows_every_queue_change() {
    let mut room = room();
    let mut mirror = room.clone();
    let mut events = Vec::new();
    events.extend(apply(&mut room, three_items(), T0));
    events.extend(apply(
        &mut room,
        json!({"type": "queue_move", "item_id": "q3", "index": 0}),
        T0,
    ));
    events.extend(apply(
        &mut room,
        json!({"type": "queue_remove", "item_id": "q1"}),
        T0,
    ));
    events.extend(apply(
        &mut room,
        json!({"type": "queue_mode", "queue_mode": "loop"}),
        T0,
    ));
    events.extend(apply(&mut room, json!({"type": "next"}), T0));
    events.extend(apply(&mut room, json!({"type": "next"}), T0));
    let info = Command::ItemInfo {
        item_id: Some(room.queue[0].item_id.clone()),
        info: ItemInfo {
            title: Some("t".into()),
            ..ItemInfo::default()
        },
    };
    events.extend(room.apply(info, &Inputs::at(T0)).expect("applied"));
    for event in &events {
        mirror.absorb(event);
    }
    assert_eq!(mirror.queue, room.queue);
    assert_eq!(mirror.state, room.state);
    assert_eq!(mirror.queue_mode, room.queue_mode);
    assert_eq!(mirror.version, room.version);
    assert!(events.iter().any(|e| matches!(
        &e.kind,
        EventKind::State {
            cause: Cause::Next,
            ..
        }
    )));
}

/// A queue event carries what changed, never the whole queue.
#[test]
fn queue_events_carry_only_the_change() {
    let mut room = room();
    apply(&mut room, three_items(), T0);
    let events = apply(
        &mut room,
        json!({"type": "queue_move", "item_id": "q3", "index": 0}),
        T0,
    );
    let data: Value = serde_json::from_slice(&events[0].data()).expect("json");
    assert_eq!(
        data,
        json!({"version": 3, "op": "move", "item_id": "q3", "index": 0, "server_time": T0})
    );
    let events = apply(
        &mut room,
        json!({"type": "queue_remove", "item_id": "q1"}),
        T0,
    );
    let data: Value = serde_json::from_slice(&events[0].data()).expect("json");
    assert_eq!(
        data,
        json!({"version": 4, "op": "remove", "item_ids": ["q1"], "server_time": T0})
    );
}

/// Rooms stored before items had metadata and rooms had a queue mode load.
#[test]
fn rooms_stored_by_the_older_version_still_load() {
    let mut stored = serde_json::to_value(room()).expect("json");
    let object = stored.as_object_mut().expect("object");
    object.remove("queue_mode");
    for field in ["item_id", "title", "artist", "added_by"] {
        object["state"]
            .as_object_mut()
            .expect("state")
            .remove(field);
    }
    object["queue"] =
        json!([{"item_id": "q1", "video_id": "aaaaaaaaaaa", "media_url": null, "title": "old"}]);
    let room: Room = serde_json::from_value(stored).expect("loads");
    assert_eq!(room.queue_mode, QueueMode::Normal);
    assert_eq!(room.queue[0].duration, None);
    assert_eq!(room.queue[0].added_by, None);
    assert_eq!(room.state.item_id, None);
}

/// Listeners' durations: more than half within 0.5 s, one stream enough.
#[test]
fn reported_durations_count_when_most_agree() {
    let cases: [(&[f64], Option<f64>); 7] = [
        (&[], None),
        (&[212.0], Some(212.0)),
        (&[212.0, 212.3], Some(212.3)),
        (&[212.0, 300.0], None),
        (&[212.0, 212.4, 300.0], Some(212.4)),
        (&[100.0, 200.0, 300.0], None),
        (&[f64::NAN, -1.0, 5.0], Some(5.0)),
    ];
    for (reported, agreed) in cases {
        assert_eq!(agreed_duration(reported), agreed, "{reported:?}");
    }
    let mut room = room();
    assert!(
        room.take_reported_duration(&[5.0], T0).is_empty(),
        "nothing loaded"
    );
    apply(
        &mut room,
        json!({"type": "load", "video_id": "aaaaaaaaaaa"}),
        T0,
    );
    let events = room.take_reported_duration(&[5.0, 5.2], T0);
    assert_eq!(summary(&events), ["state:Duration -"]);
    assert_eq!(room.state.duration, Some(5.2));
    assert!(
        room.take_reported_duration(&[9.0], T0).is_empty(),
        "never overwritten"
    );
}
